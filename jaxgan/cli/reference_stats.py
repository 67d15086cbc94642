"""Compute a dataset split's FID reference statistics once, into the evaluators' cache.

  jaxgan-reference-stats --config=experiments/mnist_gan.py [--split=test] [--num=N] \\
      [--stats_cache_dir=DIR] [--feature_net=DIR] [--inception_weights=FILE] \\
      [--config.data.data_dir=...]

The real features come from the network the evaluators pick (the trained LeNet for
28x28x1 and padded 32x32x1 digits, the FID Inception-v3 for RGB) and go to the file
``fid``, ``kid`` and ``precision_recall`` read, keyed by everything that changes them,
so a later ``jaxgan-evaluate`` or a training run's evaluation finds them there. Prints
the file and the protocol line (dataset, split, count, image size and how the network
reads it, network and weights' digest) that the numbers measured against it share.
``--num`` takes the split's first N images (default: the whole split, what the
evaluators compare against).
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

_CONFIG = _SPLIT = _NUM = _STATS_CACHE = _FEATURE_NET = _INCEPTION = None


def _define_flags() -> None:
  """absl flags, defined only when run as a program (see ``jaxgan.cli.evaluate``)."""
  global _CONFIG, _SPLIT, _NUM, _STATS_CACHE, _FEATURE_NET, _INCEPTION
  _CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. experiments/mnist_gan.py[:variant]."
  )
  flags.mark_flags_as_required(["config"])
  _SPLIT = flags.DEFINE_string("split", "test", "The dataset split to describe.")
  _NUM = flags.DEFINE_integer("num", None, "Its first N images (default: the whole split).")
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


def check(config: ml_collections.ConfigDict, split: str, num: int | None) -> Any:
  """Opens ``split`` and checks the feature network and ``num`` before any work: each
  problem is one ``ConfigError`` line. Returns the split's dataset."""
  from jaxgan.data import build_dataset
  from jaxgan.evaluators import feature_metrics

  train = build_dataset(config.data)  # as the evaluators see it: other splits open from it
  feature_metrics.check_feature_net(config, train.spec)  # before the split: 1-D data has none
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
  config: ml_collections.ConfigDict, split: str = "test", num: int | None = None, progress=None
) -> Reference:
  """Computes (or finds) the real features of ``split``'s first ``num`` images (default
  all) in the evaluators' cache (``config.eval.stats_cache_dir``)."""
  import jax

  from jaxgan import evaluators
  from jaxgan.evaluators import feature_metrics

  ds = check(config, split, num)
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
    from jaxgan.run.writers import TaskProgress

    ref = reference_stats(_update(_CONFIG.value), _SPLIT.value, _NUM.value, TaskProgress())
  if ref.cached:
    print(f"already cached: {ref.path}")
  else:
    print(f"wrote {ref.path} in {ref.seconds:.1f} s")
  print(f"reference: {ref.protocol}")


def run() -> None:
  """Console-script entry point (``jaxgan-reference-stats``)."""
  _define_flags()
  cli.show_as_main(__name__)
  app.run(main)


if __name__ == "__main__":
  run()
