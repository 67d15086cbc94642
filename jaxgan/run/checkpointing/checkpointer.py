"""Orbax checkpoints of the whole run: state, data position, config and a digest.

Layout: ``<workdir>/checkpoints/<step>/{state,data,config,digest}``. The manager
is always used as a context manager, so an in-flight async save is finished (or
cleanly never committed) before the process exits: no half-written checkpoint
is ever left as the latest one.

A checkpoint can still be damaged afterwards (a disk, a copy, a sync tool). In
orbax 0.12 only tensorstore's OCDBT manifest and b-tree nodes carry CRC-32C (with
the values of at most 1 KiB stored inline in them); larger array chunks are zarr2
+ zstd without any checksum, and orbax offers no option to add one, so flipped
bits in a big array restore silently. Hence the ``digest`` item: sha256 per state
leaf and of the JSON items, committed atomically with them. ``restore`` checks
it; ``restore_latest_good`` falls back to the newest good step and moves damaged
ones to ``<workdir>/checkpoints_damaged/`` (never deletes them).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging as absl_logging

from jaxgan import config as config_lib
from jaxgan.core.state import LEGACY_KEYS, GANState, PyTree, from_legacy, to_legacy
from jaxgan.errors import CheckpointDamagedError, CheckpointMismatchError, ConfigError

DIGEST_FORMAT = "jaxgan-sha256-1"
DAMAGED_DIR = "checkpoints_damaged"


def path_name(path) -> str:
  """A tree path as 'g.params.Dense_0.kernel' (the same for state and metadata)."""
  parts = []
  for k in path:
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
  return ".".join(parts)


def shapes_by_name(tree: PyTree) -> dict[str, tuple[tuple[int, ...], str]]:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {path_name(p): (tuple(leaf.shape), str(leaf.dtype)) for p, leaf in leaves}


def abstract(tree: PyTree, sharding: Any = None) -> PyTree:
  """ShapeDtypeStruct targets for restoring ``tree`` (optionally onto ``sharding``)."""

  def one(x):
    s = ocp.utils.to_shape_dtype_struct(x)
    return jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding) if sharding is not None else s

  return jax.tree.map(one, tree)


def _leaf_digest(x: Any) -> str:
  """'float32[64,64]:<sha256 of the bytes>': dtype and shape are kept so a leaf that
  restore cast to another dtype is recognised as such rather than as damage."""
  a = np.ascontiguousarray(np.asarray(x))
  h = hashlib.sha256(a.reshape(-1).view(np.uint8))
  return f"{a.dtype.name}[{','.join(map(str, a.shape))}]:{h.hexdigest()}"


def state_digest(state: PyTree) -> dict[str, str] | None:
  """{leaf path name: leaf digest} of the host copy of ``state``.

  None under multi-process: a leaf need not be fully addressable on one host, so
  there is no whole copy to hash; restore errors are then the only damage check.
  """
  if jax.process_count() > 1:
    return None
  host = jax.device_get(state)
  return {path_name(p): _leaf_digest(x) for p, x in jax.tree_util.tree_flatten_with_path(host)[0]}


def json_digest(obj: Any) -> str:
  """sha256 of canonical JSON; ``obj`` as json.loads gives it back (lists, str keys)."""
  text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(text.encode()).hexdigest()


def _roundtrip(obj: Any) -> Any:
  return json.loads(json.dumps(obj))


def _short(e: BaseException, directory: str = "", limit: int = 160) -> str:
  """One line from an orbax/tensorstore error: the innermost tensorstore status if any
  (orbax re-raises it wrapped in a spec dump), without specs, paths relative to ``directory``."""
  chain = []
  while e is not None and len(chain) < 20:
    chain.append(e)
    e = e.__cause__ or e.__context__
  status = [c for c in chain if re.match(r"[A-Z_]{4,}: ", str(c))]  # absl status, e.g. DATA_LOSS
  inner = status[-1] if status else chain[0]
  text = " ".join(str(inner).split())
  text = re.split(r" \[(?:tensorstore_spec|source locations)", text)[0]
  text = re.sub(r' in OCDBT database at local file "[^"]*"', "", text)
  text = re.sub(r'local file "([^"]*)"', r"\1", text).replace(directory.rstrip(os.sep) + os.sep, "")
  head = text.split(": ", 1)[0] if status else type(inner).__name__
  if not status:
    text = f"{head}: {text}" if text else head
  if len(text) > limit:  # 'DATA_LOSS: Error opening ...: Error reading ...: <cause>': keep the end
    rest = text.split(": ")[1:]
    while len(rest) > 1 and len(head) + 7 + len(": ".join(rest)) > limit:
      rest.pop(0)
    text = f"{head}: ...: {': '.join(rest)}"
  return text


def _out_of_memory(e: BaseException) -> bool:
  return isinstance(e, MemoryError) or "RESOURCE_EXHAUSTED" in _short(e)


class _DropReadNoise:
  """``sys.unraisablehook`` that drops only the noise of orbax's failed reads: tensorstore
  callbacks into the closed asyncio loop, and the read coroutines left behind."""

  NOISE = ("Event loop is closed", "Encountered error while reading array index")

  def __init__(self, chain: Callable[[Any], None]):
    self.chain = chain

  def __call__(self, unraisable: Any) -> None:
    if not str(unraisable.exc_value).startswith(self.NOISE):
      self.chain(unraisable)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
  """Hides orbax's logs, and tensorstore's late callbacks, while reading a checkpoint.

  After a failed read, tensorstore completes its pending reads into orbax's closed
  asyncio loop and the abandoned read coroutines are collected later: dozens of
  tracebacks through ``sys.unraisablehook``, some long after the read has returned.
  A filter for exactly those two messages is therefore installed once and kept. Orbax's absl
  logs are muted during the read unless --verbosity asks for INFO or more.
  """
  if not isinstance(sys.unraisablehook, _DropReadNoise):
    sys.unraisablehook = _DropReadNoise(sys.unraisablehook)
  logger = logging.getLogger("absl")
  old_level = logger.level
  mute = logger.getEffectiveLevel() >= logging.WARNING
  if mute:
    logger.setLevel(logging.CRITICAL)
  try:
    yield
  finally:
    if mute:
      logger.setLevel(old_level)


class _NoMetricsIsFine(logging.Filter):
  """With a selection metric, steps saved between evaluations carry no metrics on purpose."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Requested `tracked_metric`")


class Restored(NamedTuple):
  """What ``restore_latest_good`` found."""

  step: int
  state: PyTree
  data: dict[str, Any]
  config: dict[str, Any]  # as stored in the checkpoint
  config_changes: list[str]  # check_compatible's diff; [] when no config was given
  warnings: list[str]  # one line per damaged step skipped (already shown through ``warn``)


class Checkpointer:
  """A thin, always-closed wrapper around ``ocp.CheckpointManager``."""

  ITEMS = ("state", "data", "config")  # required; "digest" is absent from older checkpoints

  def __init__(
    self,
    workdir: str,
    *,
    max_to_keep: int = 3,
    async_save: bool = True,
    read_only: bool = False,
    selection: Any = None,
    members: int = 1,
  ):
    """``selection`` (``jaxgan.run.selection.Selection``): also keep each member's best step by
    that metric, saved with ``save(..., metrics=...)``."""
    from jaxgan.run import selection as selection_lib

    self.workdir = os.path.abspath(workdir)
    self.selection, self.members = selection, members
    self.directory = os.path.join(self.workdir, "checkpoints")
    self.damaged_directory = os.path.join(self.workdir, DAMAGED_DIR)
    self.read_only = read_only
    if read_only:
      options = ocp.CheckpointManagerOptions(
        read_only=True, create=False, save_interval_steps=0, enable_async_checkpointing=False
      )
    elif selection is not None:  # orbax writes metrics only when it tracks a best_fn
      absl_logger = logging.getLogger("absl")
      if not any(isinstance(f, _NoMetricsIsFine) for f in absl_logger.filters):
        absl_logger.addFilter(_NoMetricsIsFine())
      options = ocp.CheckpointManagerOptions(
        create=True,
        enable_async_checkpointing=async_save,
        cleanup_tmp_directories=True,
        best_fn=lambda metrics: metrics[selection.key()],
        best_mode=selection.mode,
        preservation_policy=selection_lib.preservation_policy(selection, members, max_to_keep),
      )
    else:
      options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep,
        create=True,
        enable_async_checkpointing=async_save,
        cleanup_tmp_directories=True,
      )
    handlers = {
      "state": ocp.StandardCheckpointHandler(),
      "data": ocp.JsonCheckpointHandler(),
      "config": ocp.JsonCheckpointHandler(),
      "digest": ocp.JsonCheckpointHandler(),
    }
    with _quiet():  # a damaged step's metadata file is logged as an orbax error here
      self._manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)
    self._moves = 0

  def __enter__(self) -> Checkpointer:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def close(self) -> None:
    self._manager.wait_until_finished()
    # orbax awaits its start-up clean-up of temporary folders only in save(); a run
    # that stops before saving must await it, or the thread outlives the interpreter
    # ("cannot schedule new futures after interpreter shutdown").
    await_cleanup = getattr(self._manager, "_maybe_await_cleanup_tmp_directory", None)
    if await_cleanup is not None:
      await_cleanup()
    self._manager.close()

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def reached_preemption(self, index: int) -> bool:
    """orbax's agreed preemption point: True on every process at the same ``index``."""
    return bool(self._manager.reached_preemption(index))

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

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
    digest = {
      "format": DIGEST_FORMAT,
      "state": state_digest(state),
      "data": json_digest(_roundtrip(data_position)),
      "config": json_digest(_roundtrip(config)),
    }
    self._manager.save(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ocp.args.JsonSave(data_position),
        config=ocp.args.JsonSave(config),
        digest=ocp.args.JsonSave(digest),
      ),
      metrics=metrics if self.selection is not None else None,
    )

  def metrics(self, step: int) -> dict[str, float] | None:
    """The scalars saved with ``step`` (selection runs), or None."""
    path = os.path.join(self._step_dir(step), "metrics", "metrics")
    if not os.path.exists(path):
      return None
    try:
      with open(path) as f:
        return json.load(f)
    except (OSError, ValueError):
      return None

  def best_steps(self) -> list[int | None]:
    """Each member's best step by the selection metric (``jaxgan.run.selection``)."""
    from jaxgan.run import selection as selection_lib

    if self.selection is None:
      raise ConfigError(
        "this run has no config.eval.select, so it kept no best checkpoint; "
        "evaluate --step=N, or train with e.g. --config.eval.select=parzen_valid:max."
      )
    if not self.read_only:
      self.wait()  # the newest step's metrics are written with it
    return selection_lib.best_steps(self.metrics, self.all_steps(), self.selection, self.members)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  # Reading. Every read of a step raises CheckpointDamagedError (never an orbax error)
  # when the step is incomplete, unreadable or does not match its digest.

  def _step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def _damaged(self, step: int, reason: str) -> CheckpointDamagedError:
    return CheckpointDamagedError(
      f"checkpoint step {step} in {self.directory} is damaged ({reason}); pick another step "
      f"(available: {sorted(self.all_steps())}), or re-run training in this workdir, which "
      f"moves it to {self.damaged_directory}/ and resumes from the newest good one.",
      step=step,
      reason=reason,
    )

  def _require_items(self, step: int) -> None:
    missing = [i for i in self.ITEMS if not os.path.isdir(os.path.join(self._step_dir(step), i))]
    if missing:
      what = (
        "empty step folder" if len(missing) == len(self.ITEMS) else "missing " + ", ".join(missing)
      )
      raise self._damaged(step, what)

  def _read(self, step: int, item: str, args: Any) -> Any:
    self._require_items(step)
    try:
      with _quiet():
        return self._manager.restore(step, args=ocp.args.Composite(**{item: args}))[item]
    except Exception as e:  # any failure to read a committed step is damage...
      if _out_of_memory(e):  # ...except running out of memory, which says nothing about the files
        raise
      raise self._damaged(step, f"{item} unreadable: {_short(e, self.directory)}") from e

  def _digest(self, step: int) -> dict[str, Any] | None:
    """The step's digest item; None for checkpoints written before digests existed."""
    if not os.path.isdir(os.path.join(self._step_dir(step), "digest")):
      return None
    digest = self._read(step, "digest", ocp.args.JsonRestore())
    if not isinstance(digest, dict) or digest.get("format") != DIGEST_FORMAT:
      raise self._damaged(step, "digest item unreadable")
    return digest

  def stored_config(self, step: int) -> dict[str, Any]:
    config = self._read(step, "config", ocp.args.JsonRestore())
    digest = self._digest(step)
    if digest is not None and digest.get("config") != json_digest(config):
      raise self._damaged(step, "config digest mismatch")
    return config

  def check_compatible(self, step: int, target: PyTree, config: dict[str, Any]) -> list[str]:
    """Raises CheckpointMismatchError naming differing keys; returns the config diff.

    An unreadable step raises CheckpointDamagedError instead: damage is not a mismatch.
    """
    stored = shapes_by_name(self._state_metadata(step))
    wanted = shapes_by_name(self._as_stored(step, target)[0])
    problems = []
    for name in sorted(set(stored) | set(wanted)):
      if name not in stored:
        problems.append(f"  {name}: not in the checkpoint (new in this config: {wanted[name][0]})")
      elif name not in wanted:
        problems.append(f"  {name}: in the checkpoint {stored[name][0]}, absent from this config")
      elif stored[name][0] != wanted[name][0]:
        problems.append(f"  {name}: checkpoint {stored[name][0]} vs config {wanted[name][0]}")
    config_changes = config_lib.diff(self.stored_config(step), config)
    if problems:
      shown = problems[:20] + (
        [f"  ... and {len(problems) - 20} more"] if len(problems) > 20 else []
      )
      changes = "\n".join("  " + c for c in config_changes) or "  (none)"
      raise CheckpointMismatchError(
        f"the checkpoint at step {step} in {self.directory} does not fit this config.\n"
        f"State arrays that differ:\n" + "\n".join(shown) + "\n"
        f"Config keys that differ from the checkpoint's:\n{changes}\n"
        f"Use a new --workdir for a different model, or restore the checkpoint's values."
      )
    return config_changes

  def _as_stored(self, step: int, target: PyTree) -> tuple[PyTree, Callable[[PyTree], PyTree]]:
    """``target`` in the layout ``step`` was saved in, and what turns a tree restored in that
    layout into today's: checkpoints from before the per-player state (flat ``g_params``,
    ``d_opt_state``, ``objective_state``, ...) convert on restore (``jaxgan.core.state``)."""
    if isinstance(target, GANState) and LEGACY_KEYS & set(self._state_metadata(step)):
      return to_legacy(target), from_legacy
    return target, lambda tree: tree

  def _state_metadata(self, step: int) -> PyTree:
    self._require_items(step)
    try:
      with _quiet():
        return self._manager.item_metadata(step)["state"].tree
    except Exception as e:
      if _out_of_memory(e):
        raise
      raise self._damaged(step, f"state metadata unreadable: {_short(e, self.directory)}") from e

  def restore(self, step: int, target: PyTree) -> tuple[PyTree, dict[str, Any]]:
    """(state, data position) at ``step``, placed as ``target``'s ShapeDtypeStructs say.

    Raises CheckpointDamagedError if the step is incomplete, unreadable or fails its digest.
    """
    target, convert = self._as_stored(step, target)
    state = self._read(step, "state", ocp.args.StandardRestore(target))
    data = self._read(step, "data", ocp.args.JsonRestore())
    digest = self._digest(step)
    if digest is not None:
      if digest.get("data") != json_digest(data):
        raise self._damaged(step, "data position digest mismatch")
      if digest.get("state") is not None:
        bad = self._mismatched_leaves(digest["state"], state)
        if bad:
          more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
          raise self._damaged(step, f"state digest mismatch in {bad[0]}{more}")
    return convert(state), data

  @staticmethod
  def _mismatched_leaves(stored: dict[str, str], state: PyTree) -> list[str]:
    """Leaves whose bytes differ from the digest; leaves restore cast to another
    dtype (or a different tree) cannot be compared and are left to check_compatible."""
    host = jax.device_get(state)
    bad = []
    for p, x in jax.tree_util.tree_flatten_with_path(host)[0]:
      name, now = path_name(p), _leaf_digest(x)
      then = stored.get(name)
      if then is not None and then.split(":")[0] == now.split(":")[0] and then != now:
        bad.append(name)
    return bad

  def _move_aside(self, step: int) -> str:
    """Moves a damaged step to ``checkpoints_damaged/<step>[.n]``; returns where it went.

    Under multi-process, process 0 moves it between two barriers, so every process
    names the same place and reloads only after the move.
    """
    dest = os.path.join(self.damaged_directory, str(step))
    n = 0
    while os.path.exists(dest):
      n += 1
      dest = os.path.join(self.damaged_directory, f"{step}.{n}")
    multi = jax.process_count() > 1
    self._moves += 1
    if multi:
      ocp.multihost.sync_global_processes(f"jaxgan_damaged_named_{step}_{self._moves}")
    if jax.process_index() == 0:
      os.makedirs(self.damaged_directory, exist_ok=True)
      os.rename(self._step_dir(step), dest)
    if multi:
      ocp.multihost.sync_global_processes(f"jaxgan_damaged_moved_{step}_{self._moves}")
    self._manager.reload()  # else the manager still lists the step and skips re-saving it
    return dest

  def restore_latest_good(
    self,
    target: PyTree | Callable[[dict[str, Any]], PyTree],
    config: dict[str, Any] | None = None,
    *,
    warn: Callable[[str], None] | None = None,
  ) -> Restored | None:
    """The newest step that restores and matches its digest; None if there is no checkpoint.

    ``target`` is the restore target, or a function of the step's stored config that
    builds it. With ``config``, each step is first checked against it
    (CheckpointMismatchError for a real mismatch, raised at once: nothing is moved).
    A damaged step is moved to ``checkpoints_damaged/`` (left in place when read-only)
    and reported in one line through ``warn`` (default: absl's warning log). If
    every step is damaged, raises CheckpointDamagedError.
    """
    damaged: list[tuple[int, str, str | None]] = []  # (step, reason, where it went)
    found = None
    for step in sorted(self.all_steps(), reverse=True):
      try:
        stored = self.stored_config(step)
        wanted = target(stored) if callable(target) else target
        changes = self.check_compatible(step, wanted, config) if config is not None else []
        state, data = self.restore(step, wanted)
      except CheckpointDamagedError as e:
        damaged.append((step, e.reason, None if self.read_only else self._move_aside(step)))
        continue
      found = (step, state, data, stored, changes)
      break
    if found is None and not damaged:
      return None
    if found is None:
      listed = "; ".join(f"step {s}: {r}" for s, r, _ in damaged)
      if self.read_only:
        raise CheckpointDamagedError(
          f"every checkpoint in {self.directory} is damaged ({listed}); there is nothing to load. "
          f"Re-run training on this workdir to move them to {self.damaged_directory}/ and start "
          f"over, or use another --workdir."
        )
      raise CheckpointDamagedError(
        f"every checkpoint in {self.directory} is damaged ({listed}); moved them to "
        f"{self.damaged_directory}/. Re-run the same command to start over from step 0 here, "
        f"or use a new --workdir (delete this one if you do not need the damaged checkpoints)."
      )
    step = found[0]
    lines = []
    for s, reason, dest in damaged:
      where = (
        f"left it in place (read-only) and loading step {step} instead"
        if dest is None
        else f"moved it to {dest} and resuming from step {step}"
      )
      lines.append(
        f"jaxgan: checkpoint step {s} in {self.directory} is damaged ({reason}); {where}."
      )
    for line in lines:
      (warn or absl_logging.warning)(line)
    return Restored(*found, warnings=lines)
