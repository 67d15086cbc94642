"""Random streams by name: each key of a step is ``fold_in(step_key, id(name))``.

A step's key is ``fold_in(state.rng, state.step)``, so it depends on the run's
seed and the step alone. Every random quantity in the step (noise, labels,
dropout masks, augmentation, a penalty's interpolation weights) then comes from
its own named stream. A key depends only on its own name, so a new stream (a new
penalty, augmentation) never changes the numbers drawn by the others, and old
results stay reproducible. All of a step's keys are derived in one vectorised
``fold_in`` (one hash over an array of ids), which costs what one
``jax.random.split`` costs.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import jax
import numpy as np


def stream_id(name: str) -> int:
  """A stable 32-bit id for a stream name (CRC-32; the same on every machine and run)."""
  return zlib.crc32(name.encode("utf-8"))


def step_key(base_key: jax.Array, step: jax.Array) -> jax.Array:
  """The key of training step ``step``: a function of the run's key and the step only."""
  return jax.random.fold_in(base_key, step)


def derive(key: jax.Array, names: Iterable[str]) -> dict[str, jax.Array]:
  """{name: fold_in(key, stream_id(name))} for every name, in one vectorised hash."""
  names = list(dict.fromkeys(names))
  ids = np.array([stream_id(n) for n in names], np.uint32)
  if len(set(ids.tolist())) != len(ids):
    raise ValueError(f"stream ids collide among {names}; rename a stream")
  keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, ids)
  return {n: keys[i] for i, n in enumerate(names)}


def sub(key: jax.Array, name: str) -> jax.Array:
  """One named sub-stream of a key (for a term that needs several streams of its own)."""
  return jax.random.fold_in(key, stream_id(name))
