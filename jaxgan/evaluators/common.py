"""What several evaluators share: one batch of generated samples per evaluation."""

from __future__ import annotations

import os

import jax
import numpy as np

from jaxgan.evaluators import EvalContext, EvalResult, figures


def generated(ctx: EvalContext) -> tuple[np.ndarray, np.ndarray | None]:
  """``eval.num_samples`` samples (images in [0, 1]) and, if conditional, balanced labels.

  Drawn once per evaluation and shared by every evaluator; a sample file being
  evaluated puts its arrays here instead.
  """
  if "generated" not in ctx.cache:
    progress = ctx.progress and (lambda done, n: ctx.progress("generating samples", done, n))
    ctx.cache["generated"] = ctx.sampler.balanced(
      ctx.state,
      ctx.config.eval.num_samples,
      label_seed=ctx.config.eval.seed,
      noise_key=jax.random.PRNGKey(ctx.config.eval.seed + 3),
      progress=progress,
    )
  return ctx.cache["generated"]


def figure_result(
  ctx: EvalContext,
  name: str,
  image: np.ndarray,
  *,
  per_step: bool = True,
  scalars: dict[str, float] | None = None,
) -> EvalResult:
  """A figure for TensorBoard, also saved as ``<workdir>/figures/<name>_<step>.png``."""
  result = EvalResult(scalars or {}, {name: image})
  if ctx.workdir:
    file = f"{name}_{ctx.step:07d}.png" if per_step else f"{name}.png"
    result.files.append(figures.save_png(image, os.path.join(ctx.workdir, "figures", file)))
  return result


def real_split(ctx: EvalContext, split: str) -> dict[str, np.ndarray]:
  """A split of the dataset in memory, in the original files' order (images uint8)."""
  key = f"real_{split}"
  if key not in ctx.shared:
    ds = ctx.dataset if ctx.dataset.split == split else ctx.dataset.other_split(split)
    data = ds.load_all()
    order = np.argsort(data["index"], kind="stable")
    ctx.shared[key] = {k: v[order] for k, v in data.items()}
  return ctx.shared[key]
