"""Runs one per-device step function data-parallel, three ways (``config.parallel``):

* ``shard_map`` (default): ``jax.jit(jax.shard_map(...))`` over a 1-D device
  ``Mesh`` with axis ``'batch'``; the multi-host path. The state is replicated,
  inputs are global arrays sharded along their example axis.
* ``pmap``: ``jax.pmap`` over local devices; the state carries a leading
  device axis.
* ``none``: plain ``jax.jit`` on one device, no collectives.

All three compile the same per-device function. ``shard_map`` runs with
``check_vma=False`` so that, as under ``pmap``, gradients of replicated
parameters are per-device values that the step averages with ``lax.pmean``
(with ``check_vma=True`` shard_map would already psum them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, SingleDeviceSharding
from jax.sharding import PartitionSpec as P

from jaxgan.core.collectives import AXIS
from jaxgan.errors import ConfigError

PyTree = Any
MODES = ("shard_map", "pmap", "none")


class Runner:
  """Compiles ``fn(state, inputs, device_data) -> (state, metrics)`` for one mode.

  It also owns the placement of the state, per-call inputs and device data, so
  the training loop never needs to know which mode it runs in.
  """

  def __init__(
    self,
    fn: Callable,
    mode: str,
    inputs_batch_axes: PyTree,
    *,
    devices: list | None = None,
    donate: bool = True,
  ):
    if mode not in MODES:
      raise ConfigError(f"config.parallel={mode!r} is not one of {', '.join(MODES)}.")
    self.mode = mode
    self._batch_axes = inputs_batch_axes
    donate_argnums = (0,) if donate else ()
    if mode == "none":
      self.devices = [(devices or jax.local_devices())[0]]
      self._fn = jax.jit(fn, donate_argnums=donate_argnums)
    elif mode == "pmap":
      self.devices = list(devices or jax.local_devices())
      self._fn = jax.pmap(fn, axis_name=AXIS, devices=self.devices, donate_argnums=donate_argnums)
    else:
      self.devices = list(devices or jax.devices())
      self.mesh = Mesh(np.asarray(self.devices), (AXIS,))
      in_specs = (P(), jax.tree.map(self._spec, inputs_batch_axes, is_leaf=_is_axis), P())
      self._fn = jax.jit(
        jax.shard_map(fn, mesh=self.mesh, in_specs=in_specs, out_specs=(P(), P()), check_vma=False),
        donate_argnums=donate_argnums,
      )

  @property
  def num_devices(self) -> int:
    """Devices across all processes that share each global batch."""
    return len(self.devices) * (jax.process_count() if self.mode == "pmap" else 1)

  @staticmethod
  def _spec(axis: int | None) -> P:
    return P() if axis is None else P(*([None] * axis), AXIS)

  def _replicated(self) -> Any:
    if self.mode == "shard_map":
      return NamedSharding(self.mesh, P())
    return SingleDeviceSharding(self.devices[0])

  def place_state(self, state: PyTree) -> PyTree:
    """Host or single-device state -> the layout this mode's compiled step takes."""
    if self.mode == "pmap":
      n = len(self.devices)
      return jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))), state)
    return jax.device_put(state, self._replicated())

  def state_sharding(self) -> Any:
    """Where a restored checkpoint should be placed before ``place_state``."""
    return self._replicated()

  def unreplicate(self, tree: PyTree) -> PyTree:
    """The step's state or metrics -> one copy (drops pmap's device axis)."""
    if self.mode == "pmap":
      return jax.tree.map(lambda x: x[0], tree)
    return tree

  def place_inputs(self, inputs: PyTree) -> PyTree:
    """This process's numpy inputs -> device arrays, split along their example axes."""
    if self.mode == "none":
      return jax.device_put(inputs, self.devices[0])
    if self.mode == "pmap":
      n = len(self.devices)
      return jax.tree.map(
        lambda x, a: _split_for_pmap(np.asarray(x), a, n), inputs, self._batch_axes
      )
    return jax.tree.map(
      lambda x, a: jax.make_array_from_process_local_data(
        NamedSharding(self.mesh, self._spec(a)), np.asarray(x)
      ),
      inputs,
      self._batch_axes,
    )

  def place_device_data(self, data: PyTree | None) -> PyTree | None:
    """Replicates arrays that every device keeps for the whole run (e.g. MNIST)."""
    if data is None:
      return None
    if self.mode == "pmap":
      n = len(self.devices)
      stacked = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))), data)
      return jax.pmap(lambda x: x, devices=self.devices)(stacked)
    return jax.device_put(data, self._replicated())

  def __call__(self, state: PyTree, inputs: PyTree, device_data: PyTree | None = None):
    return self._fn(state, inputs, device_data)


def _is_axis(x) -> bool:
  return x is None or isinstance(x, int)


def _split_for_pmap(x: np.ndarray, axis: int | None, n: int) -> np.ndarray:
  """[..., B, ...] -> [n, ..., B/n, ...] (device axis first), or broadcast if unsharded."""
  if axis is None:
    return np.broadcast_to(x, (n, *x.shape))
  shape = x.shape[:axis] + (n, x.shape[axis] // n) + x.shape[axis + 1 :]
  return np.moveaxis(x.reshape(shape), axis, 0)
