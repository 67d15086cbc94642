"""Orbax checkpoints of the whole run: state, data position and config.

Layout: ``<workdir>/checkpoints/<step>/{state,data,config}``. The manager is
always used as a context manager, so an in-flight async save is finished (or
cleanly never committed) before the process exits: no half-written checkpoint
is ever left as the latest one.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from jaxgan import config as config_lib
from jaxgan.errors import CheckpointMismatchError
from jaxgan.state import PyTree


def path_name(path) -> str:
  """A tree path as 'g_params.Dense_0.kernel' (the same for state and metadata)."""
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


class Checkpointer:
  """A thin, always-closed wrapper around ``ocp.CheckpointManager``."""

  ITEMS = ("state", "data", "config")

  def __init__(self, workdir: str, *, max_to_keep: int = 3, async_save: bool = True,
               read_only: bool = False):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    if read_only:
      options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0,
                                             enable_async_checkpointing=False)
    else:
      options = ocp.CheckpointManagerOptions(
          max_to_keep=max_to_keep, create=True, enable_async_checkpointing=async_save,
          cleanup_tmp_directories=True)
    handlers = {"state": ocp.StandardCheckpointHandler(),
                "data": ocp.JsonCheckpointHandler(),
                "config": ocp.JsonCheckpointHandler()}
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

  def __enter__(self) -> "Checkpointer":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: PyTree, data_position: dict[str, Any],
           config: dict[str, Any]) -> None:
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ocp.args.JsonSave(data_position),
        config=ocp.args.JsonSave(config)))

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def stored_config(self, step: int) -> dict[str, Any]:
    return self._manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]

  def check_compatible(self, step: int, target: PyTree, config: dict[str, Any]) -> list[str]:
    """Raises CheckpointMismatchError naming differing keys; returns the config diff."""
    stored = shapes_by_name(self._manager.item_metadata(step)["state"].tree)
    wanted = shapes_by_name(target)
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
      shown = problems[:20] + ([f"  ... and {len(problems) - 20} more"] if len(problems) > 20 else [])
      changes = "\n".join("  " + c for c in config_changes) or "  (none)"
      raise CheckpointMismatchError(
          f"the checkpoint at step {step} in {self.directory} does not fit this config.\n"
          f"State arrays that differ:\n" + "\n".join(shown) + "\n"
          f"Config keys that differ from the checkpoint's:\n{changes}\n"
          f"Use a new --workdir for a different model, or restore the checkpoint's values.")
    return config_changes

  def restore(self, step: int, target: PyTree) -> tuple[PyTree, dict[str, Any]]:
    """(state, data position) at ``step``, placed as ``target``'s ShapeDtypeStructs say."""
    out = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore()))
    return out["state"], out["data"]
