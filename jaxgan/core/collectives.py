"""Named-axis helpers that reduce to the identity when there is no device axis.

The per-device train step is written once against these; ``axis_name=None``
gives a plain single-device step (also the one to ``vmap`` over seeds).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from jax import lax

PyTree = Any
AXIS = "batch"  # the device axis of every data-parallel mode (jaxgan.core.parallel)


def axis_name_for(mode: str) -> str | None:
  """``config.parallel`` -> the device axis the step reduces over (None on one device)."""
  return None if mode == "none" else AXIS


def pmean(tree: PyTree, axis_name: str | None) -> PyTree:
  return tree if axis_name is None else lax.pmean(tree, axis_name)


def num_devices(axis_name: str | None) -> int:
  return 1 if axis_name is None else lax.axis_size(axis_name)


def device_key(key: jax.Array, axis_name: str | None) -> jax.Array:
  """A key that differs per device (for dropout masks, which are drawn locally)."""
  return key if axis_name is None else jax.random.fold_in(key, lax.axis_index(axis_name))


def shard_of_global(
  sample: Callable[[jax.Array, int], PyTree], key: jax.Array, local_n: int, axis_name: str | None
) -> PyTree:
  """This device's slice of ``sample(key, global_n)``.

  Every device draws the whole global batch from the same key and keeps its
  slice, so a run on D devices sees exactly the numbers a 1-device run sees.
  Used for noise, fake labels and synthetic data, which are cheap to draw.
  """
  if axis_name is None:
    return sample(key, local_n)
  start = lax.axis_index(axis_name) * local_n
  full = sample(key, local_n * lax.axis_size(axis_name))
  return jax.tree.map(lambda a: lax.dynamic_slice_in_dim(a, start, local_n, axis=0), full)
