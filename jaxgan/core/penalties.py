"""Regularizers by name: D's for ``loss.d_penalties``, G's for ``loss.g_penalties``, each
``"name:weight[@every]"``.

Each is a term of its player's objective (see ``jaxgan.core.objectives``); ``weight``
multiplies the value below.

D (``D_PENALTIES``):

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

G (``G_PENALTIES``):
  pl            E (|J_w^T y| - a)^2, StyleGAN2's path-length regularizer (Karras et al.
                2020): w = G's mapping of the first 1/2 (PL_BATCH_SHRINK) of the
                update's z, y ~ N(0, I) / sqrt(H W) an image-space direction,
                |J_w^T y| = sqrt(mean over w's layers of the squared norm of
                d sum(G_synthesis(w) y) / dw), and a its running mean (decay 0.01),
                updated first and kept in the state. Needs a G with ``mapping`` and
                ``synthesis``.
  ortho         sum over G's weights W (matrices [out, in], conv kernels flattened;
                label embeddings excluded) of 1/2 ||(W W^T) * (1 - I)||_F^2: BigGAN's
                off-diagonal orthogonal regularization (Brock et al. 2019), whose
                gradient 2 ((W W^T) * (1 - I)) W BigGAN-PyTorch adds to each weight's.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxgan.core import streams
from jaxgan.core.objectives import Penalty, TermContext
from jaxgan.registry import Registry

Array = jax.Array
D_PENALTIES: Registry[Penalty] = Registry("discriminator penalty")
G_PENALTIES: Registry[Penalty] = Registry("generator penalty")
PENALTIES = {"d": D_PENALTIES, "g": G_PENALTIES}
LECAM_DECAY = 0.99
LECAM_START = 1000
PL_DECAY = 0.01
PL_BATCH_SHRINK = 2


def penalty(name: str, player: str = "d", **kwargs):
  """Registers ``fn(ctx) -> (loss, metrics)`` as ``player``'s penalty ``name``."""

  def register(fn):
    PENALTIES[player].register(name)(Penalty(fn, **kwargs))
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


@penalty("lecam", init_state=_lecam_init, next_state=_lecam_next, reads_outputs=True)
def _lecam(ctx: TermContext):
  anchors = _lecam_next(ctx)  # updated before use, as in the released code
  reg = jnp.mean(jnp.square(jax.nn.relu(ctx.real_out - anchors["fake"]))) + jnp.mean(
    jnp.square(jax.nn.relu(anchors["real"] - ctx.fake_out))
  )
  on = (ctx.step > LECAM_START).astype(reg.dtype)
  return on * reg, {"anchor_real": anchors["real"], "anchor_fake": anchors["fake"]}


def _pl_init():
  return {"mean": jnp.zeros((), jnp.float32)}


def pl_direction(key: Array, shape: tuple[int, ...]) -> Array:
  """The random image-space direction y of path length: N(0, I) / sqrt(pixels per channel),
  as StyleGAN2's ``pl_noise`` (a function of its own, so a check against the official code
  can pin it)."""
  pixels = shape[1] * shape[2] if len(shape) == 4 else math.prod(shape[1:])
  return jax.random.normal(key, shape) / jnp.sqrt(pixels)


def path_lengths(ctx: TermContext) -> Array:
  """|J_w^T y| per example of the first 1/PL_BATCH_SHRINK of the update's z (``pl``)."""
  n = max(ctx.z.shape[0] // PL_BATCH_SHRINK, 1)
  y = None if ctx.fake_y is None else ctx.fake_y[:n]
  ws = ctx.g(ctx.z[:n], y, key=streams.sub(ctx.key, "mapping"), method="mapping")
  synthesize = lambda ws: ctx.g(ws, key=streams.sub(ctx.key, "synthesis"), method="synthesis")
  shape = jax.eval_shape(synthesize, ws).shape
  direction = pl_direction(streams.sub(ctx.key, "direction"), shape)
  grads = jax.grad(lambda ws: jnp.sum(synthesize(ws) * direction))(ws)
  sq = jnp.sum(jnp.square(grads), axis=-1)  # [n, num_ws] (or [n] for one w per example)
  return jnp.sqrt(sq.mean(axis=1) if sq.ndim == 2 else sq)


@penalty("pl", player="g", init_state=_pl_init, updates_state=True, needs_g_parts=True)
def _pl(ctx: TermContext):
  lengths = path_lengths(ctx)
  old = ctx.state["mean"]
  mean = old + (ctx.global_mean(lengths) - old) * PL_DECAY  # updated first, as released
  penalty_ = jnp.mean(jnp.square(lengths - mean))
  return penalty_, {"length": jnp.mean(lengths), "mean": mean}, {"mean": mean}


def _ortho_weights(params) -> list[Array]:
  """G's weights as [out, in] matrices, label embeddings (any path naming ``embed``) left out."""
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  return [
    w.reshape(-1, w.shape[-1]).T
    for path, w in leaves
    if w.ndim >= 2 and "embed" not in jax.tree_util.keystr(path).lower()
  ]


@penalty("ortho", player="g")
def _ortho(ctx: TermContext):
  total = jnp.zeros((), jnp.float32)
  for w in _ortho_weights(ctx.params):
    gram = w @ w.T
    total = total + 0.5 * jnp.sum(jnp.square(gram * (1.0 - jnp.eye(gram.shape[0]))))
  return total, {}
