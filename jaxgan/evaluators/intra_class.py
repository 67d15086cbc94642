"""Intra-class FID of a class-conditional run, as PyTorch-StudioGAN's ``-ifid`` computes it.

For each class c: the FID between G's samples with label c and the reference split's
images of class c, with as many samples as that class has reference images; the score is
the plain mean over classes (every class counts once, whatever its size), and each class's
value is logged too (``fid_intra/<c>``). StudioGAN's ``calculate_intra_class_fid``
(``src/worker.py``, commit 947b35e9) takes its references from ``-ref_dataset``, ``train``
by default, which is the split used here (``REFERENCE_SPLIT``; the ``fid`` evaluator's
references are the test split). Features come from the network ``fid`` uses; each class's
statistics are cached on their own, under ``fid``'s key plus the class
(``feature_metrics.class_stats_path``).
"""

from __future__ import annotations

import jax
import numpy as np

from jaxgan.core.sampling import to_unit_range
from jaxgan.errors import ConfigError
from jaxgan.evaluators import EvalContext, EvalResult, feature_metrics
from jaxgan.evaluators.common import real_split
from jaxgan.metrics import frechet

REFERENCE_SPLIT = "train"  # StudioGAN's default -ref_dataset
NOISE_STREAM = 5  # class c's noise: PRNGKey(eval.seed + 5) folded with c


def check(name: str, conditional: bool, spec) -> None:
  """One line for a run this metric cannot score: unconditional, or data without labels."""
  if not spec.num_classes:
    raise ConfigError(
      f"config.eval.metrics: {name} compares each class's samples with that class's real "
      f"images, and dataset {spec.name!r} has no labels; use fid."
    )
  if not conditional:
    raise ConfigError(
      f"config.eval.metrics: {name} compares each class's samples with that class's real "
      f"images, and this run is unconditional (config.model.conditional=False); use fid."
    )


def preflight(name, config, spec) -> None:
  check(name, bool(config.model.conditional), spec)
  feature_metrics.preflight(name, config, spec)


def class_reference_stats(
  ctx: EvalContext, split: str = REFERENCE_SPLIT
) -> list[dict[str, np.ndarray]]:
  """Each class's real feature statistics in the whole of ``split`` (``mu``, ``sigma`` and
  ``count``, its number of images), read from the cache when present; records the protocol
  line of the set of them (``references``: ``"<split> per class"``)."""
  name = f"class_features_{split}"
  if name in ctx.shared:
    return ctx.shared[name]
  num_classes = ctx.dataset.spec.num_classes
  data, stats, keys = None, [], []
  for c in range(num_classes):
    path, key = feature_metrics.class_stats_path(ctx, split, c)
    got = feature_metrics.read_stats(path, key, ("mu", "sigma", "count"))
    if got is None:
      if data is None:
        data = real_split(ctx, split)
        if data.get("y") is None:
          raise ConfigError(f"fid_intra: the {ctx.dataset.name} {split} split has no labels.")
      images = data["x"][np.asarray(data["y"]) == c]
      if len(images) < 2:
        raise ConfigError(
          f"fid_intra: class {c} has {len(images)} image(s) in the {ctx.dataset.name} {split} "
          f"split; each class needs at least 2 for a covariance."
        )
      feats, _ = feature_metrics.net(ctx)(
        images.astype(np.float32) / 255.0, ctx.progress, f"features of real class {c}"
      )
      mu, sigma = frechet.gaussian_stats(feats)
      got = {"mu": mu, "sigma": sigma, "count": np.asarray(len(images))}
      feature_metrics.write_stats(path, key, got)
    stats.append(got)
    keys.append({**key, "count": int(got["count"])})
  shape = ctx.dataset.spec.shape
  counts = [k["count"] for k in keys]
  summary = {**keys[0], "class": f"0-{num_classes - 1}", "count": f"{min(counts)}-{max(counts)}"}
  protocols = ctx.shared.setdefault("reference_protocols", {})
  protocols[f"{split} per class"] = feature_metrics.protocol(summary, shape)
  ctx.shared[f"{name}_protocols"] = [feature_metrics.protocol(k, shape) for k in keys]
  ctx.shared[name] = stats
  return stats


def class_samples(ctx: EvalContext, label: int, n: int) -> np.ndarray:
  """n samples of G with label ``label`` (images in [0, 1]), from class ``label``'s own
  noise: the same whatever the other classes' counts."""
  key = jax.random.fold_in(jax.random.PRNGKey(ctx.config.eval.seed + NOISE_STREAM), label)
  z = ctx.sampler.noise(key, n)
  x = ctx.sampler.from_noise(ctx.state, z, np.full((n,), label, np.int32), key=key)
  return to_unit_range(x, ctx.gan.nets.output_range)


def fid_intra(ctx: EvalContext) -> EvalResult:
  check("fid_intra", bool(ctx.gan.conditional), ctx.dataset.spec)
  reference = class_reference_stats(ctx)
  scalars = {}
  for c, real in enumerate(reference):
    x = class_samples(ctx, c, int(real["count"]))
    feats, _ = feature_metrics.net(ctx)(x, ctx.progress, f"features of generated class {c}")
    mu, sigma = frechet.gaussian_stats(feats)
    scalars[f"fid_intra/{c}"] = frechet.frechet_distance(mu, sigma, real["mu"], real["sigma"])
  return EvalResult({"fid_intra": float(np.mean(list(scalars.values()))), **scalars})
