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
    rng: the run's base PRNG key (raw uint32[2]); step s draws everything from
      ``fold_in(rng, s)`` by named streams (``jaxgan.core.streams``), so it never changes.
    g_ema_params: a moving average of ``g_params`` (None when neither
      ``train.ema_decay`` nor ``train.ema_kimg`` is set). Sampling uses it when present.
    objective_state: objective terms' own state, {'d': {term: ...}, 'g': {...}}
      (e.g. LeCam's moving averages of D's outputs).
    hparams: a population's swept hyperparameters ({'optim': {'d': {'lr': ...}}});
      None in a single run (``jaxgan.core.population``).
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
  objective_state: PyTree = None
  hparams: PyTree = None

  def sampling_params(self) -> PyTree:
    """The generator weights to sample from: the EMA copy when there is one."""
    return self.g_params if self.g_ema_params is None else self.g_ema_params
