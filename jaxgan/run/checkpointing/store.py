"""The checkpoint files, through orbax's public API: a thin layer over ``CheckpointManager``.

Layout: ``<workdir>/checkpoints/<step>/{state,data,config,digest,environment}``; damaged steps are
moved to ``<workdir>/checkpoints_damaged/``. The manager is always closed (``Store`` is a
context manager), so an in-flight async save is finished, or cleanly never committed,
before the process exits: no half-written checkpoint is ever left as the latest one.

Every read of a step raises ``CheckpointDamagedError`` (never an orbax error) when the
step is incomplete or unreadable; running out of memory is re-raised as it is, since it
says nothing about the files. A full disk while saving is ``jaxgan.run.disk_full``'s.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from jaxgan.core.state import PyTree
from jaxgan.errors import CheckpointDamagedError
from jaxgan.run import disk_full
from jaxgan.run import selection as selection_lib

CHECKPOINTS = "checkpoints"
DAMAGED = "checkpoints_damaged"
ITEMS = ("state", "data", "config")  # required; "digest", "environment": not in older ones
JSON_ITEMS = ("data", "config", "digest", "environment")


def abstract(tree: PyTree, sharding: Any = None) -> PyTree:
  """ShapeDtypeStruct targets for restoring ``tree`` (optionally onto ``sharding``)."""

  def one(x):
    s = ocp.utils.to_shape_dtype_struct(x)
    return jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding) if sharding is not None else s

  return jax.tree.map(one, tree)


def short_error(e: BaseException, directory: str = "", limit: int = 160) -> str:
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


def out_of_memory(e: BaseException) -> bool:
  return isinstance(e, MemoryError) or "RESOURCE_EXHAUSTED" in short_error(e)


@contextlib.contextmanager
def quiet_reads() -> Iterator[None]:
  """Mutes orbax's absl logs while reading a checkpoint, unless --verbosity asks for INFO or
  more (a damaged step's files are logged as orbax errors; the caller says it in one line)."""
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


def preservation_policy(selection: selection_lib.Selection | None, members: int, max_to_keep: int):
  """The orbax policy: the newest ``max_to_keep`` steps, plus each member's best."""
  latest = checkpoint_managers.LatestN(n=max_to_keep)
  if selection is None:
    return latest
  return checkpoint_managers.AnyPreservationPolicy(
    [latest, selection_lib.KeepBest(selection, members)]
  )


def _options(
  *,
  read_only: bool,
  async_save: bool,
  max_to_keep: int,
  selection: selection_lib.Selection | None,
  members: int,
) -> ocp.CheckpointManagerOptions:
  if read_only:
    return ocp.CheckpointManagerOptions(
      read_only=True, create=False, save_interval_steps=0, enable_async_checkpointing=False
    )
  if selection is not None:  # orbax writes metrics only when it tracks a best_fn
    return ocp.CheckpointManagerOptions(
      create=True,
      enable_async_checkpointing=async_save,
      cleanup_tmp_directories=True,
      best_fn=lambda metrics: metrics[selection.key()],
      best_mode=selection.mode,
      preservation_policy=preservation_policy(selection, members, max_to_keep),
    )
  return ocp.CheckpointManagerOptions(
    max_to_keep=max_to_keep,
    create=True,
    enable_async_checkpointing=async_save,
    cleanup_tmp_directories=True,
  )


class Store:
  """Saves and reads the items of a step; lists, waits for and moves steps."""

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
    self.workdir = os.path.abspath(workdir)
    self.directory = os.path.join(self.workdir, CHECKPOINTS)
    self.damaged_directory = os.path.join(self.workdir, DAMAGED)
    self.read_only = read_only
    self.tracks_metrics = selection is not None and not read_only
    options = _options(
      read_only=read_only,
      async_save=async_save,
      max_to_keep=max_to_keep,
      selection=selection,
      members=members,
    )
    handlers = {"state": ocp.StandardCheckpointHandler()}
    handlers.update({item: ocp.JsonCheckpointHandler() for item in JSON_ITEMS})
    with quiet_reads():  # a damaged step's metadata file is logged as an orbax error here
      self._manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)
    self._moves = 0
    self._save_threads: list[threading.Thread] = []  # those the newest save started
    self._save_failed = False

  def __enter__(self) -> Store:
    return self

  def __exit__(self, exc_type, *exc) -> None:
    self.close(after_error=exc_type is not None)

  def close(self, *, after_error: bool = False) -> None:
    """Finishes the in-flight save and closes the manager, whatever the save did. A failed
    save is raised after closing, except with ``after_error``: then nothing is raised over
    the error already on its way (a full disk met again here is the same disk)."""
    failed = None
    try:
      self.wait()
    except Exception as e:  # the in-flight save failed: close the manager all the same
      failed = e
    if self._save_failed:
      self._let_save_threads_finish()
    try:
      with disk_full.writing(self.directory, "a checkpoint"):
        # orbax 0.12 starts clearing the temporary folders of interrupted saves in a thread
        # when the manager is built and awaits it only in save(); a run that stops before
        # its first save must await it, or the thread outlives the interpreter ("cannot
        # schedule new futures after interpreter shutdown"). No public method awaits it
        # (orbax 0.12.8); orbax 0.11.20 clears them in the constructor and has no such
        # method. Checked on both.
        await_cleanup = getattr(self._manager, "_maybe_await_cleanup_tmp_directory", None)
        try:
          if await_cleanup is not None:
            await_cleanup()
        finally:
          self._manager.close()
    except disk_full.DiskFull as e:
      failed = failed or e
    if failed is not None and not after_error:
      raise failed

  def _let_save_threads_finish(self, timeout: float = 10.0) -> None:
    """orbax (0.11.20, 0.12.8) stops waiting for a save's commit threads at the first one
    that fails; the others (the state's write, its metadata) go on, and if the manager is
    closed, or the interpreter exits, under them they log "cannot schedule new futures
    after shutdown" with a traceback. So a failed save's threads get ``timeout`` seconds to
    finish first: those the newest save that started any started (a save whose failure
    surfaces in the next one's wait starts none)."""
    deadline = time.monotonic() + timeout
    while any(t.is_alive() for t in self._save_threads) and time.monotonic() < deadline:
      time.sleep(0.05)  # not join(): orbax's threads re-raise their error from join()

  def wait(self) -> None:
    """Waits for the in-flight save; a full disk in orbax's save thread surfaces here."""
    try:
      with disk_full.writing(self.directory, "a checkpoint"):
        self._manager.wait_until_finished()
    except Exception:
      self._save_failed = True
      raise

  def reached_preemption(self, index: int) -> bool:
    """orbax's agreed preemption point: True on every process at the same ``index``."""
    return bool(self._manager.reached_preemption(index))

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(
    self,
    step: int,
    state: PyTree,
    json_items: dict[str, Any],
    metrics: dict[str, float] | None = None,
  ) -> None:
    """Saves ``state`` and the JSON ``json_items`` asynchronously; ``metrics`` are kept only
    by a store with a selection (orbax then tracks the best step by them)."""
    args = {"state": ocp.args.StandardSave(state)}
    args.update({item: ocp.args.JsonSave(value) for item, value in json_items.items()})
    before = set(threading.enumerate())
    try:
      with disk_full.writing(self.directory, "a checkpoint"):
        self._manager.save(
          step,
          args=ocp.args.Composite(**args),
          metrics=metrics if self.tracks_metrics else None,
        )
    except Exception:
      self._save_failed = True
      raise
    finally:
      started = [t for t in threading.enumerate() if t not in before]
      self._save_threads = started or self._save_threads

  def metrics(self, step: int) -> dict[str, float] | None:
    """The scalars saved with ``step`` (selection runs), or None (none saved, or unreadable)."""
    try:
      return self._manager.metrics(step)
    except (OSError, ValueError):
      return None

  # Reading.

  def step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def has(self, step: int, item: str) -> bool:
    return os.path.isdir(os.path.join(self.step_dir(step), item))

  def damaged(self, step: int, reason: str) -> CheckpointDamagedError:
    return CheckpointDamagedError(
      f"checkpoint step {step} in {self.directory} is damaged ({reason}); pick another step "
      f"(available: {sorted(self.all_steps())}), or re-run training in this workdir, which "
      f"moves it to {self.damaged_directory}/ and resumes from the newest good one.",
      step=step,
      reason=reason,
    )

  def _require_items(self, step: int) -> None:
    missing = [i for i in ITEMS if not self.has(step, i)]
    if missing:
      what = "empty step folder" if len(missing) == len(ITEMS) else "missing " + ", ".join(missing)
      raise self.damaged(step, what)

  def read(self, step: int, item: str, args: Any) -> Any:
    self._require_items(step)
    try:
      with quiet_reads():
        return self._manager.restore(step, args=ocp.args.Composite(**{item: args}))[item]
    except Exception as e:  # any failure to read a committed step is damage...
      if out_of_memory(e):  # ...except running out of memory, which says nothing about the files
        raise
      raise self.damaged(step, f"{item} unreadable: {short_error(e, self.directory)}") from e

  def read_json(self, step: int, item: str) -> Any:
    return self.read(step, item, ocp.args.JsonRestore())

  def read_state(self, step: int, target: PyTree) -> PyTree:
    return self.read(step, "state", ocp.args.StandardRestore(target))

  def state_metadata(self, step: int) -> PyTree:
    """The stored state's tree of array metadata (shapes and dtypes), without the arrays."""
    self._require_items(step)
    try:
      with quiet_reads():
        return self._manager.item_metadata(step)["state"].tree
    except Exception as e:
      if out_of_memory(e):
        raise
      reason = f"state metadata unreadable: {short_error(e, self.directory)}"
      raise self.damaged(step, reason) from e

  def move_aside(self, step: int) -> str:
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
      os.rename(self.step_dir(step), dest)
    if multi:
      ocp.multihost.sync_global_processes(f"jaxgan_damaged_moved_{step}_{self._moves}")
    self._manager.reload()  # else the manager still lists the step and skips re-saving it
    return dest
