"""Discriminator regularizers, by name, for ``loss.d_penalties = "name:weight[@every]"``.

Each is a term of the D objective (see ``jaxgan.core.objectives``); ``weight`` multiplies
the value below.

  gp            E (||grad D(x^)|| - 1)^2 on x^ = e x + (1 - e) G(z), e ~ U[0, 1)
                per example (WGAN-GP, Gulrajani et al. 2017)
  gp_one_sided  E max(0, ||grad D(x^)|| - 1)^2 on the same x^ (ibid., Sec. 4)
  dragan        E (||grad D(x^)|| - 1)^2 on x^ = x + a * 0.5 std(x) u, a ~ U[0, 1)
                per example, u ~ U[0, 1) per value: around the data (Kodali et al.
                2017, as in their released code)
  gp0           E ||grad D(x^)||^2 on the WGAN-GP interpolates x^: zero-centred
                (Thanh-Tung et al. 2019)
  r1            1/2 E ||grad D(x)||^2 on real data (Mescheder et al. 2018); with
                weight gamma this is StyleGAN2's gamma/2 E ||grad D(x)||^2
  r2            1/2 E ||grad D(G(z))||^2 on generated data (ibid.)
  lecam         E relu(D(x) - a_F)^2 + E relu(a_R - D(G(z)))^2, where a_R and a_F are
                moving averages of D's mean output on real and fake (Tseng et al.
                2021, as in their released code: the averages are updated first,
                with decay 0 (the latest batch mean) until training step 1,000 and
                0.99 after; the regularizer is added from step 1,001 on). The
                averages live in the state.

Gradients are taken with respect to D's input through augmentation (DiffAugment),
and one norm is taken per D output (per pack of m examples under PacGAN).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxgan.core import streams
from jaxgan.core.objectives import Penalty, TermContext
from jaxgan.registry import Registry

Array = jax.Array
D_PENALTIES: Registry[Penalty] = Registry("discriminator penalty")
LECAM_DECAY = 0.99
LECAM_START = 1000


def penalty(name: str, **kwargs):
  """Registers ``fn(ctx) -> (loss, metrics)`` as the penalty ``name``."""

  def register(fn):
    D_PENALTIES.register(name)(Penalty(fn, **kwargs))
    return fn

  return register


def input_gradients(ctx: TermContext, x: Array, y: Array | None) -> Array:
  """d sum(D(x)) / dx, one row per D output: [outputs, values per output]."""
  key = streams.sub(ctx.key, "d")
  g = jax.grad(lambda x: jnp.sum(ctx.d(x, y, key)))(x)
  return g.reshape(g.shape[0] // ctx.group, -1)


def _norms(g: Array) -> Array:
  return jnp.sqrt(jnp.sum(jnp.square(g), axis=1) + 1e-12)


def _per_example_uniform(ctx: TermContext, name: str, like: Array) -> Array:
  shape = (1,) * (like.ndim - 1)
  return ctx.draw(lambda k, n: jax.random.uniform(k, (n, *shape)), streams.sub(ctx.key, name))


def _centred_norm_penalty(ctx: TermContext, x: Array, one_sided: bool = False):
  norms = _norms(input_gradients(ctx, x, ctx.real_y))
  gap = jax.nn.relu(norms - 1.0) if one_sided else norms - 1.0
  return jnp.mean(jnp.square(gap)), {"grad_norm": jnp.mean(norms)}


def gp_points(ctx: TermContext) -> Array:
  """WGAN-GP's random interpolates between real and generated examples."""
  e = _per_example_uniform(ctx, "interpolation", ctx.real_x)
  return e * ctx.real_x + (1.0 - e) * ctx.fake_x


def dragan_points(ctx: TermContext) -> Array:
  """DRAGAN's perturbed real examples; std over all values of the global real batch."""
  x = ctx.real_x
  std = jnp.sqrt(ctx.global_mean(jnp.square(x - ctx.global_mean(x))))  # two passes, as numpy
  u = ctx.draw(lambda k, n: jax.random.uniform(k, (n, *x.shape[1:])), streams.sub(ctx.key, "noise"))
  a = _per_example_uniform(ctx, "alpha", x)
  return x + a * 0.5 * std * u


@penalty("gp", per_example=True)
def _gp(ctx: TermContext):
  return _centred_norm_penalty(ctx, gp_points(ctx))


@penalty("gp_one_sided", per_example=True)
def _gp_one_sided(ctx: TermContext):
  return _centred_norm_penalty(ctx, gp_points(ctx), one_sided=True)


@penalty("gp0", per_example=True)
def _gp0(ctx: TermContext):
  sq = jnp.sum(jnp.square(input_gradients(ctx, gp_points(ctx), ctx.real_y)), axis=1)
  return jnp.mean(sq), {"grad_norm": jnp.mean(jnp.sqrt(sq))}


@penalty("dragan", per_example=True)
def _dragan(ctx: TermContext):
  return _centred_norm_penalty(ctx, dragan_points(ctx))


@penalty("r1", per_example=True)
def _r1(ctx: TermContext):
  sq = jnp.sum(jnp.square(input_gradients(ctx, ctx.real_x, ctx.real_y)), axis=1)
  return 0.5 * jnp.mean(sq), {"grad_norm": jnp.mean(jnp.sqrt(sq))}


@penalty("r2", per_example=True)
def _r2(ctx: TermContext):
  sq = jnp.sum(jnp.square(input_gradients(ctx, ctx.fake_x, ctx.fake_y)), axis=1)
  return 0.5 * jnp.mean(sq), {"grad_norm": jnp.mean(jnp.sqrt(sq))}


def _lecam_init():
  return {"real": jnp.zeros((), jnp.float32), "fake": jnp.zeros((), jnp.float32)}


def _lecam_next(ctx: TermContext):
  """The anchors after this update's batch (decay 0 before step LECAM_START)."""
  decay = jnp.where(ctx.step < LECAM_START, 0.0, LECAM_DECAY)
  mean = lambda x: ctx.global_mean(jax.lax.stop_gradient(x))
  return {
    "real": decay * ctx.state["real"] + (1 - decay) * mean(ctx.real_out),
    "fake": decay * ctx.state["fake"] + (1 - decay) * mean(ctx.fake_out),
  }


@penalty("lecam", init_state=_lecam_init, next_state=_lecam_next)
def _lecam(ctx: TermContext):
  anchors = _lecam_next(ctx)  # updated before use, as in the released code
  reg = jnp.mean(jnp.square(jax.nn.relu(ctx.real_out - anchors["fake"]))) + jnp.mean(
    jnp.square(jax.nn.relu(anchors["real"] - ctx.fake_out))
  )
  on = (ctx.step > LECAM_START).astype(reg.dtype)
  return on * reg, {"anchor_real": anchors["real"], "anchor_fake": anchors["fake"]}
