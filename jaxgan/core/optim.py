"""Optax optimizers for G and D, built from ``config.optim.g`` / ``config.optim.d``.

Schedules count *optimizer updates*: with ``train.d_steps = k`` the discriminator
makes k updates per training step, so its schedule runs k times faster.

Two ways to schedule: the learning rate's own keys (``schedule``, ``decay_steps``,
``min_lr``, ``warmup_steps``), or a schedule string in place of a number for ``lr``,
``b1`` or ``b2`` (``jaxgan.core.schedules``, e.g. ``b2="cosine(0.9,0.99,kimg=20000)"``),
counted in this optimizer's updates (``kimg``: updates x batch_size / 1000). Either way
the value lives in the ``inject_hyperparams`` state, which is checkpointed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxgan.core import schedules
from jaxgan.registry import Registry

Schedule = Callable[[int], float]

SCHEDULES: Registry[Callable[[ml_collections.ConfigDict], Schedule]] = Registry("lr schedule")
OPTIMIZERS: Registry[
  Callable[[ml_collections.ConfigDict, Schedule], optax.GradientTransformation]
] = Registry("optimizer")


SCHEDULABLE = ("lr", "b1", "b2")  # keys that also take a schedule string


def schedulable(value: float) -> ml_collections.FieldReference:
  """A config field that takes a number or a schedule string (``jaxgan.core.schedules``);
  the command line parses ``--config.<key>=1e-3`` as a number and anything else as text."""
  return ml_collections.FieldReference(value, field_type=object)


def default_optim_config(**overrides) -> ml_collections.ConfigDict:
  """Every key an optimizer config may have; unused ones are ignored by that optimizer."""
  cfg = ml_collections.ConfigDict(
    dict(
      name="adam",
      lr=schedulable(2e-4),  # a number or a schedule, e.g. "cosine(2e-4,5e-5,kimg=20000)"
      b1=schedulable(0.5),  # adam, adamw
      b2=schedulable(0.999),  # adam, adamw
      eps=1e-8,  # adam, adamw, rmsprop
      weight_decay=0.0,  # adamw
      momentum=0.0,  # sgd, rmsprop
      momentum_end=-1.0,  # sgd: ramp momentum linearly to this value (<0 keeps it fixed)
      momentum_steps=0,  # sgd: ...over this many updates
      nesterov=False,  # sgd
      decay=0.9,  # rmsprop
      schedule="constant",
      decay_rate=1.0,  # exponential: lr * decay_rate ** (update / decay_steps)
      decay_steps=1,  # exponential, cosine, linear
      min_lr=0.0,  # floor for exponential, end value for cosine and linear
      warmup_steps=0,  # linear warm-up from 0 before the schedule
      clip_norm=0.0,  # clip gradients to this global norm (0 disables)
      max_col_norm=0.0,  # after each update, rescale every kernel column (a unit's
      # incoming weights) to at most this norm; pylearn2's constraint
      weight_clip=0.0,  # after each update, clip every parameter to [-c, c] (WGAN's
      # critic constraint, Arjovsky et al. 2017; 0 disables)
      nan_to_num=False,  # gradients' NaN -> 0 and +-inf -> +-1e5 first (StyleGAN2 does, always)
    )
  )
  cfg.update(overrides)
  return cfg


@SCHEDULES.register("constant")
def _constant(cfg):
  return optax.constant_schedule(cfg.lr)


@SCHEDULES.register("exponential")
def _exponential(cfg):
  return optax.exponential_decay(
    cfg.lr, cfg.decay_steps, cfg.decay_rate, end_value=cfg.min_lr or None
  )


@SCHEDULES.register("cosine")
def _cosine(cfg):
  return optax.cosine_decay_schedule(cfg.lr, cfg.decay_steps, alpha=cfg.min_lr / cfg.lr)


@SCHEDULES.register("linear")
def _linear(cfg):
  return optax.linear_schedule(cfg.lr, cfg.min_lr, cfg.decay_steps)


def build_schedule(cfg: ml_collections.ConfigDict, batch_size: int | None = None) -> Schedule:
  """The learning rate: a schedule string in ``lr`` itself, or the ``schedule`` keys."""
  text = schedules.of(cfg.lr, "optim.lr")
  if text is not None:
    return text.bind(batch_size)
  schedule = SCHEDULES.get(cfg.schedule)(cfg)
  if cfg.warmup_steps:
    warmup = optax.linear_schedule(0.0, cfg.lr, cfg.warmup_steps)
    schedule = optax.join_schedules([warmup, schedule], [cfg.warmup_steps])
  return schedule


def hyperparameter(cfg: ml_collections.ConfigDict, key: str) -> Any:
  """``cfg[key]`` for ``inject_hyperparams``: a number as is, a schedule as a function of the
  update count (bound to ``cfg.batch_size_`` for kimg, set by ``build_optimizer``)."""
  s = schedules.of(cfg[key], f"optim.{key}")
  return cfg[key] if s is None else s.bind(cfg.get("batch_size_"))


@OPTIMIZERS.register("adam")
def _adam(cfg, lr):
  b1, b2 = hyperparameter(cfg, "b1"), hyperparameter(cfg, "b2")
  return optax.inject_hyperparams(optax.adam)(learning_rate=lr, b1=b1, b2=b2, eps=cfg.eps)


@OPTIMIZERS.register("adamw")
def _adamw(cfg, lr):
  b1, b2 = hyperparameter(cfg, "b1"), hyperparameter(cfg, "b2")
  return optax.inject_hyperparams(optax.adamw)(
    learning_rate=lr, b1=b1, b2=b2, eps=cfg.eps, weight_decay=cfg.weight_decay
  )


@OPTIMIZERS.register("sgd")
def _sgd(cfg, lr):
  momentum = cfg.momentum
  if cfg.momentum_end >= 0 and cfg.momentum_steps > 0:
    momentum = optax.linear_schedule(cfg.momentum, cfg.momentum_end, cfg.momentum_steps)
  return optax.inject_hyperparams(optax.sgd, static_args=("nesterov",))(
    learning_rate=lr, momentum=momentum, nesterov=cfg.nesterov
  )


@OPTIMIZERS.register("rmsprop")
def _rmsprop(cfg, lr):
  return optax.inject_hyperparams(optax.rmsprop)(
    learning_rate=lr, decay=cfg.decay, eps=cfg.eps, momentum=cfg.momentum or None
  )


def max_column_norm(max_norm: float) -> optax.GradientTransformation:
  """Turns updates into ones that land on the max-norm ball: W' = W * min(1, c / ||W[:, j]||).

  Applies to every kernel (leaves with 2+ dims; columns are the last axis),
  as pylearn2's ``max_col_norm`` did for the paper's nets.
  """

  def update_fn(updates, state, params):
    def project(u, p):
      if p.ndim < 2:
        return u
      new = p + u
      norms = jnp.sqrt(jnp.sum(jnp.square(new.reshape(-1, new.shape[-1])), axis=0))
      return new * jnp.minimum(1.0, max_norm / jnp.maximum(norms, 1e-12)) - p

    return jax.tree.map(project, updates, params), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def clip_weights(c: float) -> optax.GradientTransformation:
  """Turns updates into ones that land in [-c, c]: WGAN's weight clipping of the critic."""

  def update_fn(updates, state, params):
    return jax.tree.map(lambda u, p: jnp.clip(p + u, -c, c) - p, updates, params), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def learning_rate(opt_state) -> jax.Array:
  """The learning rate of the latest update, read from the ``inject_hyperparams`` state."""
  return injected(opt_state, "learning_rate")


def injected(opt_state, name: str) -> jax.Array:
  """Hyperparameter ``name`` of the latest update, read from the ``inject_hyperparams`` state."""
  for node in jax.tree.leaves(opt_state, is_leaf=lambda x: hasattr(x, "hyperparams")):
    if hasattr(node, "hyperparams"):
      return node.hyperparams[name]
  raise ValueError(f"optimizer state has no injected {name}")


def varying(cfg: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The ``SCHEDULABLE`` keys whose schedule changes value (logged as ``<key>/<player>``)."""
  out = []
  for key in SCHEDULABLE:
    s = schedules.of(cfg[key], f"optim.{key}")
    if s is not None and s.varies:
      out.append(key)
  return tuple(out)


def build_optimizer(
  cfg: ml_collections.ConfigDict, batch_size: int | None = None
) -> optax.GradientTransformation:
  """Builds one optimizer (schedule, optional clipping and max-norm) from its config;
  ``batch_size`` counts the images of a schedule written in kimg.

  The update rule runs on all parameters concatenated into one vector
  (``optax.flatten``): a handful of fused kernels instead of a few per leaf,
  which is most of an update's cost for small nets on CPU (toy1d: +24% steps/s).
  """
  if any(schedules.is_schedule(cfg[k]) for k in SCHEDULABLE):
    cfg = _copy(cfg)
    cfg.batch_size_ = batch_size
  tx = optax.flatten(OPTIMIZERS.get(cfg.name)(cfg, build_schedule(cfg, batch_size)))
  if cfg.clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(cfg.clip_norm), tx)
  if cfg.nan_to_num:
    tx = optax.chain(nan_to_num(), tx)
  if cfg.max_col_norm > 0:
    tx = optax.chain(tx, max_column_norm(cfg.max_col_norm))
  if cfg.weight_clip > 0:
    tx = optax.chain(tx, clip_weights(cfg.weight_clip))
  return tx


NAN_TO_NUM_INF = 1e5


def nan_to_num() -> optax.GradientTransformation:
  """Gradients' NaN to 0 and +-inf to +-1e5, as StyleGAN2 treats every gradient before its
  optimizer steps: one bad example does not poison Adam's averages."""

  def clean(updates: Any, params: Any = None) -> Any:
    del params
    return jax.tree.map(
      lambda g: jnp.nan_to_num(g, nan=0.0, posinf=NAN_TO_NUM_INF, neginf=-NAN_TO_NUM_INF), updates
    )

  return optax.stateless(clean)


def lazy_corrected(cfg: ml_collections.ConfigDict, every: int) -> ml_collections.ConfigDict:
  """StyleGAN2's correction for a separate regularization step every ``every`` updates
  (``loss.lazy=separate``): the player takes every+1 optimizer steps per ``every`` updates,
  so its learning rate is multiplied by ``mb_ratio = every / (every + 1)`` and Adam's betas
  are raised to that power (their averages keep their horizon in updates). Returns a copy;
  the values may be traced (swept)."""
  if every <= 1:
    return cfg
  ratio = every / (every + 1)
  out = _copy(cfg)
  for key, scale, power in (("lr", ratio, 1.0), ("b1", 1.0, ratio), ("b2", 1.0, ratio)):
    s = schedules.of(cfg[key], f"optim.{key}")
    if s is not None:  # a schedule: corrected value by value
      out[key] = dataclasses.replace(s, scale=s.scale * scale, power=s.power * power)
  if not schedules.is_schedule(cfg.lr):
    out.lr = cfg.lr * ratio
  for key in ("b1", "b2"):
    if not schedules.is_schedule(cfg[key]):
      out[key] = cfg[key] ** ratio
  return out


def _copy(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """An untyped copy (its values may become Schedules or traced numbers)."""
  out = ml_collections.ConfigDict(type_safe=False)
  for k in cfg:
    out[k] = cfg[k]
  return out


def check_optimizer_config(cfg: ml_collections.ConfigDict, where: str) -> None:
  """Fails fast, with the valid choices, on names and values that cannot work."""
  OPTIMIZERS.get(cfg.name)
  SCHEDULES.get(cfg.schedule)
  for key in SCHEDULABLE:
    schedules.of(cfg[key], f"{where}.{key}")  # a malformed schedule: its own one line
  if schedules.is_schedule(cfg.lr):
    if cfg.schedule != "constant" or cfg.warmup_steps:
      raise ValueError(
        f"{where}.lr={cfg.lr!r} is a schedule itself; set {where}.schedule=constant and "
        f"warmup_steps=0 (or write lr as a number)"
      )
    if schedules.bounds(cfg.lr, where)[0] < 0:
      raise ValueError(f"{where}.lr={cfg.lr!r} must stay >= 0")
  elif cfg.lr <= 0:
    raise ValueError(f"{where}.lr must be > 0, got {cfg.lr}")
  if cfg.name in ("adam", "adamw"):
    for key in ("b1", "b2"):
      lo, hi = schedules.bounds(cfg[key], f"{where}.{key}")
      if schedules.is_schedule(cfg[key]) and not (lo >= 0 and hi < 1):
        raise ValueError(f"{where}.{key}={cfg[key]!r} must stay in [0, 1)")
  if cfg.weight_clip < 0 or cfg.max_col_norm < 0 or cfg.clip_norm < 0:
    raise ValueError(f"{where}.weight_clip, max_col_norm and clip_norm must be >= 0 (0 disables)")
  if cfg.schedule in ("exponential", "cosine", "linear") and cfg.decay_steps <= 0:
    raise ValueError(f"{where}.decay_steps must be > 0 for schedule {cfg.schedule!r}")
