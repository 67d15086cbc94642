"""Compute a dataset split's FID reference statistics once, into the evaluators' cache.

  jaxgan-reference-stats --config=experiments/mnist_gan.py [--split=test] [--num=N] \\
      [--per_class] [--stats_cache_dir=DIR] [--feature_net=DIR] [--inception_weights=FILE] \\
      [--config.data.data_dir=...]

The real features come from the network the evaluators pick (the trained LeNet for
28x28x1 and padded 32x32x1 digits, the FID Inception-v3 for RGB) and go to the file
``fid``, ``kid`` and ``precision_recall`` read, keyed by everything that changes them,
so a later ``jaxgan-evaluate`` or a training run's evaluation finds them there. Prints
the file and the protocol line (dataset, split, count, image size and how the network
reads it, network and weights' digest) that the numbers measured against it share.
``--num`` takes the split's first N images (default: the whole split, what the
evaluators compare against). ``--per_class`` writes each class's statistics of the whole
split instead (default split ``train``), the files ``fid_intra`` reads.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from jaxgan import cli
from jaxgan.errors import ConfigError

_CONFIG = _SPLIT = _NUM = _PER_CLASS = _STATS_CACHE = _FEATURE_NET = _INCEPTION = None


def _define_flags() -> None:
  """absl flags, defined only when run as a program (see ``jaxgan.cli.evaluate``)."""
  global _CONFIG, _SPLIT, _NUM, _PER_CLASS, _STATS_CACHE, _FEATURE_NET, _INCEPTION
  _CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. experiments/mnist_gan.py[:variant]."
  )
  flags.mark_flags_as_required(["config"])
  _SPLIT = flags.DEFINE_string(
    "split", None, "The dataset split to describe (default: test; train with --per_class)."
  )
  _NUM = flags.DEFINE_integer("num", None, "Its first N images (default: the whole split).")
  _PER_CLASS = flags.DEFINE_bool(
    "per_class", False, "Each class's statistics of the whole split, for fid_intra."
  )
  _STATS_CACHE = flags.DEFINE_string(
    "stats_cache_dir", None, "Real-data statistics cache (default: config.eval.stats_cache_dir)."
  )
  _FEATURE_NET = flags.DEFINE_string("feature_net", None, "Trained LeNet dir for 28x28x1 data.")
  _INCEPTION = flags.DEFINE_string("inception_weights", None, "FID Inception .npz for RGB data.")


@dataclasses.dataclass
class Reference:
  """What ``reference_stats`` made or found."""

  path: str  # the cache file
  protocol: str  # e.g. "mnist test 10000 28x28x1 lenet:9cbbea18"
  cached: bool  # it was there already: nothing was computed
  seconds: float


def check(
  config: ml_collections.ConfigDict, split: str, num: int | None, per_class: bool = False
) -> Any:
  """Opens ``split`` and checks the feature network and ``num`` (and the labels, per
  class) before any work: each problem is one ``ConfigError`` line. Returns the split's
  dataset."""
  from jaxgan.data import build_dataset
  from jaxgan.evaluators import feature_metrics

  if per_class and num is not None:
    raise ConfigError(
      "--num with --per_class: fid_intra compares against whole classes; leave --num out."
    )
  train = build_dataset(config.data)  # as the evaluators see it: other splits open from it
  feature_metrics.check_feature_net(config, train.spec)  # before the split: 1-D data has none
  if per_class and not train.spec.num_classes:
    raise ConfigError(f"--per_class: dataset {config.data.name!r} has no labels.")
  try:
    ds = train if train.split == split else train.other_split(split)
  except ValueError as e:  # the dataset's own "Unknown split 'x'. Should be one of [...]"
    raise ConfigError(f"--split={split}: {e}") from None
  if num is not None and not 1 <= num <= len(ds):
    raise ConfigError(
      f"--num={num}: the {config.data.name} {split} split has {len(ds)} images; "
      f"give 1 to {len(ds)}, or leave --num out for all of them."
    )
  return ds


def reference_stats(
  config: ml_collections.ConfigDict,
  split: str = "test",
  num: int | None = None,
  progress=None,
  per_class: bool = False,
) -> Reference:
  """Computes (or finds) the real features of ``split``'s first ``num`` images (default
  all) in the evaluators' cache (``config.eval.stats_cache_dir``); with ``per_class``,
  each class's statistics of the whole split (``path``: the first class's file)."""
  import jax

  from jaxgan import evaluators
  from jaxgan.evaluators import feature_metrics, intra_class

  ds = check(config, split, num, per_class)
  ctx = evaluators.EvalContext(
    config=config,
    gan=None,
    state=None,
    dataset=ds,
    step=0,
    workdir=None,
    rng=jax.random.PRNGKey(0),
    progress=progress,
  )
  if per_class:
    paths = [feature_metrics.class_stats_path(ctx, split, c)[0] for c in range(ds.spec.num_classes)]
    cached = all(os.path.exists(p) for p in paths)
    start = time.perf_counter()
    intra_class.class_reference_stats(ctx, split)
    seconds = time.perf_counter() - start
    line = ctx.shared["reference_protocols"][f"{split} per class"]
    return Reference(paths[0], line, cached, seconds)
  path, key = feature_metrics.stats_path(ctx, split, num)
  cached = os.path.exists(path)
  start = time.perf_counter()
  feature_metrics.real_features(ctx, split, num)
  seconds = time.perf_counter() - start
  return Reference(path, feature_metrics.protocol(key, ds.spec.shape), cached, seconds)


def _update(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  with config.unlocked():
    for flag, name in (
      (_STATS_CACHE, "stats_cache_dir"),
      (_FEATURE_NET, "feature_net"),
      (_INCEPTION, "inception_weights"),
    ):
      if flag.value is not None:
        config.eval[name] = flag.value
  return config


def main(argv: list[str]) -> None:
  cli.setup(argv)
  with cli.program():
    from jaxgan.evaluators import intra_class
    from jaxgan.run.writers import TaskProgress

    default = intra_class.REFERENCE_SPLIT if _PER_CLASS.value else "test"
    ref = reference_stats(
      _update(_CONFIG.value), _SPLIT.value or default, _NUM.value, TaskProgress(), _PER_CLASS.value
    )
  where = os.path.dirname(ref.path) + " (one file per class)" if _PER_CLASS.value else ref.path
  if ref.cached:
    print(f"already cached: {where}")
  else:
    print(f"wrote {where} in {ref.seconds:.1f} s")
  print(f"reference: {ref.protocol}")


def run() -> None:
  """Console-script entry point (``jaxgan-reference-stats``)."""
  _define_flags()
  cli.show_as_main(__name__)
  app.run(main)


if __name__ == "__main__":
  run()
