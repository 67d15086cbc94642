"""Does a checkpoint fit the state this config builds? Shapes by leaf name, and old layouts.

A mismatch is the user's to resolve (a new workdir, or the checkpoint's config values),
so it is one error naming each differing array and, given by the caller, how the
config differs from the stored one. Checkpoints from before the per-player state (flat
``g_params``, ``d_opt_state``, ``objective_state``, ...) convert on restore.
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from jaxgan.core.state import LEGACY_KEYS, GANState, PyTree, from_legacy, to_legacy
from jaxgan.errors import CheckpointMismatchError
from jaxgan.run.checkpointing.digests import path_name

SHOWN = 20  # differing arrays listed in a mismatch error


def shapes_by_name(tree: PyTree) -> dict[str, tuple[tuple[int, ...], str]]:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {path_name(p): (tuple(leaf.shape), str(leaf.dtype)) for p, leaf in leaves}


def differing_arrays(stored: PyTree, wanted: PyTree) -> list[str]:
  """One line per array whose shape differs, or that only one of the trees has."""
  have, want = shapes_by_name(stored), shapes_by_name(wanted)
  problems = []
  for name in sorted(set(have) | set(want)):
    if name not in have:
      problems.append(f"  {name}: not in the checkpoint (new in this config: {want[name][0]})")
    elif name not in want:
      problems.append(f"  {name}: in the checkpoint {have[name][0]}, absent from this config")
    elif have[name][0] != want[name][0]:
      problems.append(f"  {name}: checkpoint {have[name][0]} vs config {want[name][0]}")
  return problems


def mismatch_error(
  step: int, directory: str, problems: list[str], config_changes: list[str]
) -> CheckpointMismatchError:
  shown = problems[:SHOWN] + (
    [f"  ... and {len(problems) - SHOWN} more"] if len(problems) > SHOWN else []
  )
  changes = "\n".join("  " + c for c in config_changes) or "  (none)"
  return CheckpointMismatchError(
    f"the checkpoint at step {step} in {directory} does not fit this config.\n"
    f"State arrays that differ:\n" + "\n".join(shown) + "\n"
    f"Config keys that differ from the checkpoint's:\n{changes}\n"
    f"Use a new --workdir for a different model, or restore the checkpoint's values."
  )


def as_stored(stored: PyTree, target: PyTree) -> tuple[PyTree, Callable[[PyTree], PyTree]]:
  """``target`` in the layout of the ``stored`` tree (its metadata), and what turns a tree
  restored in that layout into today's (``jaxgan.core.state.from_legacy``)."""
  if isinstance(target, GANState) and LEGACY_KEYS & set(stored):
    return to_legacy(target), from_legacy
  return target, lambda tree: tree
