"""What several evaluators share: one batch of generated samples per evaluation."""

from __future__ import annotations

import jax
import numpy as np

from jaxgan.evaluators import EvalContext
from jaxgan.sampling import to_unit_range


def generated(ctx: EvalContext) -> tuple[np.ndarray, np.ndarray | None]:
  """``eval.num_samples`` samples (images in [0, 1]) and, if conditional, balanced labels.

  Drawn once per evaluation and shared by every evaluator; a sample file being
  evaluated puts its arrays here instead.
  """
  if "generated" not in ctx.cache:
    n = ctx.config.eval.num_samples
    gan, sampler = ctx.gan, ctx.sampler
    labels = None
    if gan.conditional:
      labels = np.random.default_rng(ctx.config.eval.seed).permutation(
          np.arange(n) % gan.num_classes).astype(np.int32)
    z = np.asarray(sampler.noise(jax.random.PRNGKey(ctx.config.eval.seed + 3), n))
    parts = []
    for i in range(0, n, sampler.chunk):
      parts.append(sampler.from_noise(ctx.state, z[i:i + sampler.chunk],
                                      None if labels is None else labels[i:i + sampler.chunk]))
      if ctx.progress:
        ctx.progress("generating samples", min(i + sampler.chunk, n), n)
    x = np.concatenate(parts)
    if gan.data.is_image:
      x = to_unit_range(x, gan.nets.output_range)
    ctx.cache["generated"] = (x, labels)
  return ctx.cache["generated"]


def real_split(ctx: EvalContext, split: str) -> dict[str, np.ndarray]:
  """A split of the dataset in memory, in the original files' order (images uint8)."""
  key = f"real_{split}"
  if key not in ctx.cache:
    ds = ctx.dataset if ctx.dataset.split == split else ctx.dataset.other_split(split)
    data = ds.load_all()
    order = np.argsort(data["index"], kind="stable")
    ctx.cache[key] = {k: v[order] for k, v in data.items()}
  return ctx.cache[key]
