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
  lecam         E relu(D(x) - a_F)^2 + E relu(a_R - D(G(z)))^2 (means over all values),
                where a_R and a_F are stop-gradient moving averages of D's mean output on
                the global real and fake batch (Tseng et al. 2021), kept in the state and
                updated after every D update; each update's term uses the averages that
                already include this batch (updated, then used), as both releases of
                google/lecam-gan do. ``loss.lecam_preset`` (``LECAM_PRESETS``) picks a
                release's averages:
                  biggan     (default) its BigGAN-CIFAR code: decay 0 (the latest batch
                             mean) while the training step < 1,000 (LECAM_START), 0.9
                             after; the term is added from step 1,001 on
                             (biggan_cifar/train.py: ema_losses(start_itr=1000);
                             third_party/utils.py: ema_losses, decay=0.9;
                             biggan_cifar/losses.py: loss_hinge_dis updates, lecam_reg
                             reads; third_party/train_fns.py: added when itr >
                             start_itr). Its step is BigGAN's itr: the k D updates of
                             one step share it.
                  stylegan2  its StyleGAN2 code (stylegan2/lecam_loss.py: lecamreg):
                             decay 0.99 from the first update, zero-debiased as TF's
                             assign_moving_average(zero_debias=True): b <- 0.99 b +
                             0.01 mean from b = 0, t <- t + 1, a = b / (1 - 0.99^t);
                             the term is added from the first update
                  studiogan  the biggan schedule with decay 0.99 instead of 0.9:
                             PyTorch-StudioGAN's (src/utils/ops.py LeCamEMA with its
                             CIFAR-10 configs' lecam_ema_decay 0.99, start 1,000), and
                             jaxgan's lecam before 2026-12-07
  maxgp         max over the batch of ||grad D(x^)||^2 on the WGAN-GP interpolates x^
                (StudioGAN's maximum gradient penalty, its Lipschitz GAN config)
  cr            E (D(x) - D(T(x)))^2 on real data, T a random augmentation
                (``loss.cr_augment``): consistency regularization (Zhang et al. 2020);
                D(x) is the adversarial pass's output, both sides get gradient
  bcr_real      the same term (its own draw of T): balanced CR's real half
  bcr_fake      E (D(G(z)) - D(T(G(z))))^2: balanced CR's fake half (Zhao et al. 2021);
                bCR with lambda_real, lambda_fake is ``bcr_real:lambda_real,bcr_fake:lambda_fake``
  zcr           E (D(G(z)) - D(G(z')))^2, z' = z + sigma n, n ~ N(0, I), sigma =
                ``loss.zcr_radius``: latent consistency (ibid.), both sides get gradient

Means are over all values (torch's ``MSELoss``, as StudioGAN). T for ``cr`` and ``bcr_*`` is
a comma list of ops (``CR_AUGMENTATIONS`` or DiffAugment's, at strength 1), applied before
D's own augmentation pipeline; StudioGAN's ``cr_aug`` is ``flip,translation_reflect``:

  flip                 mirror each image left-right with probability 1/2
  translation_reflect  shift rows and columns by t ~ U{-m..m} each, m = int(H/8) (int(W/8)),
                       filling from the reflected image (StudioGAN's ``random_translation``;
                       DiffAugment's ``translation`` fills with zeros and rounds m)

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
  zcr           -E (G(z) - G(z'))^2, z' = z + sigma n as D's ``zcr``: latent consistency's
                generator side, which pushes G(z) and G(z') apart (Zhao et al. 2021);
                mean over all values, both sides get gradient (StudioGAN's ``g_lambda``)

Terms with options read them from ``config.loss`` (``OPTIONS``; bound by ``configure`` into
their fn, init_state and next_state), and
those that augment images are refused for other data (``NEEDS_IMAGES``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from jaxgan.core import augment, streams
from jaxgan.core.objectives import Penalty, Term, TermContext
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError
from jaxgan.registry import Registry, UnknownNameError

Array = jax.Array
D_PENALTIES: Registry[Penalty] = Registry("discriminator penalty")
G_PENALTIES: Registry[Penalty] = Registry("generator penalty")
PENALTIES = {"d": D_PENALTIES, "g": G_PENALTIES}
# Per player: penalty name -> the ``config.loss`` keys its fn takes as keyword arguments.
OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {"d": {}, "g": {}}
# Per player: the penalties that augment images (refused for other data).
NEEDS_IMAGES: dict[str, set[str]] = {"d": set(), "g": set()}
LECAM_START = 1000  # BigGAN-CIFAR release's start_itr (the biggan presets)
LECAM_PRESET = "biggan"
PL_DECAY = 0.01
PL_BATCH_SHRINK = 2
CR_AUGMENT = "flip,translation_reflect"  # StudioGAN's cr_aug
ZCR_RADIUS = 0.05  # StudioGAN's radius in its CIFAR-10 ICR configs


def penalty(
  name: str,
  player: str = "d",
  options: Sequence[str] = (),
  needs_images: bool = False,
  **kwargs,
):
  """Registers ``fn(ctx, **options) -> (loss, metrics)`` as ``player``'s penalty ``name``;
  ``options``: the ``config.loss`` keys it takes (each with a default in fn)."""

  def register(fn):
    PENALTIES[player].register(name)(Penalty(fn, **kwargs))
    OPTIONS[player][name] = tuple(options)
    if needs_images:
      NEEDS_IMAGES[player].add(name)
    return fn

  return register


def configure(
  terms: Sequence[Term], loss: Mapping, data: DataSpec, player: str, where: str
) -> tuple[Term, ...]:
  """``terms`` with their options bound from ``loss`` (``config.loss``) into their fn, init_state
  and next_state; a term that augments images on other data, or an unknown LeCam preset, is a
  one-line ConfigError."""
  images = [t.name for t in terms if t.name in NEEDS_IMAGES[player]]
  if images and not (data.is_image and len(data.shape) == 3):
    raise ConfigError(
      f"{where}: {', '.join(images)} augment images (loss.cr_augment), and {data.name!r} "
      f"has examples of shape {tuple(data.shape)}; drop them or train on image data."
    )
  if player == "d" and "lecam" in [t.name for t in terms]:
    check_lecam_preset(loss["lecam_preset"])
  out = []
  for t in terms:
    keys = OPTIONS[player].get(t.name, ()) if t.name != "adv" else ()
    bound = {k: loss[k] for k in keys}
    if bound:
      fns = {f: getattr(t, f) for f in ("fn", "init_state", "next_state")}
      t = dataclasses.replace(
        t, **{f: fn and functools.partial(fn, **bound) for f, fn in fns.items()}
      )
    out.append(t)
  return tuple(out)


def check_lecam_preset(name: str) -> None:
  """A one-line ConfigError for an unknown ``loss.lecam_preset``."""
  if name not in LECAM_PRESETS:
    raise ConfigError(f"config.loss.lecam_preset: {LECAM_PRESETS.unknown_message(name)}")


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


@dataclasses.dataclass(frozen=True)
class LeCamPreset:
  """How a release keeps LeCam's anchors (module docstring): their decay, whether they
  hold the latest batch mean and the term is off until step LECAM_START (``delayed``), and
  whether they are zero-debiased (``debias``)."""

  decay: float
  delayed: bool
  debias: bool


LECAM_PRESETS: Registry[LeCamPreset] = Registry("LeCam preset")
LECAM_PRESETS.register("biggan")(LeCamPreset(0.9, delayed=True, debias=False))
LECAM_PRESETS.register("stylegan2")(LeCamPreset(0.99, delayed=False, debias=True))
LECAM_PRESETS.register("studiogan")(LeCamPreset(0.99, delayed=True, debias=False))


def _lecam_init(lecam_preset: str = LECAM_PRESET):
  zero = jnp.zeros((), jnp.float32)
  if not LECAM_PRESETS.get(lecam_preset).debias:
    return {"real": zero, "fake": zero}
  # the anchors in use, TF's biased averages and its local step (float32, as TF's)
  return {"real": zero, "fake": zero, "real_biased": zero, "fake_biased": zero, "count": zero}


def _lecam_next(ctx: TermContext, lecam_preset: str = LECAM_PRESET):
  """The anchors (and debiasing state) after this update's batch."""
  preset = LECAM_PRESETS.get(lecam_preset)
  mean = lambda x: ctx.global_mean(jax.lax.stop_gradient(x))
  real, fake = mean(ctx.real_out), mean(ctx.fake_out)
  if preset.debias:
    count = ctx.state["count"] + 1.0
    b_real = ctx.state["real_biased"] - (ctx.state["real_biased"] - real) * (1.0 - preset.decay)
    b_fake = ctx.state["fake_biased"] - (ctx.state["fake_biased"] - fake) * (1.0 - preset.decay)
    debias = 1.0 - jnp.power(jnp.float32(preset.decay), count)
    return {
      "real": b_real / debias,
      "fake": b_fake / debias,
      "real_biased": b_real,
      "fake_biased": b_fake,
      "count": count,
    }
  decay = jnp.where(ctx.step < LECAM_START, 0.0, preset.decay) if preset.delayed else preset.decay
  return {
    "real": decay * ctx.state["real"] + (1 - decay) * real,
    "fake": decay * ctx.state["fake"] + (1 - decay) * fake,
  }


@penalty(
  "lecam",
  options=("lecam_preset",),
  init_state=_lecam_init,
  next_state=_lecam_next,
  reads_outputs=True,
)
def _lecam(ctx: TermContext, lecam_preset: str = LECAM_PRESET):
  anchors = _lecam_next(ctx, lecam_preset)  # updated before use, as in both releases
  reg = jnp.mean(jnp.square(jax.nn.relu(ctx.real_out - anchors["fake"]))) + jnp.mean(
    jnp.square(jax.nn.relu(anchors["real"] - ctx.fake_out))
  )
  if LECAM_PRESETS.get(lecam_preset).delayed:
    reg = (ctx.step > LECAM_START).astype(reg.dtype) * reg
  return reg, {"anchor_real": anchors["real"], "anchor_fake": anchors["fake"]}


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


def _global_max(ctx: TermContext, v: Array) -> Array:
  """max(v) over the global batch, differentiable through the one maximal entry: each device
  contributes n_devices x its share, so the mean over devices (of values and gradients) is a
  one-device run's."""
  if ctx.axis_name is None:
    return jnp.max(v)
  every = lax.all_gather(lax.stop_gradient(v), ctx.axis_name, tiled=True)
  n = v.shape[0]
  mine = jnp.arange(n) + lax.axis_index(ctx.axis_name) * n == jnp.argmax(every)
  return (every.shape[0] // n) * jnp.sum(jnp.where(mine, v, 0.0))


@penalty("maxgp", per_example=True)
def _maxgp(ctx: TermContext):
  sq = jnp.sum(jnp.square(input_gradients(ctx, gp_points(ctx), ctx.real_y)), axis=1)
  return _global_max(ctx, sq), {"grad_norm": jnp.mean(jnp.sqrt(sq))}


def _flip(x: Array, key: Array, strength: float, draw) -> Array:
  del strength
  u = draw(lambda k, n: jax.random.uniform(k, (n, 1, 1, 1)), key)
  return jnp.where(u < 0.5, x[:, :, ::-1, :], x)


def _translation_reflect(x: Array, key: Array, strength: float, draw, ratio: float = 0.125):
  del strength
  _, h, w, _ = x.shape
  mh, mw = int(h * ratio), int(w * ratio)
  if mh == 0 and mw == 0:
    return x
  shift = lambda name, m: draw(
    lambda k, n: jax.random.randint(k, (n,), -m, m + 1), streams.sub(key, name)
  )
  th, tw = shift("rows", mh), shift("cols", mw)
  padded = jnp.pad(x, ((0, 0), (mh, mh), (mw, mw), (0, 0)), mode="reflect")
  rows = jnp.arange(h)[None, :] + th[:, None] + mh
  cols = jnp.arange(w)[None, :] + tw[:, None] + mw
  x = jnp.take_along_axis(padded, rows[:, :, None, None], axis=1)
  return jnp.take_along_axis(x, cols[:, None, :, None], axis=2)


CR_AUGMENTATIONS = Registry("consistency augmentation")
CR_AUGMENTATIONS.register("flip")(_flip)
CR_AUGMENTATIONS.register("translation_reflect")(_translation_reflect)


def cr_ops(spec: str) -> tuple[str, ...]:
  """``loss.cr_augment`` -> its ops; an unknown one raises with the choices (this table's
  and DiffAugment's)."""
  names = tuple(n.strip() for n in spec.split(",") if n.strip())
  known = CR_AUGMENTATIONS.names() + augment.AUGMENTATIONS.names()
  for n in names:
    if n not in known:
      raise UnknownNameError(
        f"unknown consistency augmentation {n!r}; valid choices: {', '.join(known)}."
      )
  return names


def cr_transform(ctx: TermContext, x: Array, key: Array, spec: str) -> Array:
  """T(x) of consistency regularization: ``spec``'s ops in order, each from a named
  sub-stream of ``key``, drawn for the global batch and sliced (as DiffAugment)."""
  for name in cr_ops(spec):
    op = CR_AUGMENTATIONS.get(name) if name in CR_AUGMENTATIONS else augment.AUGMENTATIONS.get(name)
    x = op(x, streams.sub(key, name), 1.0, ctx.draw)
  return x


def _consistency(ctx: TermContext, x: Array, y: Array | None, out: Array, spec: str):
  t = cr_transform(ctx, x, streams.sub(ctx.key, "transform"), spec)
  other = ctx.d(t, y, streams.sub(ctx.key, "d"))
  return jnp.mean(jnp.square(out - other)), {}


_CR = dict(options=("cr_augment",), needs_images=True, reads_outputs=True)


@penalty("cr", **_CR)
def _cr(ctx: TermContext, cr_augment: str = CR_AUGMENT):
  return _consistency(ctx, ctx.real_x, ctx.real_y, ctx.real_out, cr_augment)


@penalty("bcr_real", **_CR)
def _bcr_real(ctx: TermContext, cr_augment: str = CR_AUGMENT):
  return _consistency(ctx, ctx.real_x, ctx.real_y, ctx.real_out, cr_augment)


@penalty("bcr_fake", **_CR)
def _bcr_fake(ctx: TermContext, cr_augment: str = CR_AUGMENT):
  return _consistency(ctx, ctx.fake_x, ctx.fake_y, ctx.fake_out, cr_augment)


def perturbed_z(ctx: TermContext, radius: float) -> Array:
  """zCR's z' = z + radius n, n ~ N(0, I), drawn for the global batch and sliced."""
  z = ctx.z
  n = ctx.draw(lambda k, m: jax.random.normal(k, (m, *z.shape[1:])), streams.sub(ctx.key, "z"))
  return z + radius * n


@penalty("zcr", options=("zcr_radius",), reads_outputs=True)
def _zcr(ctx: TermContext, zcr_radius: float = ZCR_RADIUS):
  fake = ctx.g(perturbed_z(ctx, zcr_radius), ctx.fake_y, key=streams.sub(ctx.key, "g"))
  other = ctx.d(fake, ctx.fake_y, streams.sub(ctx.key, "d"))
  return jnp.mean(jnp.square(ctx.fake_out - other)), {}


@penalty("zcr", player="g", options=("zcr_radius",), reads_outputs=True)
def _zcr_g(ctx: TermContext, zcr_radius: float = ZCR_RADIUS):
  fake = ctx.g(perturbed_z(ctx, zcr_radius), ctx.fake_y, key=streams.sub(ctx.key, "g"))
  distance = jnp.mean(jnp.square(ctx.fake_x - fake))
  return -distance, {"distance": distance}
