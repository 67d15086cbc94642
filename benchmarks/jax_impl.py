"""The benchmark workloads built from jaxgan's own pieces (the code training runs)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from workloads import Workload

from jaxgan import config as config_lib
from jaxgan.config import base_config
from jaxgan.core import population
from jaxgan.core.gan import build_gan, init_state
from jaxgan.core.train_step import make_fused_step, make_train_step, unroll_fused_steps
from jaxgan.data.spec import DataSpec


def config_for(
  w: Workload, *, conv_transpose: str = "auto", conv: str = "auto", overrides: dict | None = None
):
  if w.name == "toy1d":
    c = base_config(model="mlp", data="gaussian_1d")
    c.model.update(
      g_hidden=(32, 32),
      g_activations=("relu", "relu"),
      d_hidden=(32, 32),
      d_activations=("relu", "relu"),
    )
    c.noise.update(dim=w.z_dim, distribution="uniform", low=0.0, high=1.0)
  elif w.name == "ring":
    c = base_config(model="mlp", data="ring_2d")
    c.model.update(
      g_hidden=(128, 128, 128),
      g_activations=("relu",) * 3,
      g_output="linear",
      d_hidden=(128, 128, 128),
      d_activations=("leaky_relu",) * 3,
    )
    c.noise.update(dim=w.z_dim, distribution="normal")
  elif w.name == "mlp_mnist":
    c = base_config(model="mnist_mlp", data="mnist")
    c.noise.update(dim=w.z_dim, distribution="uniform", low=-1.0, high=1.0)
  elif w.name == "dcgan28":
    c = base_config(model="dcgan", data="mnist")
    c.model.update(
      base=7,
      g_channels=(256, 128, 64),
      g_strides=(1, 2, 2),
      kernel=5,
      g_activation="leaky_relu",
      d_channels=(64, 128),
      d_batch_norm=False,
      conv_transpose=conv_transpose,
      conv=conv,
    )
    c.noise.update(dim=w.z_dim, distribution="normal")
  else:
    c = base_config(model="dcgan", data="celeb_a")
    c.model.update(
      base=4,
      g_channels=(512, 256, 128, 64),
      g_strides=(2, 2, 2, 2),
      kernel=4,
      d_channels=(64, 128, 256, 512),
      conv_transpose=conv_transpose,
      conv=conv,
    )
    c.noise.update(dim=w.z_dim, distribution="normal")
  for opt in (c.optim.g, c.optim.d):
    if w.optimizer == "adam":
      opt.update(name="adam", lr=w.lr, b1=w.beta1_or_momentum, b2=0.999)
    else:
      opt.update(name="sgd", lr=w.lr, momentum=w.beta1_or_momentum)
  c.parallel = "none"
  c.update_from_flattened_dict(overrides or {})  # e.g. {"loss.d_penalties": "r1:10@16"}
  return c


def build(
  w: Workload,
  batch: int,
  steps_per_call: int,
  *,
  conv_transpose: str = "auto",
  conv: str = "auto",
  unroll: bool | None = None,
  seed: int = 0,
  seeds: int = 1,
  overrides: dict | None = None,
  member_loop: str = "auto",
):
  """(jitted fused step, initial state, per-call inputs, fixed real batch on device).

  With ``seeds`` > 1 the step is vmapped over that many states (different PRNG
  keys, same real batch) as ``train.num_seeds`` does (``jaxgan.core.population``: the
  step counter stays shared): S GANs trained by one compiled program.
  """
  c = config_lib.validate(
    config_for(w, conv_transpose=conv_transpose, conv=conv, overrides=overrides)
  )
  spec = DataSpec(w.data_shape, num_classes=0, is_image=len(w.data_shape) == 3, name=w.name)
  gan = build_gan(c, spec)
  if unroll is None:
    unroll = unroll_fused_steps("auto", gan.nets)
  step = make_train_step(gan)
  # The fixed real batch is device data; per-step inputs are just step numbers.
  fused = make_fused_step(step, lambda inputs, real, axis: {"x": real[None]}, unroll=unroll)
  init = lambda k: init_state(gan, k)
  keys = (
    jax.random.split(jax.random.PRNGKey(seed), seeds) if seeds > 1 else jax.random.PRNGKey(seed)
  )
  if seeds > 1:
    example = jax.eval_shape(jax.vmap(init), keys)
    fused = population.over_members(
      fused, example, None, seeds, unroll=population.choose_member_loop(member_loop)
    )
    state = jax.jit(jax.vmap(init))(keys).replace(step=jnp.zeros((), jnp.int32))
  else:
    state = jax.jit(init)(keys)
  fn = jax.jit(fused, donate_argnums=0)
  lo, hi = gan.nets.output_range or (-1.0, 1.0)
  real = jax.random.uniform(
    jax.random.PRNGKey(seed + 1), (batch, *w.data_shape), minval=lo, maxval=hi
  )
  inputs = jnp.zeros((steps_per_call,), jnp.int32)
  return fn, state, inputs, real


def flops_per_step(w: Workload, batch: int, **kwargs) -> float | None:
  """XLA's own count of one step's floating-point operations.

  Counted on a separately compiled single, inlined step: XLA's cost analysis
  counts a while-loop body once, whatever its trip count.
  """
  fn, state, inputs, real = build(w, batch, 1, unroll=True, **kwargs)
  try:
    cost = fn.lower(state, inputs, real).compile().cost_analysis()
  except Exception:  # some backends do not report it
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float(cost.get("flops", 0.0)) or None
