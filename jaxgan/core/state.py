"""The one pytree that holds everything needed to continue a run bit-exactly."""

from __future__ import annotations

from typing import Any

import flax
import jax

PyTree = Any


@flax.struct.dataclass
class PlayerState:
  """One player's (G's or D's) part of the state; both players have the same four fields.

  Attributes:
    params: the network's trainable parameters.
    collections: non-trainable variables, e.g. {'batch_stats': ...} or spectral
      normalisation's power-iteration vectors; an empty dict when there are none.
    opt_state: the optax state of its optimizer.
    term_state: its objective terms' own state, {term name: ...} (e.g. LeCam's
      moving averages of D's outputs); an empty dict when no term keeps any.
  """

  params: PyTree
  collections: PyTree
  opt_state: PyTree
  term_state: PyTree


@flax.struct.dataclass
class EMAState:
  """A moving average of G for sampling: its weights, and with ``train.ema_buffers=
  'average'`` its collections too (BigGAN averages batch-norm statistics); otherwise
  ``collections`` is None and sampling uses G's own (StyleGAN copies its buffers)."""

  params: PyTree
  collections: PyTree = None


@flax.struct.dataclass
class GANState:
  """Training state. Pure data: no modules or functions, so orbax saves it as arrays.

  Attributes:
    step: completed training steps (one step = k D updates + g_steps G updates).
    g, d: the players' states (``PlayerState``).
    rng: the run's base PRNG key (raw uint32[2]); step s draws everything from
      ``fold_in(rng, s)`` by named streams (``jaxgan.core.streams``), so it never changes.
    g_ema: the moving average of G (``EMAState``; None when neither
      ``train.ema_decay`` nor ``train.ema_kimg`` is set). Sampling uses it when present.
    hparams: a population's swept hyperparameters ({'optim': {'d': {'lr': ...}}});
      None in a single run (``jaxgan.core.population``).
    ada: ADA's augmentation probability and the signs of D(real) since its last
      adjustment (``jaxgan.core.ada.AdaState``); None without ``loss.ada``.
  """

  step: jax.Array
  g: PlayerState
  d: PlayerState
  rng: jax.Array
  g_ema: EMAState | None = None
  hparams: PyTree = None
  ada: PyTree = None

  def sampling_variables(self) -> tuple[PyTree, PyTree]:
    """(params, collections) of the G to sample from: the EMA when there is one, with its
    own collections if it averages them, G's otherwise."""
    if self.g_ema is None:
      return self.g.params, self.g.collections
    cols = self.g.collections if self.g_ema.collections is None else self.g_ema.collections
    return self.g_ema.params, cols


# Checkpoints written before the state was split per player hold these top-level keys.
LEGACY_KEYS = frozenset(
  {
    "g_params",
    "d_params",
    "g_collections",
    "d_collections",
    "g_opt_state",
    "d_opt_state",
    "objective_state",
  }
)


def to_legacy(state: GANState) -> dict[str, PyTree]:
  """``state`` in the layout of checkpoints written before the per-player split (flat
  ``g_params``, ``d_opt_state``, ... and ``objective_state={'d': ..., 'g': ...}``), so
  such a checkpoint can be checked and restored against it."""
  out = {
    "step": state.step,
    "rng": state.rng,
    "g_ema_params": None if state.g_ema is None else state.g_ema.params,
    "hparams": state.hparams,
    "objective_state": {"d": state.d.term_state, "g": state.g.term_state},
  }
  for who in ("g", "d"):
    player = getattr(state, who)
    out.update(
      {
        f"{who}_params": player.params,
        f"{who}_collections": player.collections,
        f"{who}_opt_state": player.opt_state,
      }
    )
  return out


def from_legacy(tree: dict[str, PyTree]) -> GANState:
  """The inverse of ``to_legacy``: a restored old-layout tree as today's ``GANState``."""
  players = {
    who: PlayerState(
      params=tree[f"{who}_params"],
      collections=tree[f"{who}_collections"],
      opt_state=tree[f"{who}_opt_state"],
      term_state=(tree.get("objective_state") or {}).get(who, {}),
    )
    for who in ("g", "d")
  }
  return GANState(
    step=tree["step"],
    rng=tree["rng"],
    g_ema=None if tree.get("g_ema_params") is None else EMAState(tree["g_ema_params"]),
    hparams=tree.get("hparams"),
    **players,
  )
