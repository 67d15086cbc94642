"""Toy distributions sampled inside the compiled step (no host I/O at all)."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from jaxgan.core.collectives import num_devices, shard_of_global
from jaxgan.data.pipeline import Pipeline
from jaxgan.data.protocol import SampledDataset
from jaxgan.data.spec import DataSpec


@dataclasses.dataclass(frozen=True)
class Gaussian1D:
  """N(mean, std^2); each example is a vector of ``dim`` i.i.d. values.

  ``dim=1`` is the paper's scalar setting; the textbook example uses ``dim=100``.
  """

  mean: float = 4.0
  std: float = 1.25
  dim: int = 1

  @property
  def spec(self) -> DataSpec:
    return DataSpec(shape=(self.dim,), name="gaussian_1d")

  def sample(self, key: jax.Array, n: int) -> dict[str, jax.Array]:
    return {"x": self.mean + self.std * jax.random.normal(key, (n, self.dim))}


class OnDeviceSampler(Pipeline):
  """Feeds a synthetic distribution: the host sends only iteration numbers."""

  def __init__(self, dataset: SampledDataset, global_batch: int, minibatches: int, seed: int):
    self.dataset = dataset
    self.spec = dataset.spec
    self.global_batch = global_batch
    self.minibatches = minibatches
    self._key = np.asarray(jax.random.key_data(jax.random.fold_in(jax.random.key(seed), 0xDA7A)))

  def host_inputs(self, start: int, num_steps: int):
    # The key travels with the inputs so that members of a population (jaxgan.core.population)
    # can each read their own seed's stream.
    return {
      "iteration": np.arange(start, start + num_steps, dtype=np.int32),
      "key": np.broadcast_to(self._key, (num_steps, *self._key.shape)),
    }

  def inputs_batch_axes(self):
    return {"iteration": None, "key": None}

  def materialize(self, step_inputs, device_data, axis_name):
    del device_data
    local_n = self.global_batch // num_devices(axis_name)
    key = jax.random.fold_in(step_inputs["key"], step_inputs["iteration"])
    keys = jax.random.split(key, self.minibatches)
    return jax.vmap(lambda k: shard_of_global(self.dataset.sample, k, local_n, axis_name))(keys)
