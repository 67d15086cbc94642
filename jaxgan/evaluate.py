"""Evaluate a checkpoint (or a sample file) with metrics picked by name.

  python -m jaxgan.evaluate --workdir=workdirs/mnist_gan [--step=30000] [--metrics=parzen,fid,kid]
  python -m jaxgan.evaluate --samples=samples.npz --dataset=mnist --metrics=parzen --output=out.json

Checkpoint mode writes ``<workdir>/eval/<step>.json``. The metrics default to the
run's ``config.eval.metrics``; long computations show their progress.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import time

import jax
import numpy as np
from absl import app, flags, logging

from jaxgan import cli
from jaxgan.errors import ConfigError

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory to evaluate.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_METRICS = flags.DEFINE_string("metrics", None, "Comma-separated evaluator names (default: the run's).")
_NUM = flags.DEFINE_integer("num_samples", None, "Generated samples (default: config.eval.num_samples).")
_FEATURE_NET = flags.DEFINE_string("feature_net", None, "Trained LeNet dir for 28x28x1 metrics.")
_INCEPTION = flags.DEFINE_string("inception_weights", None, "FID Inception .npz for RGB metrics.")
_STATS_CACHE = flags.DEFINE_string("stats_cache_dir", None, "Real-data statistics cache directory.")
_SAMPLES = flags.DEFINE_string("samples", None, "Evaluate this .npz ('samples' in [0, 1]) instead of a run.")
_DATASET = flags.DEFINE_string("dataset", None, "With --samples: the dataset to compare against.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "With --samples: TFDS data dir.")
_OUTPUT = flags.DEFINE_string("output", None, "Where to write the JSON result.")

SAMPLE_FILE_METRICS = ("parzen", "fid", "kid", "is", "precision_recall", "class_coverage", "mode_coverage")


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
  return out


def evaluate_run(workdir: str, step: int | None = None, *, update: dict | None = None,
                 output: str | None = None) -> dict:
  """Evaluates a checkpoint; returns the record written to ``<workdir>/eval/<step>.json``."""
  from jaxgan import config as config_lib
  from jaxgan.api import open_run
  from jaxgan.metric_writers import TaskProgress
  from jaxgan.training import evaluate_state
  exp, state = open_run(workdir, step, update=update, preflight=True)
  step = int(state.step)
  start = time.time()
  names = config_lib.split_names(exp.config.eval.metrics)
  if not names:
    raise ConfigError("no metrics to evaluate: pass --metrics=... (see jaxgan.evaluators).")
  result = evaluate_state(exp, state, step, workdir, names, progress=TaskProgress())
  record = _record(result.scalars, names, step=step, seconds=time.time() - start,
                   num_samples=exp.config.eval.num_samples, files=result.files)
  output = output or os.path.join(workdir, "eval", f"{step}.json")
  _write(record, output)
  return record


def evaluate_samples(path: str, dataset: str, names: list[str], *, data_dir: str = "",
                     update: dict | None = None, output: str | None = None) -> dict:
  """Evaluates samples from a file against ``dataset``'s real data."""
  from jaxgan import config as config_lib, evaluators
  from jaxgan.data import build_dataset
  from jaxgan.metric_writers import TaskProgress
  bad = [n for n in names if n not in SAMPLE_FILE_METRICS]
  if bad:
    raise ConfigError(f"--samples works with {', '.join(SAMPLE_FILE_METRICS)}; not {', '.join(bad)}.")
  config = config_lib.base_config(model="mlp", data=dataset)  # also rejects unknown names
  if "data_dir" in config.data:
    config.data.data_dir = data_dir
  config.update_from_flattened_dict(update or {})
  ds = build_dataset(config.data)
  evaluators.preflight(names, config, ds.spec)
  with np.load(path) as f:
    samples = np.asarray(f["samples"], np.float32)
    labels = f["labels"] if "labels" in f else None
  if samples.shape[1:] != tuple(ds.spec.shape):
    raise ConfigError(f"{path}: samples have shape {samples.shape[1:]}, {dataset} has {ds.spec.shape}.")
  ctx = evaluators.EvalContext(config=config, gan=None, state=None, dataset=ds, step=0,
                               workdir=None, rng=jax.random.PRNGKey(0), progress=TaskProgress())
  ctx.cache["generated"] = (samples, labels)
  start = time.time()
  result = evaluators.run_evaluators(names, ctx)
  record = _record(result.scalars, names, samples_file=os.path.abspath(path), dataset=dataset,
                   seconds=time.time() - start, num_samples=len(samples))
  if output:
    _write(record, output)
  return record


def _record(scalars: dict, names: list[str], **meta) -> dict:
  return {"metrics": scalars, "evaluators": names, **meta,
          "date": datetime.date.today().isoformat(),
          "machine": f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} "
                     f"on {jax.default_backend()}"}


def _write(record: dict, path: str) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(record, f, indent=2, default=float)


def main(argv: list[str]) -> None:
  cli.setup(argv, logging.ERROR)
  with cli.user_errors_exit():
    if _SAMPLES.value:
      if not _DATASET.value or not _METRICS.value:
        raise app.UsageError("--samples needs --dataset and --metrics")
      from jaxgan.config import split_names
      record = evaluate_samples(_SAMPLES.value, _DATASET.value, split_names(_METRICS.value),
                                data_dir=_DATA_DIR.value, update=_overrides(), output=_OUTPUT.value)
    elif _WORKDIR.value:
      record = evaluate_run(_WORKDIR.value, _STEP.value, update=_overrides(), output=_OUTPUT.value)
    else:
      raise app.UsageError("give --workdir (a run) or --samples (a sample file)")
  print(json.dumps(record["metrics"], indent=2, default=float))


if __name__ == "__main__":
  app.run(main)
