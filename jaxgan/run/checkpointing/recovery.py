"""Finding the newest good step: damaged steps are moved aside (never deleted) and named.

A checkpoint can be damaged after it was committed (a disk, a copy, a sync tool). A
training run then falls back to the newest step that restores and matches its digest,
moves the damaged ones to ``<workdir>/checkpoints_damaged/`` and says so in one line per
step; a reader (``open_run``) skips them and leaves them in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from absl import logging as absl_logging

from jaxgan.core.state import PyTree
from jaxgan.errors import CheckpointDamagedError
from jaxgan.run.checkpointing.store import Store


class Restored(NamedTuple):
  """What ``restore_latest_good`` found."""

  step: int
  state: PyTree
  data: dict[str, Any]
  config: dict[str, Any]  # as stored in the checkpoint


class Steps(Protocol):
  """What recovery reads a step through (``jaxgan.run.checkpointing.Checkpointer``)."""

  def stored_config(self, step: int) -> dict[str, Any]: ...

  def check_compatible(
    self, step: int, target: PyTree, config_changes: Callable[[dict], list[str]] | None
  ) -> None: ...

  def restore(self, step: int, target: PyTree) -> tuple[PyTree, dict[str, Any]]: ...


def restore_latest_good(
  steps: Steps,
  store: Store,
  target: PyTree | Callable[[dict[str, Any]], PyTree],
  *,
  config_changes: Callable[[dict[str, Any]], list[str]] | None = None,
  warn: Callable[[str], None] | None = None,
) -> Restored | None:
  """The newest step that restores and matches its digest; None if there is no checkpoint.

  See ``Checkpointer.restore_latest_good``.
  """
  damaged: list[tuple[int, str, str | None]] = []  # (step, reason, where it went)
  for step in sorted(store.all_steps(), reverse=True):
    try:
      stored = steps.stored_config(step)
      wanted = target(stored) if callable(target) else target
      if config_changes is not None:
        steps.check_compatible(step, wanted, config_changes)
      state, data = steps.restore(step, wanted)
    except CheckpointDamagedError as e:
      damaged.append((step, e.reason, None if store.read_only else store.move_aside(step)))
      continue
    for s, reason, dest in damaged:
      (warn or absl_logging.warning)(_skipped(store, s, reason, dest, step))
    return Restored(step, state, data, stored)
  if damaged:
    raise _all_damaged(store, damaged)
  return None


def _skipped(store: Store, step: int, reason: str, dest: str | None, found: int) -> str:
  where = (
    f"left it in place (read-only) and loading step {found} instead"
    if dest is None
    else f"moved it to {dest} and resuming from step {found}"
  )
  return f"jaxgan: checkpoint step {step} in {store.directory} is damaged ({reason}); {where}."


def _all_damaged(store: Store, damaged: list[tuple[int, str, str | None]]) -> Exception:
  listed = "; ".join(f"step {s}: {r}" for s, r, _ in damaged)
  if store.read_only:
    return CheckpointDamagedError(
      f"every checkpoint in {store.directory} is damaged ({listed}); there is nothing to load. "
      f"Re-run training on this workdir to move them to {store.damaged_directory}/ and start "
      f"over, or use another --workdir."
    )
  return CheckpointDamagedError(
    f"every checkpoint in {store.directory} is damaged ({listed}); moved them to "
    f"{store.damaged_directory}/. Re-run the same command to start over from step 0 here, "
    f"or use a new --workdir (delete this one if you do not need the damaged checkpoints)."
  )
