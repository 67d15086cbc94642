"""``Checkpointer``: the run's checkpoints, saved with a digest and restored verified.

It composes the package's parts: ``store`` (orbax's files), ``digests`` (sha256 per leaf,
checked on every restore), ``compatibility`` (shapes, old layouts) and ``recovery`` (the
newest good step). A checkpoint holds the state, the data position, the config and the
digest; ``restore_latest_good`` is what a run resumes through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jaxgan.core.state import PyTree
from jaxgan.errors import CheckpointDamagedError, ConfigError
from jaxgan.run import environment
from jaxgan.run import selection as selection_lib
from jaxgan.run.checkpointing import compatibility, digests, recovery, store
from jaxgan.run.checkpointing.recovery import Restored


class Checkpointer:
  """A run's checkpoints; always closed (a context manager), so no save is left half done."""

  def __init__(
    self,
    workdir: str,
    *,
    max_to_keep: int = 3,
    async_save: bool = True,
    read_only: bool = False,
    selection: selection_lib.Selection | None = None,
    members: int = 1,
  ):
    """``selection``: also keep each member's best step by that metric, saved with
    ``save(..., metrics=...)`` (``jaxgan.run.selection``)."""
    self.selection, self.members = selection, members
    self._store = store.Store(
      workdir,
      max_to_keep=max_to_keep,
      async_save=async_save,
      read_only=read_only,
      selection=selection,
      members=members,
    )
    self.workdir, self.directory = self._store.workdir, self._store.directory
    self.damaged_directory, self.read_only = self._store.damaged_directory, read_only

  def __enter__(self) -> Checkpointer:
    return self

  def __exit__(self, exc_type, *exc) -> None:
    self._store.close(after_error=exc_type is not None)

  def close(self) -> None:
    self._store.close()

  def wait(self) -> None:
    self._store.wait()

  def reached_preemption(self, index: int) -> bool:
    return self._store.reached_preemption(index)

  def all_steps(self) -> list[int]:
    return self._store.all_steps()

  def save(
    self,
    step: int,
    state: PyTree,
    data_position: dict[str, Any],
    config: dict[str, Any],
    metrics: dict[str, float] | None = None,
  ) -> None:
    """Saves asynchronously; the digest is taken now, from the same arrays orbax copies.
    ``metrics``: the selection scalars of this step (with a ``selection`` only)."""
    json_items = {
      "data": data_position,
      "config": config,
      "digest": digests.digest(state, data_position, config),
      "environment": environment.describe(),
    }
    self._store.save(step, state, json_items, metrics)

  def metrics(self, step: int) -> dict[str, float] | None:
    """The scalars saved with ``step`` (selection runs), or None."""
    return self._store.metrics(step)

  def best_steps(self) -> list[int | None]:
    """Each member's best step by the selection metric (``jaxgan.run.selection``)."""
    if self.selection is None:
      raise ConfigError(
        "this run has no config.eval.select, so it kept no best checkpoint; "
        "evaluate --step=N, or train with e.g. --config.eval.select=parzen_valid:max."
      )
    if not self.read_only:
      self.wait()  # the newest step's metrics are written with it
    return selection_lib.best_steps(self.metrics, self.all_steps(), self.selection, self.members)

  def stored_environment(self, step: int) -> dict[str, Any] | None:
    """The environment ``step`` was saved on (``jaxgan.run.environment``); None for
    checkpoints that predate the record, or an unreadable one (it is informational)."""
    if not self._store.has(step, "environment"):
      return None
    try:
      return self._store.read_json(step, "environment")
    except CheckpointDamagedError:
      return None

  # Reading. Every read of a step raises CheckpointDamagedError (never an orbax error)
  # when the step is incomplete, unreadable or does not match its digest.

  def _digest(self, step: int) -> dict[str, Any] | None:
    """The step's digest item; None for checkpoints written before digests existed."""
    if not self._store.has(step, "digest"):
      return None
    digest = self._store.read_json(step, "digest")
    if not isinstance(digest, dict) or digest.get("format") != digests.FORMAT:
      raise self._store.damaged(step, "digest item unreadable")
    return digest

  def stored_config(self, step: int) -> dict[str, Any]:
    config = self._store.read_json(step, "config")
    digest = self._digest(step)
    if digest is not None and digest.get("config") != digests.json_digest(config):
      raise self._store.damaged(step, "config digest mismatch")
    return config

  def check_compatible(
    self,
    step: int,
    target: PyTree,
    config_changes: Callable[[dict[str, Any]], list[str]] | None = None,
  ) -> None:
    """Raises CheckpointMismatchError naming the arrays whose shapes differ, and the lines
    ``config_changes(stored config)`` gives (how this run's config differs from it).

    An unreadable step raises CheckpointDamagedError instead: damage is not a mismatch.
    """
    stored = self._store.state_metadata(step)
    problems = compatibility.differing_arrays(stored, self._as_stored(step, target)[0])
    if problems:
      changes = config_changes(self.stored_config(step)) if config_changes else []
      raise compatibility.mismatch_error(step, self.directory, problems, changes)

  def _as_stored(self, step: int, target: PyTree) -> tuple[PyTree, Callable[[PyTree], PyTree]]:
    """``target`` in the layout ``step`` was saved in, and what turns a tree restored in that
    layout into today's (``compatibility.as_stored``: the flat layout before state.g/state.d)."""
    return compatibility.as_stored(self._store.state_metadata(step), target)

  def restore(self, step: int, target: PyTree) -> tuple[PyTree, dict[str, Any]]:
    """(state, data position) at ``step``, placed as ``target``'s ShapeDtypeStructs say.

    Raises CheckpointDamagedError if the step is incomplete, unreadable or fails its digest.
    """
    target, convert = self._as_stored(step, target)
    state = self._store.read_state(step, target)
    data = self._store.read_json(step, "data")
    digest = self._digest(step)
    if digest is not None:
      if digest.get("data") != digests.json_digest(data):
        raise self._store.damaged(step, "data position digest mismatch")
      if digest.get("state") is not None:
        bad = digests.mismatched_leaves(digest["state"], state)
        if bad:
          more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
          raise self._store.damaged(step, f"state digest mismatch in {bad[0]}{more}")
    return convert(state), data

  def restore_latest_good(
    self,
    target: PyTree | Callable[[dict[str, Any]], PyTree],
    *,
    config_changes: Callable[[dict[str, Any]], list[str]] | None = None,
    warn: Callable[[str], None] | None = None,
  ) -> Restored | None:
    """The newest step that restores and matches its digest; None if there is no checkpoint.

    ``target`` is the restore target, or a function of the step's stored config that
    builds it. With ``config_changes`` (a function of the stored config giving how this
    run's config differs from it), each step is first checked against ``target``
    (CheckpointMismatchError for a real mismatch, raised at once: nothing is moved).
    A damaged step is moved to ``checkpoints_damaged/`` (left in place when read-only)
    and reported in one line through ``warn`` (default: absl's warning log). If
    every step is damaged, raises CheckpointDamagedError.
    """
    return recovery.restore_latest_good(
      self, self._store, target, config_changes=config_changes, warn=warn
    )
