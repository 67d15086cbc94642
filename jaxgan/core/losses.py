"""Adversarial losses, registered by name, each with its own notion of D's output.

D returns one raw value per example (per pack). Each D loss says how to read it:
``probability`` losses (BCE) pass it through a sigmoid, D(x) = sigmoid(l), and are
written on the logit so they stay finite where the sigmoid saturates
(log D = -softplus(-l), log(1 - D) = -softplus(l)); ``critic`` losses use the
raw value. All losses are *minimised*.

  name             D loss                                    G loss
  bce              -E log D(x) - E log(1 - D(G(z)))          minimax: E log(1 - D(G(z)))
                   (Goodfellow et al. 2014, Eq. 1)           non_saturating: -E log D(G(z))
  least_squares    1/2 E (D(x) - 1)^2 + 1/2 E D(G(z))^2      1/2 E (D(G(z)) - 1)^2
                   (Mao et al. 2017, Eq. 2 with a=0, b=c=1)
  wasserstein      E D(G(z)) - E D(x)  (Arjovsky et al. 2017) -E D(G(z))
  hinge            E relu(1 - D(x)) + E relu(1 + D(G(z)))    -E D(G(z))
                   (Lim & Ye 2017; Miyato et al. 2018)
  rpgan            E softplus(D(G(z)) - D(x))                E softplus(D(x) - D(G(z)))
                   (relativistic pairing: Jolicoeur-Martineau 2019; Huang et al. 2024, R3GAN)

RpGAN pairs the i-th real with the i-th fake example, as R3GAN does.
``loss.g = "auto"`` takes each D loss's usual partner (``AUTO_G``): the
non-saturating loss for BCE, the same name otherwise.

Top-k training (Sinha et al. 2020; ``loss.topk_gamma`` < 1) takes G's loss over the k fakes
of the (global) batch that D scores highest only, k = int(max(n gamma^e, int(n nu))) of n D
outputs, as StudioGAN: e counts the passes over the data before this step, one every
``loss.topk_kimg`` thousand real images, i.e. every floor(1000 kimg / (batch k_D)) steps
(StudioGAN's epoch of whole baskets of k_D batches), and k decays after the step that
opens a pass: e = max(step - 1, 0) // steps_per_epoch (``TopK``). The loss is the sum over
the chosen fakes divided by k; the others get no gradient. Refused for losses that pair
fakes with reals (rpgan).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxgan.errors import ConfigError
from jaxgan.registry import Registry

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class DLoss:
  """A discriminator loss and how to read D's output under it.

  Attributes:
    fn: ``(real_out, fake_out) -> loss``, on D's raw outputs.
    output: ``probability`` (D(x) = sigmoid(raw)) or ``critic`` (the raw value).
    indifferent: D's output where it cannot tell real from fake (1/2 for BCE and
      least squares), or None where no single value means that (critics).
    equilibrium: the loss when D gives real and fake the same output (at
      ``indifferent`` where there is one; e.g. 2 log 2 for BCE), or None.
  """

  fn: Callable[[Array, Array], Array]
  output: str = "critic"
  indifferent: float | None = None
  equilibrium: float | None = None

  def __call__(self, real_out: Array, fake_out: Array) -> Array:
    return self.fn(real_out, fake_out)

  def read(self, raw: Array) -> Array:
    """D's raw output -> what this loss calls D(x): a probability or the critic value."""
    return jax.nn.sigmoid(raw) if self.output == "probability" else raw


@dataclasses.dataclass(frozen=True)
class GLoss:
  """A generator loss. ``needs_real``: it also looks at D(x) (relativistic losses)."""

  fn: Callable[[Array, Array | None], Array]
  needs_real: bool = False
  equilibrium: float | None = None

  def __call__(self, fake_out: Array, real_out: Array | None = None) -> Array:
    return self.fn(fake_out, real_out)


D_LOSSES: Registry[DLoss] = Registry("discriminator loss")
# config.loss.d_reduction: the factor on D's adversarial loss. "sum" adds the real and
# fake expectations (for BCE: -V(D, G) of Eq. 1); "mean" averages them, as the 2014
# released code does (d_obj = 0.5 * (cost(real) + cost(fake))), which halves D's
# gradient: with plain SGD, "sum" trains D at twice the released code's step size.
D_REDUCTIONS = {"sum": 1.0, "mean": 0.5}
G_LOSSES: Registry[GLoss] = Registry("generator loss")
LOG2 = math.log(2.0)


def reduced(loss: DLoss, reduction: str) -> DLoss:
  """``loss`` scaled by ``D_REDUCTIONS[reduction]``; its equilibrium value scales with it."""
  factor = D_REDUCTIONS[reduction]
  if factor == 1.0:
    return loss
  eq = None if loss.equilibrium is None else factor * loss.equilibrium
  return dataclasses.replace(
    loss, fn=lambda real, fake: factor * loss.fn(real, fake), equilibrium=eq
  )


def bce_with_logits(logits: Array, label: float) -> Array:
  """Element-wise binary cross-entropy -[y log s(l) + (1-y) log(1-s(l))]."""
  return label * jax.nn.softplus(-logits) + (1.0 - label) * jax.nn.softplus(logits)


def discriminator_bce(real: Array, fake: Array) -> Array:
  """-E[log D(x)] - E[log(1 - D(G(z)))]: BCE with real labelled 1, fake 0."""
  return jnp.mean(bce_with_logits(real, 1.0)) + jnp.mean(bce_with_logits(fake, 0.0))


def generator_minimax(fake: Array, real: Array | None = None) -> Array:
  """E[log(1 - D(G(z)))], the term of V that G minimises; saturates when D wins."""
  return -jnp.mean(jax.nn.softplus(fake))


def generator_non_saturating(fake: Array, real: Array | None = None) -> Array:
  """-E[log D(G(z))]: the paper's practical generator loss (strong early gradients)."""
  return jnp.mean(bce_with_logits(fake, 1.0))


def discriminator_least_squares(real: Array, fake: Array) -> Array:
  return 0.5 * jnp.mean(jnp.square(real - 1.0)) + 0.5 * jnp.mean(jnp.square(fake))


def generator_least_squares(fake: Array, real: Array | None = None) -> Array:
  return 0.5 * jnp.mean(jnp.square(fake - 1.0))


def discriminator_wasserstein(real: Array, fake: Array) -> Array:
  return jnp.mean(fake) - jnp.mean(real)


def generator_critic(fake: Array, real: Array | None = None) -> Array:
  """-E[D(G(z))]: the generator side of the Wasserstein and hinge losses."""
  return -jnp.mean(fake)


def discriminator_hinge(real: Array, fake: Array) -> Array:
  return jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))


def discriminator_rpgan(real: Array, fake: Array) -> Array:
  return jnp.mean(jax.nn.softplus(fake - real))


def generator_rpgan(fake: Array, real: Array | None) -> Array:
  return jnp.mean(jax.nn.softplus(real - fake))


D_LOSSES.register("bce")(DLoss(discriminator_bce, "probability", 0.5, 2 * LOG2))
D_LOSSES.register("least_squares")(DLoss(discriminator_least_squares, "critic", 0.5, 0.25))
D_LOSSES.register("wasserstein")(DLoss(discriminator_wasserstein, "critic", equilibrium=0.0))
D_LOSSES.register("hinge")(DLoss(discriminator_hinge, "critic", equilibrium=2.0))
D_LOSSES.register("rpgan")(DLoss(discriminator_rpgan, "critic", equilibrium=LOG2))

AUTO_G = {
  "bce": "non_saturating",
  "least_squares": "least_squares",
  "wasserstein": "wasserstein",
  "hinge": "hinge",
  "rpgan": "rpgan",
}


def auto_partner(d: str) -> str:
  """The G loss that ``loss.g = "auto"`` takes for D loss ``d``; a D loss registered
  without an ``AUTO_G`` entry is a one-line ConfigError."""
  if d not in AUTO_G:
    raise ConfigError(
      f"config.loss.g='auto': discriminator loss {d!r} has no usual generator loss "
      f"(jaxgan.core.losses.AUTO_G); set config.loss.g to one of {', '.join(G_LOSSES.names())}, "
      f"or give {d!r} an AUTO_G entry."
    )
  return AUTO_G[d]


def generator_loss_name(g: str, d: str) -> str:
  """``loss.g`` with ``auto`` resolved against ``loss.d``."""
  return auto_partner(d) if g == "auto" else g


G_LOSSES.register("minimax")(GLoss(generator_minimax, equilibrium=-LOG2))
G_LOSSES.register("non_saturating")(GLoss(generator_non_saturating, equilibrium=LOG2))
G_LOSSES.register("least_squares")(GLoss(generator_least_squares, equilibrium=0.125))
G_LOSSES.register("wasserstein")(GLoss(generator_critic))
G_LOSSES.register("hinge")(GLoss(generator_critic))
G_LOSSES.register("rpgan")(GLoss(generator_rpgan, needs_real=True, equilibrium=LOG2))


@dataclasses.dataclass(frozen=True)
class TopK:
  """Top-k training's schedule: k of n D outputs at a step (see the module docstring)."""

  gamma: float
  nu: float
  steps_per_epoch: int

  def epoch(self, step: Array) -> Array:
    """Passes over the data counted before ``step``'s G update (StudioGAN's ``epoch``)."""
    return jnp.maximum(step - 1, 0) // self.steps_per_epoch

  def k(self, n: int, step: Array) -> Array:
    e = self.epoch(step).astype(jnp.float32)
    decayed = n * jnp.power(jnp.float32(self.gamma), e)
    return jnp.floor(jnp.maximum(decayed, math.floor(n * self.nu))).astype(jnp.int32)


def topk_schedule(loss: Any, batch_size: int, d_steps: int) -> TopK | None:
  """``config.loss``'s top-k schedule (None: off, ``topk_gamma`` = 1)."""
  if loss.get("topk_gamma", 1.0) >= 1.0:
    return None
  images = round(1000 * loss.topk_kimg)
  return TopK(loss.topk_gamma, loss.topk_nu, max(images // (batch_size * d_steps), 1))


def top_k_mask(scores: Array, k: Array, axis_name: str | None) -> Array:
  """Whether each of this device's ``scores`` is among the k largest of the global batch
  (ties: the earlier example), as a one-device run would choose."""
  every = scores if axis_name is None else lax.all_gather(scores, axis_name, tiled=True)
  order = jnp.argsort(-every, stable=True)
  rank = jnp.zeros(every.shape, jnp.int32).at[order].set(jnp.arange(every.shape[0]))
  chosen = rank < k
  if axis_name is None:
    return chosen
  n = scores.shape[0]
  return lax.dynamic_slice_in_dim(chosen, lax.axis_index(axis_name) * n, n)


def generator_term(g_loss: GLoss, topk: TopK | None = None) -> Callable:
  """G's adversarial term ``fn(ctx) -> (loss, metrics)``: ``g_loss`` on D's fake outputs, or
  with ``topk`` on the k highest only."""
  if topk is None:
    return lambda ctx: (g_loss(ctx.fake_out, ctx.real_out), {})

  def term(ctx):
    out = ctx.fake_out
    n_local = out.shape[0]
    per = jax.vmap(lambda o: g_loss(o[None]))(out)  # each output's loss: the losses are means
    devices = 1 if ctx.axis_name is None else lax.axis_size(ctx.axis_name)
    k = topk.k(n_local * devices, ctx.step)
    chosen = top_k_mask(jax.lax.stop_gradient(out).reshape(n_local), k, ctx.axis_name)
    loss = devices * jnp.sum(jnp.where(chosen, per, 0.0)) / k  # mean over devices: 1-device
    return loss, {"k": k.astype(jnp.float32)}

  return term
