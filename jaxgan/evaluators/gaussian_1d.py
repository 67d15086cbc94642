"""How well G matches a 1-D Gaussian target, and the paper's Figure 1 picture.

Metrics on ``eval.num_samples`` generated values (10,000 by default) against the
*analytic* target N(mean, std^2), so no sampling noise from the target enters:
  * gen_mean, gen_std against target_mean, target_std;
  * w1: Wasserstein-1 = integral over u of |Q_gen(u) - Q(u)|, by the midpoint
    rule on the sorted samples (error O(1/n) in the bulk);
  * ks: the exact Kolmogorov-Smirnov statistic sup |F_n - F|;
  * d_half_gap: mean |D(x) - 1/2|, which tends to 0 at the global optimum, for
    losses whose D outputs 1/2 when it cannot tell (BCE, least squares). For
    scalar data it is D on a grid over the data's central 95% interval; for
    vector data (the textbook's D sees whole vectors) D's mean output on real
    and on generated vectors.
  * critic_spread, for critics (Wasserstein, hinge, RpGAN), which have no such
    value: the std of the critic over that grid (0 when flat), or the gap between
    its mean on real and on generated vectors.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from jaxgan.core.gan import discriminate
from jaxgan.evaluators import EvalContext, EvalResult, figures
from jaxgan.evaluators.common import figure_result


def wasserstein1_to_normal(samples: np.ndarray, mean: float, std: float) -> float:
  x = np.sort(np.asarray(samples, np.float64).ravel())
  n = x.size
  q = mean + std * special.ndtri((np.arange(n) + 0.5) / n)
  return float(np.mean(np.abs(x - q)))


def ks_to_normal(samples: np.ndarray, mean: float, std: float) -> float:
  x = np.sort(np.asarray(samples, np.float64).ravel())
  n = x.size
  cdf = special.ndtr((x - mean) / std)
  i = np.arange(1, n + 1)
  return float(max(np.max(i / n - cdf), np.max(cdf - (i - 1) / n)))


def generated_values(ctx: EvalContext) -> np.ndarray:
  """``eval.num_samples`` scalar values from G (vectors are flattened)."""
  if "values" not in ctx.cache:
    n = ctx.config.eval.num_samples
    dim = int(np.prod(ctx.gan.data.shape))
    x, _ = ctx.sampler.sample(ctx.state, ctx.rng, -(-n // dim))
    ctx.cache["values"] = x.reshape(-1)[:n]
  return ctx.cache["values"]


def d_gap(
  ctx: EvalContext, values: np.ndarray
) -> tuple[dict[str, float], np.ndarray | None, np.ndarray]:
  """(D-at-equilibrium scalars, the grid or None, D's outputs: on the grid, or real then fake)."""
  ds, indifferent = ctx.dataset, ctx.gan.d_loss.indifferent
  if ds.dim == 1:
    grid = np.linspace(ds.mean - 1.96 * ds.std, ds.mean + 1.96 * ds.std, 256, dtype=np.float32)
    d = np.asarray(discriminate(ctx.gan, ctx.state, jnp.asarray(grid)[:, None]))
    if indifferent is None:
      return {"critic_spread": float(np.std(d))}, grid, d
    return {"d_half_gap": float(np.mean(np.abs(d - indifferent)))}, grid, d
  n = min(values.size // ds.dim, 1000)
  real = ds.sample(jax.random.fold_in(ctx.rng, 1), n)["x"]
  fake = jnp.asarray(values[: n * ds.dim].reshape(n, ds.dim))
  d = np.concatenate(
    [
      np.asarray(discriminate(ctx.gan, ctx.state, real)),
      np.asarray(discriminate(ctx.gan, ctx.state, fake)),
    ]
  )
  if indifferent is None:
    return {"critic_spread": float(abs(d[:n].mean() - d[n:].mean()))}, None, d
  return {"d_half_gap": float(np.mean(np.abs(d - indifferent)))}, None, d


def evaluate(ctx: EvalContext) -> EvalResult:
  ds = ctx.dataset
  values = generated_values(ctx)
  gap, grid, d = d_gap(ctx, values)
  scalars = {
    "gen_mean": float(values.mean()),
    "gen_std": float(values.std()),
    "target_mean": float(ds.mean),
    "target_std": float(ds.std),
    "w1": wasserstein1_to_normal(values, ds.mean, ds.std),
    "ks": ks_to_normal(values, ds.mean, ds.std),
    **gap,
  }
  scalars["w1_over_std"] = scalars["w1"] / ds.std
  if ds.dim > 1:
    half = d.size // 2
    scalars["d_real_mean"], scalars["d_fake_mean"] = float(d[:half].mean()), float(d[half:].mean())

  mapping = None
  if ctx.gan.noise.dim == 1 and ds.dim == 1:
    z = np.linspace(ctx.gan.noise.low, ctx.gan.noise.high, 21, dtype=np.float32)[:, None]
    mapping = (z[:, 0], ctx.sampler.from_noise(ctx.state, jnp.asarray(z))[:, 0])
  if grid is not None:  # draw D over the whole plotted range, as in the paper
    grid = np.linspace(ds.mean - 4 * ds.std, ds.mean + 4 * ds.std, 400, dtype=np.float32)
    d = np.asarray(discriminate(ctx.gan, ctx.state, jnp.asarray(grid)[:, None]))
  image = figures.density_1d(
    values,
    ds.mean,
    ds.std,
    d_grid=grid,
    d_values=d if grid is not None else None,
    mapping=mapping,
    noise_range=(ctx.gan.noise.low, ctx.gan.noise.high),
    d_output=ctx.gan.d_loss.output,
    title=f"step {ctx.step}: W1 = {scalars['w1']:.4f} ({scalars['w1_over_std']:.3f} sigma), "
    f"KS = {scalars['ks']:.3f}",
  )
  return figure_result(ctx, "density_1d", image, scalars=scalars)
