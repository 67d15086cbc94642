"""The one pytree that holds everything needed to continue a run bit-exactly."""

from __future__ import annotations

from typing import Any

import flax
import jax

PyTree = Any


@flax.struct.dataclass
class GANState:
  """Training state. Pure data: no modules or functions, so orbax saves it as arrays.

  Attributes:
    step: completed training steps (one step = k D updates + g_steps G updates).
    g_params, d_params: the networks' trainable parameters.
    g_collections, d_collections: non-trainable variables, e.g. {'batch_stats': ...};
      empty dicts for networks without batch norm.
    g_opt_state, d_opt_state: optax states.
    rng: a raw uint32[2] PRNG key, split once per step.
    g_ema_params: an exponential moving average of ``g_params`` (None when
      ``train.ema_decay`` is 0). Sampling uses it when present.
  """

  step: jax.Array
  g_params: PyTree
  d_params: PyTree
  g_collections: PyTree
  d_collections: PyTree
  g_opt_state: PyTree
  d_opt_state: PyTree
  rng: jax.Array
  g_ema_params: PyTree = None

  def sampling_params(self) -> PyTree:
    """The generator weights to sample from: the EMA copy when there is one."""
    return self.g_params if self.g_ema_params is None else self.g_ema_params
