"""A GAN as data plus pure functions: nets, noise, losses and optimizers in one bundle.

``build_gan(config, data_spec)`` turns a config into a ``GAN``; ``init_state``
makes its ``GANState``; ``generate`` samples from a state. Nothing here does I/O,
so every piece is usable on its own in a notebook.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxgan import losses, optim
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError
from jaxgan.models import MODELS, Nets
from jaxgan.parallel import axis_name_for
from jaxgan.registry import Registry
from jaxgan.state import GANState, PyTree

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

  def sample(self, key: jax.Array, n: int) -> jax.Array:
    return NOISE_DISTRIBUTIONS.get(self.distribution)(key, (n, self.dim), self.low, self.high)


@dataclasses.dataclass(frozen=True)
class GAN:
  """Everything static about a GAN: what to apply, how to score it, how to update it."""

  nets: Nets
  noise: NoiseSpec
  data: DataSpec
  num_classes: int
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  g_loss: Callable[[jax.Array], jax.Array]
  d_loss: Callable[[jax.Array, jax.Array], jax.Array]
  ema_decay: float = 0.0

  @property
  def conditional(self) -> bool:
    return self.num_classes > 0

  def sample_labels(self, key: jax.Array, n: int) -> jax.Array | None:
    if not self.conditional:
      return None
    return jax.random.randint(key, (n,), 0, self.num_classes)


def model_kwargs(model_config: ml_collections.ConfigDict) -> dict[str, Any]:
  from jaxgan.models import GENERAL_MODEL_KEYS
  return {k: v for k, v in model_config.items() if k not in GENERAL_MODEL_KEYS}


def build_gan(config: ml_collections.ConfigDict, data: DataSpec) -> GAN:
  """Builds the static GAN bundle. Call ``jaxgan.config.validate`` first for clear errors."""
  num_classes = data.num_classes if config.model.conditional else 0
  if config.model.conditional and not data.num_classes:
    raise ConfigError(f"config.model.conditional=True but dataset {data.name!r} has no labels.")
  cross_device = config.batch_norm == "cross_device"
  bn_axis = axis_name_for(config.parallel) if cross_device else None
  try:
    nets = MODELS.get(config.model.name)(data, num_classes, bn_axis, **model_kwargs(config.model))
  except ValueError as e:  # a builder's own consistency checks
    raise ConfigError(str(e)) from None
  noise = NoiseSpec(config.noise.dim, config.noise.distribution, config.noise.low, config.noise.high)
  return GAN(
      nets=nets, noise=noise, data=data, num_classes=num_classes,
      g_tx=optim.build_optimizer(config.optim.g),
      d_tx=optim.build_optimizer(config.optim.d),
      g_loss=losses.G_LOSSES.get(config.loss.g),
      d_loss=losses.D_LOSSES.get(config.loss.d),
      ema_decay=config.train.ema_decay)


def split_variables(variables: PyTree) -> tuple[PyTree, dict]:
  variables = dict(variables)
  params = variables.pop("params")
  return params, variables


def apply_net(net, params: PyTree, collections: dict, *args, train: bool,
              rngs: dict | None = None) -> tuple[jax.Array, dict]:
  """Applies a flax module; returns (output, updated non-trainable collections)."""
  variables = {"params": params, **collections}
  if train and collections:
    out, updated = net.apply(variables, *args, train=True, rngs=rngs, mutable=list(collections))
    return out, dict(updated)
  return net.apply(variables, *args, train=train, rngs=rngs), collections


def init_state(gan: GAN, key: jax.Array) -> GANState:
  """Initialises parameters, optimizer states and the step key from one PRNG key."""
  g_key, d_key, rng = jax.random.split(key, 3)
  z = jnp.zeros((2, gan.noise.dim), jnp.float32)
  y = jnp.zeros((2,), jnp.int32) if gan.conditional else None
  x = jnp.zeros((2, *gan.data.shape), jnp.float32)
  g_params, g_collections = split_variables(gan.nets.generator.init({"params": g_key}, z, y, train=False))
  d_params, d_collections = split_variables(gan.nets.discriminator.init({"params": d_key}, x, y, train=False))
  return GANState(
      step=jnp.zeros((), jnp.int32),
      g_params=g_params, d_params=d_params,
      g_collections=g_collections, d_collections=d_collections,
      g_opt_state=gan.g_tx.init(g_params), d_opt_state=gan.d_tx.init(d_params),
      rng=rng,
      g_ema_params=jax.tree.map(jnp.copy, g_params) if gan.ema_decay > 0 else None)


def generate(gan: GAN, state: GANState, key: jax.Array, n: int,
             labels: jax.Array | None = None, *, use_ema: bool = True) -> jax.Array:
  """Draws n samples G(z) (eval mode), with random labels for conditional models."""
  z_key, y_key = jax.random.split(key)
  z = gan.noise.sample(z_key, n)
  if gan.conditional and labels is None:
    labels = gan.sample_labels(y_key, n)
  params = state.sampling_params() if use_ema else state.g_params
  x, _ = apply_net(gan.nets.generator, params, state.g_collections, z, labels, train=False)
  return x


def discriminate(gan: GAN, state: GANState, x: jax.Array, labels: jax.Array | None = None) -> jax.Array:
  """D's probability that x is real, in eval mode."""
  logits, _ = apply_net(gan.nets.discriminator, state.d_params, state.d_collections, x, labels, train=False)
  return jax.nn.sigmoid(logits)
