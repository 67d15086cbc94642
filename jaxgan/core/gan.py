"""A GAN as data plus pure functions: nets, noise, losses and optimizers in one bundle.

``build_gan(config, data_spec)`` turns a config into a ``GAN``; ``init_state``
makes its ``GANState``; ``generate`` samples from a state. Nothing here does I/O,
so every piece is usable on its own in a notebook.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxgan.core import ada, augment, conditioning, losses, objectives, optim, schedules, streams
from jaxgan.core.collectives import axis_name_for, device_key
from jaxgan.core.ema import EMA
from jaxgan.core.penalties import D_PENALTIES, G_PENALTIES
from jaxgan.core.penalties import configure as configure_terms
from jaxgan.core.state import GANState, PlayerState, PyTree
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError
from jaxgan.models import GENERAL_MODEL_KEYS, MODELS, Nets, spectral_norm
from jaxgan.models.traits import MIXES_EXAMPLES, BatchTraits, discriminator_traits
from jaxgan.registry import Registry

INDEPENDENT = BatchTraits()  # a D that treats every example on its own
NOISE_DISTRIBUTIONS: Registry[Callable[..., jax.Array]] = Registry("noise distribution")


@NOISE_DISTRIBUTIONS.register("uniform")
def _uniform(key: jax.Array, shape: tuple[int, ...], low: float, high: float) -> jax.Array:
  return jax.random.uniform(key, shape, minval=low, maxval=high)


@NOISE_DISTRIBUTIONS.register("normal")
def _normal(key: jax.Array, shape: tuple[int, ...], low: float, high: float) -> jax.Array:
  del low, high  # standard normal
  return jax.random.normal(key, shape)


@dataclasses.dataclass(frozen=True)
class NoiseSpec:
  """The prior p_z: ``dim`` i.i.d. values, uniform on [low, high) or standard normal."""

  dim: int
  distribution: str = "uniform"
  low: float = -1.0
  high: float = 1.0

  def sample(self, key: jax.Array, n: int, truncation: float = 0.0) -> jax.Array:
    """n draws; ``truncation`` > 0 (normal prior only) truncates to [-t, t] (BigGAN's
    truncation trick, at sampling time)."""
    if truncation > 0:
      return jax.random.truncated_normal(key, -truncation, truncation, (n, self.dim))
    return NOISE_DISTRIBUTIONS.get(self.distribution)(key, (n, self.dim), self.low, self.high)


@dataclasses.dataclass(frozen=True)
class AdaSpec:
  """ADA (Karras et al. 2020): the pipeline, the starting p, and how p adapts: every
  ``interval`` steps, by ``sign(E[sign D(real)] - target) * batch * interval / (kimg * 1000)``
  (``target`` 0: p stays fixed)."""

  pipe: ada.AugmentPipe
  p: float = 0.0
  target: float = 0.6
  interval: int = 4
  kimg: float = 500.0
  batch_size: int = 64

  @property
  def adaptive(self) -> bool:
    return self.target > 0

  @property
  def initial_p(self) -> Any:
    """p at step 0: ``p``, or its schedule's first value (``loss.ada_p="cosine(...)"``)."""
    s = schedules.of(self.p, "config.loss.ada_p")
    return self.p if s is None else s(jnp.int32(0), self.batch_size)

  def step(self, state: ada.AdaState, step: jax.Array, sign_mean: jax.Array, n: int):
    """The state after a training step (``step`` done before it) whose D passes over reals
    had mean sign ``sign_mean`` over ``n`` outputs; a scheduled p becomes its value at the
    next step."""
    s = schedules.of(self.p, "config.loss.ada_p")
    if s is not None:
      return state._replace(p=s(step + 1, self.batch_size))
    if not self.adaptive:
      return state
    state = state._replace(
      sign_sum=state.sign_sum + sign_mean * n, count=state.count + jnp.int32(n)
    )
    return ada.ada_step(state, step + 1, self.batch_size, self.interval, self.target, self.kimg)


@dataclasses.dataclass(frozen=True)
class GAN:
  """Everything static about a GAN: what to apply, how to score it, how to update it.

  Attributes beyond the nets and optimizers:
    d_loss, g_loss: the adversarial losses (``jaxgan.core.losses``); ``d_loss`` also says
      how to read D's raw output (probability or critic value).
    d_terms, g_terms: the objectives, adversarial loss first, then penalties.
    d_spectral_norm, g_spectral_norm: divide D's (G's) weights by their spectral norms
      before it runs, with the power iteration of ``spectral_norm_order``.
    d_pack: PacGAN's m, examples D judges together (1: none).
    augment, augment_strength: DiffAugment ops applied before D, and their strength.
    joint_d_pass: D scores real and fake in one call (same math, fewer kernels);
      only for a D whose output per example depends on that example alone.
    g_tracks_w_avg: G keeps an average of its intermediate latents (``w_avg`` among its
      collections, StyleGAN's mapping network), so it can be truncated toward it.
    ada: StyleGAN2-ADA's augmentation of D's inputs (``AdaSpec``; None: off).
    lazy: ``folded`` (a lazy term, ``name:w@N``, joins every N-th update at N x its
      weight) or ``separate`` (it takes its own optimizer step after every N-th update,
      StyleGAN2's regularization phases; the optimizers carry the ``mb_ratio`` correction).
    ema: the moving average of G's weights used for sampling.
    fake_labels: G's labels for a conditional update's fakes: ``uniform`` draws them,
      ``real`` takes the labels of the real batch that update sees (R3GAN's ``gen_c = real_c``).
    d_heads: D has a class head (``model.d_cond``, ``jaxgan.core.conditioning``) whose
      outputs the adversarial passes collect for the objective terms.
  """

  nets: Nets
  noise: NoiseSpec
  data: DataSpec
  num_classes: int
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  d_loss: losses.DLoss
  g_loss: losses.GLoss
  d_terms: tuple[objectives.Term, ...] = ()
  g_terms: tuple[objectives.Term, ...] = ()
  d_spectral_norm: bool = False
  g_spectral_norm: bool = False
  spectral_norm_order: str = spectral_norm.PARAMETRIZATION
  d_pack: int = 1
  augment: tuple[str, ...] = ()
  augment_strength: float = 1.0
  joint_d_pass: bool = False
  g_tracks_w_avg: bool = False
  lazy: str = "folded"
  ada: AdaSpec | None = None
  ema: EMA = dataclasses.field(default_factory=EMA)
  fake_labels: str = "uniform"
  d_heads: bool = False
  varying_hparams: tuple[tuple[str, tuple[str, ...]], ...] = ()  # scheduled optimizer keys

  def terms(self, player: str) -> tuple[objectives.Term, ...]:
    """``player``'s ('d' or 'g') objective terms."""
    return {"d": self.d_terms, "g": self.g_terms}[player]

  def main_terms(self, player: str) -> tuple[objectives.Term, ...]:
    """The terms of ``player``'s main update: all of them, or without the lazy ones when
    they take a separate step."""
    if self.lazy == "folded":
      return self.terms(player)
    return tuple(t for t in self.terms(player) if not t.lazy)

  def reg_terms(self, player: str) -> tuple[objectives.Term, ...]:
    """The terms of ``player``'s separate regularization step (lazy ones with a weight)."""
    if self.lazy == "folded":
      return ()
    return tuple(t for t in self.terms(player) if t.lazy and t.weighted)

  def reg_interval(self, player: str) -> int:
    """N of ``player``'s separate regularization step (0: none), from its lazy terms, those
    of weight 0 too: StyleGAN2 corrects G's optimizer for a path-length interval even with
    the path length off."""
    return reg_interval(self.terms(player), self.lazy)

  def tx(self, player: str) -> optax.GradientTransformation:
    """``player``'s ('d' or 'g') optimizer."""
    return {"d": self.d_tx, "g": self.g_tx}[player]

  @property
  def conditional(self) -> bool:
    return self.num_classes > 0

  def sample_labels(self, key: jax.Array, n: int) -> jax.Array | None:
    if not self.conditional:
      return None
    return jax.random.randint(key, (n,), 0, self.num_classes)


def reg_interval(terms: tuple[objectives.Term, ...], lazy: str) -> int:
  """``GAN.reg_interval`` of these terms."""
  if lazy == "folded":
    return 0
  return max((t.every for t in terms if t.lazy), default=0)


def model_kwargs(model_config: ml_collections.ConfigDict) -> dict[str, Any]:
  return {k: v for k, v in model_config.items() if k not in GENERAL_MODEL_KEYS}


def choose_joint_d_pass(
  d_pass: str, nets: Nets, d_pack: int, traits: BatchTraits = INDEPENDENT
) -> bool:
  """``train.d_pass`` -> whether D scores real and fake in one call.

  One call over concat(real, fake) is the same math as two only when D treats
  examples independently: it does not mix examples (``traits``) and nothing packs
  them (PacGAN groups examples). ``auto`` takes it then for MLPs, whose steps are
  kernel-launch bound (toy1d +24% steps/s); conv nets on CPU run slower at the
  doubled batch (dcgan28: 6.5 vs 7.6 steps/s), so ``auto`` keeps two calls for them.
  """
  safe = not traits.mixes_examples and d_pack == 1
  if d_pass == "joint" and not safe:
    if traits.batch_stats:
      why = "batch norm in D (model.d_batch_norm) would mix real and fake statistics"
    elif traits.mixes_examples:
      why = "D mixes the examples of its batch (e.g. minibatch standard deviation)"
    else:
      why = (
        f"model.d_pack={d_pack} makes D a cross-sample function, "
        f"which jaxgan always calls on real and fake separately"
      )
    raise ConfigError(f"config.train.d_pass='joint': {why}; use 'separate' or 'auto'.")
  if d_pass == "auto":
    return safe and not nets.convolutional
  return d_pass == "joint"


def tracks_w_avg(generator: Any, z_dim: int, num_classes: int) -> bool:
  """Whether G's collections hold a ``w_avg`` (read off one abstract ``init``)."""
  z = jnp.zeros((2, z_dim), jnp.float32)
  y = jnp.zeros((2,), jnp.int32) if num_classes else None
  key = jax.random.PRNGKey(0)
  variables = jax.eval_shape(
    lambda: generator.init({"params": key, **g_rngs(key)}, z, y, train=False)
  )
  paths = jax.tree_util.tree_flatten_with_path(
    {k: v for k, v in variables.items() if k != "params"}
  )[0]
  return any("w_avg" in jax.tree_util.keystr(path) for path, _ in paths)


def check_truncation(gan: GAN, psi: float, z_threshold: float, where: str = "") -> None:
  """Sampling-time truncation that cannot work: one line, before anything compiles
  (``where`` prefixes the names, e.g. ``config.eval.``)."""
  if psi != 1.0 and not gan.g_tracks_w_avg:
    raise ConfigError(
      f"{where}truncation_psi={psi:g} pulls G's latents toward their tracked average, but this "
      f"generator tracks none (no w_avg, e.g. no mapping network); use 1.0, or "
      f"truncation_z for a normal prior."
    )
  if z_threshold < 0:
    raise ConfigError(f"{where}truncation_z must be >= 0 (0: off), got {z_threshold:g}.")
  if z_threshold > 0 and gan.noise.distribution != "normal":
    raise ConfigError(
      f"{where}truncation_z={z_threshold:g} truncates a normal prior, but "
      f"config.noise.distribution is {gan.noise.distribution!r}; use 0."
    )


def _check_g_terms(config: ml_collections.ConfigDict, nets: Nets, g_terms) -> None:
  """A G term that calls mapping and synthesis apart needs a G that has them."""
  parts = [t.name for t in g_terms if t.needs_g_parts]
  missing = [m for m in ("mapping", "synthesis") if not hasattr(nets.generator, m)]
  if parts and missing:
    raise ConfigError(
      f"config.loss.g_penalties: {', '.join(parts)} calls G's mapping and synthesis networks "
      f"apart, and model {config.model.name!r}'s generator has no {' or '.join(missing)}; "
      f"use a generator with a mapping network (e.g. stylegan2) or drop it."
    )


def _check_d_terms(d_terms, traits: BatchTraits) -> None:
  """Per-example gradient penalties need a D without batch statistics."""
  per_example = [t.name for t in d_terms if t.per_example]
  if traits.batch_stats and per_example:
    verb = "takes" if len(per_example) == 1 else "take"
    raise ConfigError(
      f"config.loss.d_penalties: {', '.join(per_example)} {verb} D's gradient per example, "
      f"which batch norm in D mixes across the batch; set config.model.d_batch_norm=False."
    )


def ada_spec(config: ml_collections.ConfigDict, data: DataSpec) -> AdaSpec | None:
  """``config.loss.ada*`` as an ``AdaSpec`` (None: off); refused for data it cannot augment."""
  loss = config.loss
  if not loss.get("ada", ""):
    return None
  if not (data.is_image and data.shape[-1] in (1, 3)):
    raise ConfigError(
      f"config.loss.ada={loss.ada!r}: ADA's pipeline needs images with 1 or 3 "
      f"channels; {data.name!r} has shape {tuple(data.shape)}. Set config.loss.ada=''."
    )
  pipe = ada.preset(loss.ada)
  pad = ada.filter_bank().shape[1] // 2  # the reflect padding of the filter bank: 21
  if pipe.imgfilter > 0 and min(data.shape[:2]) <= pad:
    h, w = data.shape[:2]
    raise ConfigError(
      f"config.loss.ada={loss.ada!r} filters images (imgfilter), which needs more than {pad} "
      f"pixels a side, not {h}x{w}: pick a preset without 'f' (e.g. 'bgc') or add "
      f"',imgfilter=0'."
    )
  return AdaSpec(
    pipe,
    loss.ada_p,
    loss.ada_target,
    loss.ada_interval,
    loss.ada_kimg,
    config.train.batch_size,
  )


def build_gan(config: ml_collections.ConfigDict, data: DataSpec) -> GAN:
  """Builds the static GAN bundle. Call ``jaxgan.config.validate`` first for clear errors."""
  num_classes = data.num_classes if config.model.conditional else 0
  fake_labels = config.train.get("fake_labels", "uniform")
  if fake_labels == "real" and not num_classes:
    why = (
      f"dataset {data.name!r} has no labels"
      if not data.num_classes
      else "the model is unconditional (config.model.conditional=False)"
    )
    raise ConfigError(
      f"config.train.fake_labels='real' gives G the real batch's labels, but {why}; "
      f"set config.train.fake_labels='uniform'."
    )
  if config.model.conditional and not data.num_classes:
    raise ConfigError(f"config.model.conditional=True but dataset {data.name!r} has no labels.")
  cross_device = config.batch_norm == "cross_device"
  bn_axis = axis_name_for(config.parallel) if cross_device else None
  try:
    nets = MODELS.get(config.model.name)(data, num_classes, bn_axis, **model_kwargs(config.model))
  except ValueError as e:  # a builder's own consistency checks
    raise ConfigError(str(e)) from None
  noise = NoiseSpec(
    config.noise.dim, config.noise.distribution, config.noise.low, config.noise.high
  )
  d_loss = losses.reduced(losses.D_LOSSES.get(config.loss.d), config.loss.get("d_reduction", "sum"))
  g_loss = losses.G_LOSSES.get(losses.generator_loss_name(config.loss.g, config.loss.d))
  d_terms = objectives.build_terms(
    lambda ctx: (d_loss(ctx.real_out, ctx.fake_out), {}),
    config.loss.d_penalties,
    D_PENALTIES,
    "config.loss.d_penalties",
    config.train.batch_size,
  )
  topk = losses.topk_schedule(config.loss, config.train.batch_size, config.train.d_steps)
  g_terms = objectives.build_terms(
    losses.generator_term(g_loss, topk),
    config.loss.get("g_penalties", ""),
    G_PENALTIES,
    "config.loss.g_penalties",
    config.train.batch_size,
  )
  d_terms = configure_terms(d_terms, config.loss, data, "d", "config.loss.d_penalties")
  g_terms = configure_terms(g_terms, config.loss, data, "g", "config.loss.g_penalties")
  _check_g_terms(config, nets, g_terms)
  conditioning.check_terms(
    {"d": [t.name for t in d_terms], "g": [t.name for t in g_terms]},
    nets.discriminator,
    num_classes,
    config.model.name,
  )
  traits = discriminator_traits(
    nets.discriminator, packed_shape(data.shape, config.model.d_pack), num_classes, bn_axis
  )
  _check_d_terms(d_terms, traits)
  pack = config.model.d_pack
  if pack > 1 and num_classes:
    raise ConfigError(
      "config.model.d_pack > 1 (PacGAN) is for unconditional models; "
      "set config.model.conditional=False or d_pack=1."
    )
  augment_ops = augment.parse(config.loss.augment)
  if augment_ops and not data.is_image:
    raise ConfigError(
      f"config.loss.augment={config.loss.augment!r}: DiffAugment needs image data; "
      f"{data.name!r} is not. Set config.loss.augment=''."
    )
  t = config.train
  return GAN(
    nets=nets,
    noise=noise,
    data=data,
    num_classes=num_classes,
    g_tx=optim.build_optimizer(
      optim.lazy_corrected(config.optim.g, reg_interval(g_terms, config.loss.lazy)),
      t.batch_size,
    ),
    d_tx=optim.build_optimizer(
      optim.lazy_corrected(config.optim.d, reg_interval(d_terms, config.loss.lazy)),
      t.batch_size,
    ),
    d_loss=d_loss,
    g_loss=g_loss,
    d_terms=d_terms,
    g_terms=g_terms,
    d_spectral_norm=config.model.d_spectral_norm,
    g_spectral_norm=config.model.g_spectral_norm,
    spectral_norm_order=config.model.spectral_norm_order,
    d_pack=pack,
    augment=augment_ops,
    augment_strength=config.loss.augment_strength,
    joint_d_pass=choose_joint_d_pass(t.d_pass, nets, pack, traits),
    lazy=config.loss.lazy,
    ada=ada_spec(config, data),
    g_tracks_w_avg=tracks_w_avg(nets.generator, noise.dim, num_classes),
    ema=EMA(
      t.ema_decay, t.ema_kimg, t.ema_rampup, t.batch_size, t.ema_buffers, t.get("ema_start", 0)
    ),
    fake_labels=fake_labels,
    d_heads=bool(conditioning.head_outputs(nets.discriminator)),
    varying_hparams=(("g", optim.varying(config.optim.g)), ("d", optim.varying(config.optim.d))),
  )


def split_variables(variables: PyTree) -> tuple[PyTree, dict]:
  """(params, the other collections) of a module's variables; the ``mixes_examples`` marker
  that layers sow at init (``jaxgan.models.traits``) is not state and is left out."""
  variables = dict(variables)
  params = variables.pop("params")
  variables.pop(MIXES_EXAMPLES, None)
  return params, variables


def apply_net(
  net,
  params: PyTree,
  collections: dict,
  *args,
  train: bool,
  rngs: dict | None = None,
  method: str | None = None,
  capture: tuple[str, ...] = (),
  **kwargs,
) -> tuple[jax.Array, dict]:
  """Applies a flax module (or its ``method``, e.g. a generator's ``mapping``); returns
  (output, updated non-trainable collections). ``capture``: collections the module sows
  into (D's class heads), returned among the others."""
  variables = {"params": params, **collections}
  method = getattr(net, method) if method is not None else None
  mutable = [*collections, *capture] if train else list(capture)
  if mutable:
    out, updated = net.apply(
      variables, *args, train=train, rngs=rngs, mutable=mutable, method=method, **kwargs
    )
    return out, dict(updated)
  return net.apply(variables, *args, train=train, rngs=rngs, method=method, **kwargs), collections


# The random inputs a generator may draw inside its module (``self.make_rng(name)``): per-layer
# noise (StyleGAN), style mixing, dropout. Each is a named sub-stream of G's key in the step.
G_RNG_STREAMS = ("noise", "mixing", "dropout")


def g_rngs(key: jax.Array, axis_name: str | None = None) -> dict[str, jax.Array]:
  """G's flax rngs from one key: a named sub-stream per ``G_RNG_STREAMS`` name, different on
  each device (like dropout masks, they are drawn locally)."""
  return {name: device_key(streams.sub(key, name), axis_name) for name in G_RNG_STREAMS}


def g_forward(
  gan: GAN,
  params: PyTree,
  collections: dict,
  *args,
  train: bool,
  key: jax.Array | None = None,
  axis_name: str | None = None,
  method: str | None = None,
  **kwargs,
) -> tuple[jax.Array, dict]:
  """G on ``args`` (``(z, y)``, or a method's inputs such as ``synthesis``'s ws), its random
  inputs drawn from ``key``; returns the output and the collections as G left them."""
  rngs = None if key is None else g_rngs(key, axis_name)
  params, collections = player_weights(gan, "g", params, collections, update=train)
  module_cols = {k: v for k, v in collections.items() if k != spectral_norm.COLLECTION}
  out, module_cols = apply_net(
    gan.nets.generator, params, module_cols, *args, train=train, rngs=rngs, method=method, **kwargs
  )
  return out, {**collections, **module_cols}


def pack(x: jax.Array, m: int) -> jax.Array:
  """PacGAN: [B, ..., C] -> [B/m, ..., m*C], each row m consecutive examples side by side
  (stacked along channels for images, concatenated for vectors)."""
  if m == 1:
    return x
  x = x.reshape(x.shape[0] // m, m, *x.shape[1:])
  x = jnp.moveaxis(x, 1, -2)
  return x.reshape(*x.shape[:-2], m * x.shape[-1])


def packed_shape(shape: tuple[int, ...], m: int) -> tuple[int, ...]:
  """The shape of one input of D after ``pack``: the last axis m times as wide."""
  return (*shape[:-1], m * shape[-1])


def player_weights(
  gan: GAN, player: str, params: PyTree, collections: dict, *, update: bool
) -> tuple[PyTree, dict]:
  """``player``'s ('d' or 'g') effective weights: spectrally normalised when configured
  (``update``: a training forward, one power iteration), with the collections holding the
  iteration's new state. G's forward applies it itself (``g_forward``); D's callers do, so
  that one D update's passes share one iteration."""
  if not (gan.d_spectral_norm if player == "d" else gan.g_spectral_norm):
    return params, collections
  params, states = spectral_norm.normalize(
    params, collections[spectral_norm.COLLECTION], update=update, order=gan.spectral_norm_order
  )
  return params, {**collections, spectral_norm.COLLECTION: states}


def d_forward(
  gan: GAN,
  params: PyTree,
  collections: dict,
  x: jax.Array,
  y: jax.Array | None,
  *,
  train: bool,
  dropout_key: jax.Array | None = None,
  axis_name: str | None = None,
) -> tuple[jax.Array, dict]:
  """D's raw outputs on (already augmented) x, packed when configured; returns the
  outputs and the collections as the module updated them (batch statistics)."""
  out, _, cols = d_forward_heads(
    gan, params, collections, x, y, train=train, dropout_key=dropout_key, axis_name=axis_name,
    heads=False,
  )  # fmt: skip
  return out, cols


def d_forward_heads(
  gan: GAN,
  params: PyTree,
  collections: dict,
  x: jax.Array,
  y: jax.Array | None,
  *,
  train: bool,
  dropout_key: jax.Array | None = None,
  axis_name: str | None = None,
  heads: bool = True,
) -> tuple[jax.Array, dict | None, dict]:
  """``d_forward`` that also returns the outputs of D's class head from the same call
  (``jaxgan.core.conditioning``; None unless ``heads`` and ``gan.d_heads``)."""
  heads = heads and gan.d_heads
  module_cols = {k: v for k, v in collections.items() if k != spectral_norm.COLLECTION}
  rngs = None if dropout_key is None else {"dropout": device_key(dropout_key, axis_name)}
  out, module_cols = apply_net(
    gan.nets.discriminator, params, module_cols, pack(x, gan.d_pack), y, train=train, rngs=rngs,
    capture=(conditioning.HEADS,) if heads else (),
  )  # fmt: skip
  found = module_cols.pop(conditioning.HEADS, {}) if heads else None
  return out, None if found is None else dict(found), {**collections, **module_cols}


def d_augment(
  gan: GAN,
  x: jax.Array,
  key: jax.Array,
  axis_name: str | None = None,
  ada_p: jax.Array | None = None,
) -> jax.Array:
  """The augmentation of what D is about to see: ADA's pipeline with probability ``ada_p``,
  then DiffAugment (identity when neither is configured). Differentiable in x."""
  if gan.ada is not None:
    x = ada.augment(x, streams.sub(key, "ada"), ada_p, gan.ada.pipe)
  if not gan.augment:
    return x
  return augment.augment(x, key, gan.augment, gan.augment_strength, axis_name)


def init_state(gan: GAN, key: jax.Array) -> GANState:
  """Initialises parameters, optimizer states and the run's base key from one PRNG key."""
  g_key, d_key, rng = jax.random.split(key, 3)
  z = jnp.zeros((2, gan.noise.dim), jnp.float32)
  y = jnp.zeros((2,), jnp.int32) if gan.conditional else None
  x = jnp.zeros((2, *packed_shape(gan.data.shape, gan.d_pack)), jnp.float32)
  g_params, g_collections = split_variables(
    gan.nets.generator.init({"params": g_key}, z, y, train=False)
  )
  d_params, d_collections = split_variables(
    gan.nets.discriminator.init({"params": d_key}, x, y, train=False)
  )
  if gan.d_spectral_norm:
    d_collections[spectral_norm.COLLECTION] = spectral_norm.init(
      d_params, jax.random.fold_in(d_key, 1), gan.spectral_norm_order
    )
  if gan.g_spectral_norm:
    g_collections[spectral_norm.COLLECTION] = spectral_norm.init(
      g_params, jax.random.fold_in(g_key, 1), gan.spectral_norm_order
    )
  return GANState(
    step=jnp.zeros((), jnp.int32),
    g=PlayerState(
      g_params, g_collections, gan.g_tx.init(g_params), objectives.init_states(gan.g_terms)
    ),
    d=PlayerState(
      d_params, d_collections, gan.d_tx.init(d_params), objectives.init_states(gan.d_terms)
    ),
    rng=rng,
    g_ema=gan.ema.init(g_params, g_collections) if gan.ema.enabled else None,
    ada=None if gan.ada is None else ada.ada_init(gan.ada.initial_p),
  )


def generate(
  gan: GAN,
  state: GANState,
  key: jax.Array,
  n: int,
  labels: jax.Array | None = None,
  *,
  use_ema: bool = True,
) -> jax.Array:
  """Draws n samples G(z) (eval mode), with random labels for conditional models."""
  z_key, y_key = jax.random.split(key)
  z = gan.noise.sample(z_key, n)
  if gan.conditional and labels is None:
    labels = gan.sample_labels(y_key, n)
  params, cols = state.sampling_variables() if use_ema else (state.g.params, state.g.collections)
  x, _ = g_forward(gan, params, cols, z, labels, train=False, key=streams.sub(key, "g"))
  return x


def discriminate(
  gan: GAN, state: GANState, x: jax.Array, labels: jax.Array | None = None
) -> jax.Array:
  """D's output on each example of x in eval mode, as the loss reads it: a probability for
  sigmoid losses (BCE), the raw critic value otherwise. A packed D (PacGAN) sees m copies."""
  params, cols = player_weights(gan, "d", state.d.params, state.d.collections, update=False)
  if gan.d_pack > 1:
    x = jnp.repeat(x, gan.d_pack, axis=0)
  raw, _ = d_forward(gan, params, cols, x, labels, train=False)
  return gan.d_loss.read(raw)
