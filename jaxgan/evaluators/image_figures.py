"""The figures GAN papers show, for image models.

* ``samples``: a grid from a fixed noise batch (the same at every evaluation, so
  progress is visible); for conditional models, one row per class.
* ``interpolation``: linear walks between random z pairs (Goodfellow et al.
  2014, Figure 3), one pair per row.
* ``nearest_neighbours``: generated samples beside their nearest training
  images in pixel space (Figure 2, rightmost column): evidence the model does
  not just memorise.
* ``loss_curves``: losses and D's outputs from ``metrics.jsonl``.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.core.sampling import to_unit_range
from jaxgan.evaluators import EvalContext, EvalResult, figures
from jaxgan.evaluators.common import figure_result
from jaxgan.metrics.distances import sq_dists
from jaxgan.run.writers import read_jsonl


def _scale(ctx: EvalContext) -> int:
  return 2 if ctx.gan.data.shape[0] <= 32 else 1


def _unit(ctx: EvalContext, x: np.ndarray) -> np.ndarray:
  return to_unit_range(x, ctx.gan.nets.output_range)


def samples(ctx: EvalContext) -> EvalResult:
  key = jax.random.PRNGKey(ctx.config.eval.seed)  # fixed: the same z at every evaluation
  if ctx.gan.conditional:
    rows, cols = ctx.gan.num_classes, 10
    labels = jnp.repeat(jnp.arange(rows), cols)
  else:
    rows = cols = 8
    labels = None
  x = ctx.sampler.from_noise(ctx.state, ctx.sampler.noise(key, rows * cols), labels)
  return figure_result(
    ctx, "samples", figures.image_grid(_unit(ctx, x), rows, cols, scale=_scale(ctx))
  )


def interpolation(ctx: EvalContext, rows: int = 8, cols: int = 10) -> EvalResult:
  ka, kb, _ky = jax.random.split(jax.random.PRNGKey(ctx.config.eval.seed + 1), 3)
  za, zb = ctx.sampler.noise(ka, rows), ctx.sampler.noise(kb, rows)
  t = jnp.linspace(0.0, 1.0, cols)[None, :, None]
  z = ((1 - t) * za[:, None] + t * zb[:, None]).reshape(rows * cols, -1)
  labels = None
  if ctx.gan.conditional:  # one class per row, held fixed along the walk
    labels = jnp.repeat(jnp.arange(rows) % ctx.gan.num_classes, cols)
  x = ctx.sampler.from_noise(ctx.state, z, labels)
  return figure_result(
    ctx, "interpolation", figures.image_grid(_unit(ctx, x), rows, cols, scale=_scale(ctx))
  )


def nearest_training_images(queries: np.ndarray, pool: np.ndarray, k: int) -> np.ndarray:
  """Indices [Q, k] of the k nearest pool images to each query (squared L2 on pixels)."""
  q = jnp.asarray(queries.reshape(len(queries), -1), jnp.float32)
  p = jnp.asarray(pool.reshape(len(pool), -1), jnp.float32)
  return np.asarray(jax.lax.top_k(-sq_dists(q, p), k)[1])


def nearest_neighbours(ctx: EvalContext, rows: int = 8, k: int = 5) -> EvalResult:
  x, _ = ctx.sampler.sample(ctx.state, jax.random.PRNGKey(ctx.config.eval.seed + 2), rows)
  x = _unit(ctx, x)
  data = ctx.dataset.load_all() if ctx.dataset.on_device or len(ctx.dataset) <= 70_000 else None
  if data is not None:
    pool = data["x"]
  else:  # large datasets: a fixed random subset
    idx = np.random.default_rng(0).choice(len(ctx.dataset), 20_000, replace=False)
    pool = ctx.dataset.read(idx)["x"]
  pool = pool.astype(np.float32) / 255.0
  nearest = nearest_training_images(x, pool, k)
  tiles = np.concatenate([np.concatenate([x[i : i + 1], pool[nearest[i]]]) for i in range(rows)])
  image = figures.image_grid(tiles, rows, k + 1, scale=_scale(ctx))
  return figure_result(ctx, "nearest_neighbours", image)


def loss_curves(ctx: EvalContext) -> EvalResult:
  if not ctx.workdir:
    return EvalResult()
  records = read_jsonl(os.path.join(ctx.run_dir or ctx.workdir, "metrics.jsonl"))
  if ctx.member is not None:  # this member's own columns, under the plain names
    suffix = f":{ctx.member}"
    records = [
      {"step": r["step"], **{k[: -len(suffix)]: v for k, v in r.items() if k.endswith(suffix)}}
      for r in records
    ]
  if not any("d_loss" in r for r in records):
    return EvalResult()
  gan = ctx.gan
  image = figures.loss_curves(
    records,
    f"up to step {ctx.step}",
    d_equilibrium=gan.d_loss.equilibrium,
    g_equilibrium=gan.g_loss.equilibrium,
    d_output=gan.d_loss.output,
    d_indifferent=gan.d_loss.indifferent,
  )
  return figure_result(ctx, "loss_curves", image, per_step=False)
