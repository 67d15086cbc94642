"""``mode_coverage`` and ``mixture_2d``: mode collapse on the 2-D mixtures, numbers and a figure."""

from __future__ import annotations

import jax
import numpy as np

from jaxgan.errors import ConfigError
from jaxgan.evaluators import EvalContext, EvalResult, figures
from jaxgan.evaluators.common import figure_result, generated
from jaxgan.metrics.modes import mode_coverage as coverage


def preflight(name, config, spec) -> None:
  if spec.name not in ("ring_2d", "grid_2d"):
    raise ConfigError(
      f"config.eval.metrics: {name} needs a 2-D mixture (ring_2d, grid_2d), not {spec.name!r}."
    )


def mode_coverage(ctx: EvalContext) -> EvalResult:
  x, _ = generated(ctx)
  ds = ctx.dataset
  return EvalResult(
    coverage(x, np.asarray(ds.centers), ds.std, min_count=ctx.config.eval.mode_min_count)
  )


def figure(ctx: EvalContext) -> EvalResult:
  x, _ = generated(ctx)
  ds = ctx.dataset
  real = np.asarray(ds.sample(jax.random.PRNGKey(ctx.config.eval.seed), len(x))["x"])
  image = figures.scatter_2d(real, x, np.asarray(ds.centers), title=f"{ds.name}, step {ctx.step}")
  return figure_result(ctx, "mixture_2d", image)
