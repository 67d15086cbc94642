"""Evaluate a checkpoint (or a sample file) with metrics picked by name.

  jaxgan-evaluate --workdir=workdirs/mnist_gan [--step=30000] [--metrics=parzen,fid,kid]
  jaxgan-evaluate --workdir=workdirs/mnist_gan_paper_code --best --metrics=parzen
  jaxgan-evaluate --workdir=workdirs/mnist_gan_ema --metrics=parzen --weights=raw
  jaxgan-evaluate --samples=samples.npz --dataset=mnist --metrics=parzen --output=out.json

Checkpoint mode writes ``<workdir>/eval/<step>.json`` (``--output`` elsewhere) and
says where on stderr; the metrics go to stdout. They default to the
run's ``config.eval.metrics``; long computations show their progress. ``--best``
evaluates the checkpoint kept as best by the run's ``config.eval.select`` (each
member's own best step in a run of many; ``eval/best.json``). A run that keeps an
EMA of G is sampled from the EMA; ``--weights=raw`` samples G's own weights
instead (records get a ``_raw`` suffix). ``--bn_stats=standing`` (or ``batch``) samples a
G with batch norm with standing or batch statistics instead of its running ones
(``config.eval.bn_stats``; records get a ``_standing`` or ``_batch`` suffix and name the
statistics under ``bn_stats``). ``--samples`` takes the evaluators that need no GAN
(``jaxgan.evaluators.without_gan``).
"""

from __future__ import annotations

import json
import sys

from absl import app, flags, logging

from jaxgan import cli
from jaxgan.config import split_names
from jaxgan.core.sampling import BN_STATS
from jaxgan.evaluators.evaluate import (
  WEIGHTS,
  evaluate_best,
  evaluate_run,
  evaluate_samples,
  members_table,
)

_WORKDIR = None
_STEP = None
_METRICS = None
_NUM = None
_FEATURE_NET = None
_INCEPTION = None
_STATS_CACHE = None
_SAMPLES = None
_DATASET = None
_DATA_DIR = None
_OUTPUT = None
_SEED_INDEX = None
_BEST = None
_WEIGHTS = None
_BN_STATS = None
_BN_BATCH = None
_STANDING_STEPS = None


def _define_flags() -> None:
  """absl flags, defined only when run as a program, so that this module and
  the other command-line modules can all be imported into one notebook."""
  global \
    _WORKDIR, \
    _STEP, \
    _METRICS, \
    _NUM, \
    _FEATURE_NET, \
    _INCEPTION, \
    _STATS_CACHE, \
    _SAMPLES, \
    _DATASET, \
    _DATA_DIR, \
    _OUTPUT, \
    _SEED_INDEX, \
    _BEST, \
    _WEIGHTS, \
    _BN_STATS, \
    _BN_BATCH, \
    _STANDING_STEPS
  _WORKDIR = flags.DEFINE_string("workdir", None, "Run directory to evaluate.")
  _STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
  _METRICS = flags.DEFINE_string(
    "metrics", None, "Comma-separated evaluator names (default: the run's)."
  )
  _NUM = flags.DEFINE_integer(
    "num_samples", None, "Generated samples (default: config.eval.num_samples)."
  )
  _FEATURE_NET = flags.DEFINE_string("feature_net", None, "Trained LeNet dir for 28x28x1 metrics.")
  _INCEPTION = flags.DEFINE_string("inception_weights", None, "FID Inception .npz for RGB metrics.")
  _STATS_CACHE = flags.DEFINE_string(
    "stats_cache_dir", None, "Real-data statistics cache directory."
  )
  _SAMPLES = flags.DEFINE_string(
    "samples", None, "Evaluate this .npz ('samples' in [0, 1]) instead of a run."
  )
  _DATASET = flags.DEFINE_string("dataset", None, "With --samples: the dataset to compare against.")
  _DATA_DIR = flags.DEFINE_string("data_dir", "", "With --samples: TFDS data dir.")
  _OUTPUT = flags.DEFINE_string("output", None, "Where to write the JSON result.")
  _SEED_INDEX = flags.DEFINE_integer(
    "seed_index",
    None,
    "In a run of many members (train.num_seeds, config.sweep): evaluate only "
    "this one (see members.json). Default: every member, with mean and std.",
  )
  _BEST = flags.DEFINE_bool(
    "best",
    False,
    "Evaluate the checkpoint kept as best by the run's "
    "config.eval.select (each member's own best in a run of many).",
  )
  _WEIGHTS = flags.DEFINE_enum(
    "weights",
    "ema",
    WEIGHTS,
    "G's weights to sample: ema (the run's EMA of G, when it keeps one) or raw (G's own weights).",
  )
  _BN_STATS = flags.DEFINE_enum(
    "bn_stats",
    None,
    BN_STATS,
    "G's batch-norm statistics: running, standing or batch (default: the run's config.eval).",
  )
  _BN_BATCH = flags.DEFINE_integer(
    "bn_batch", None, "Examples per training-mode pass of standing and batch statistics."
  )
  _STANDING_STEPS = flags.DEFINE_integer(
    "standing_steps", None, "Training-mode passes averaged into standing statistics."
  )


def _overrides() -> dict:
  out = {}
  if _METRICS.value is not None:
    out["eval.metrics"] = _METRICS.value
  if _NUM.value is not None:
    out["eval.num_samples"] = _NUM.value
  if _FEATURE_NET.value is not None:
    out["eval.feature_net"] = _FEATURE_NET.value
  if _INCEPTION.value is not None:
    out["eval.inception_weights"] = _INCEPTION.value
  if _STATS_CACHE.value is not None:
    out["eval.stats_cache_dir"] = _STATS_CACHE.value
  for key, flag in (
    ("bn_stats", _BN_STATS),
    ("bn_batch", _BN_BATCH),
    ("standing_steps", _STANDING_STEPS),
  ):
    if flag.value is not None:
      out[f"eval.{key}"] = flag.value
  return out


def main(argv: list[str]) -> None:
  cli.setup(argv, logging.ERROR)
  with cli.program():
    if _SAMPLES.value:
      if not _DATASET.value or not _METRICS.value:
        raise app.UsageError("--samples needs --dataset and --metrics")
      record = evaluate_samples(
        _SAMPLES.value,
        _DATASET.value,
        split_names(_METRICS.value),
        data_dir=_DATA_DIR.value,
        update=_overrides(),
        output=_OUTPUT.value,
      )
    elif _WORKDIR.value and _BEST.value:
      if _STEP.value is not None:
        raise app.UsageError("give --best or --step, not both")
      record = evaluate_best(
        _WORKDIR.value,
        update=_overrides(),
        output=_OUTPUT.value,
        seed_index=_SEED_INDEX.value,
        weights=_WEIGHTS.value,
      )
      table = members_table(record)
      if table:
        print(table, file=sys.stderr)
    elif _WORKDIR.value:
      record = evaluate_run(
        _WORKDIR.value,
        _STEP.value,
        update=_overrides(),
        output=_OUTPUT.value,
        seed_index=_SEED_INDEX.value,
        weights=_WEIGHTS.value,
      )
      table = members_table(record)
      if table:
        print(table, file=sys.stderr)
    else:
      raise app.UsageError("give --workdir (a run) or --samples (a sample file)")
  print(json.dumps(record["metrics"], indent=2, default=float))
  if "written_to" in record:
    print(f"wrote {record['written_to']}", file=sys.stderr)
  else:
    print("not written anywhere: pass --output=FILE to keep the record", file=sys.stderr)


def run() -> None:
  """Console-script entry point (``jaxgan-evaluate``)."""
  _define_flags()
  cli.show_as_main(__name__)
  app.run(main)


if __name__ == "__main__":
  run()
