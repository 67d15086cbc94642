"""The moving average of G's weights that sampling uses, by decay or by half-life.

Two ways to set it (``config.train``):
  * ``ema_decay = beta``: ``ema <- beta * ema + (1 - beta) * params`` every step.
  * ``ema_kimg = H`` (StyleGAN2-ADA's ``ema_kimg``): a half-life of H thousand
    images, so beta = 0.5 ** (batch_size / (1000 H)); with ``ema_rampup = r``
    (StyleGAN2-ADA's ``ema_rampup``, e.g. 0.05) the half-life is at most
    r x the images seen so far, so the average forgets its random start early.
    Images are counted as step x batch_size (StyleGAN2's ``cur_nimg`` when
    d_steps = g_steps = 1).
  * ``ema_kimg = "cosine(0,5000,kimg=20000)"``: a scheduled half-life
    (``jaxgan.core.schedules``, counted in training steps), R3GAN's ``ema_scheduler``:
    beta = 0.5 ** (batch_size / max(1000 H(step), 1e-8)), so H = 0 copies G.

With ``ema_start = S`` (StudioGAN's ``g_ema_start``, BigGAN-PyTorch's ``--ema_start``) the
average is set to a copy of G after every step before step S (beta = 0, buffers too with
``average``), and moves by its decay from step S on (0-based, as ``state.step``; 0: from the
first step). It is a function of the step alone, so a resumed run needs no extra state.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxgan.core import schedules
from jaxgan.core.state import EMAState, PlayerState, PyTree


def _on(value) -> bool:
  """A positive setting, a schedule with a positive value, or a swept one (traced; sweeps
  never mix 0 with non-zero)."""
  if schedules.is_schedule(value):
    return schedules.bounds(value, "train.ema_kimg")[1] > 0
  return isinstance(value, jax.Array) or value > 0


BUFFERS = ("copy", "average")


@dataclasses.dataclass(frozen=True)
class EMA:
  """How the average moves (``decay`` or ``half_life_kimg``, ``rampup``), and what it does
  with G's collections (``buffers``): ``copy`` samples with G's own (StyleGAN2 copies its
  buffers into G_ema each step; nothing is stored twice), ``average`` keeps a moving
  average of them as well (BigGAN-PyTorch's EMA averages batch-norm statistics)."""

  decay: float = 0.0
  half_life_kimg: float | str = 0.0  # or a schedule
  rampup: float = 0.0
  batch_size: int = 1
  buffers: str = "copy"
  start: int = 0  # steps before this one copy G (beta 0)

  @property
  def varies(self) -> bool:
    """A scheduled half-life or a later start (its beta is logged as ``ema/beta``)."""
    s = schedules.of(self.half_life_kimg, "train.ema_kimg")
    return (s is not None and s.varies) or self.start > 0

  @property
  def enabled(self) -> bool:
    return _on(self.decay) or _on(self.half_life_kimg)

  def beta(self, step: jax.Array) -> jax.Array:
    """The decay applied after training step ``step`` (0-based): 0 before ``start``."""
    beta = self._decay(step)
    if self.start > 0:
      beta = jnp.where(step < self.start, jnp.zeros_like(beta), beta)
    return beta

  def _decay(self, step: jax.Array) -> jax.Array:
    """The decay of ``decay`` or of the half-life, ignoring ``start``."""
    if _on(self.decay):
      return jnp.asarray(self.decay, jnp.float32)
    scheduled = schedules.of(self.half_life_kimg, "train.ema_kimg")
    if scheduled is not None:
      nimg = scheduled(step, self.batch_size) * jnp.float32(1000.0)
    else:
      nimg = jnp.asarray(self.half_life_kimg * 1000.0, jnp.float32)
    if _on(self.rampup):
      nimg = jnp.minimum(nimg, step.astype(jnp.float32) * self.batch_size * self.rampup)
    return 0.5 ** (self.batch_size / jnp.maximum(nimg, 1e-8))

  def init(self, params: PyTree, collections: PyTree) -> EMAState:
    """The average at step 0: a copy of G (and of its collections with ``average``)."""
    cols = jax.tree.map(jnp.copy, collections) if self.buffers == "average" else None
    return EMAState(jax.tree.map(jnp.copy, params), cols)

  def update(self, ema: EMAState, g: PlayerState, step: jax.Array) -> EMAState:
    """The average after training step ``step``, from G's new state."""
    beta = self.beta(step)
    average = lambda e, p: beta * e + (1.0 - beta) * p
    cols = (
      None if ema.collections is None else jax.tree.map(average, ema.collections, g.collections)
    )
    return EMAState(jax.tree.map(average, ema.params, g.params), cols)
