"""Evaluate a checkpoint (or a sample file) with metrics picked by name.

  python -m jaxgan.evaluate --workdir=workdirs/mnist_gan [--step=30000] [--metrics=parzen,fid,kid]
  python -m jaxgan.evaluate --workdir=workdirs/mnist_gan_paper_code --best --metrics=parzen
  python -m jaxgan.evaluate --workdir=workdirs/mnist_gan_ema --metrics=parzen --weights=raw
  python -m jaxgan.evaluate --samples=samples.npz --dataset=mnist --metrics=parzen --output=out.json

Checkpoint mode writes ``<workdir>/eval/<step>.json``. The metrics default to the
run's ``config.eval.metrics``; long computations show their progress. ``--best``
evaluates the checkpoint kept as best by the run's ``config.eval.select`` (each
member's own best step in a run of many; ``eval/best.json``). A run that keeps an
EMA of G is sampled from the EMA; ``--weights=raw`` samples G's own weights
instead (records get a ``_raw`` suffix).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time
from typing import Any

import jax
import numpy as np
from absl import app, flags, logging

from jaxgan import cli
from jaxgan.errors import ConfigError

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
WEIGHTS = ("ema", "raw")


def _define_flags() -> None:
  """absl flags, defined only when run as a program, so that this module and
  the other command-line modules can all be imported into one notebook."""
  global _WORKDIR, _STEP, _METRICS, _NUM, _FEATURE_NET, _INCEPTION, _STATS_CACHE, _SAMPLES, _DATASET, _DATA_DIR, _OUTPUT, _SEED_INDEX, _BEST, _WEIGHTS
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
  _SEED_INDEX = flags.DEFINE_integer(
      "seed_index", None, "In a run of many members (train.num_seeds, config.sweep): evaluate only "
      "this one (see members.json). Default: every member, with mean and std.")
  _BEST = flags.DEFINE_bool("best", False, "Evaluate the checkpoint kept as best by the run's "
                            "config.eval.select (each member's own best in a run of many).")
  _WEIGHTS = flags.DEFINE_enum("weights", "ema", WEIGHTS, "G's weights to sample: ema (the run's "
                               "EMA of G, when it keeps one) or raw (G's own weights).")

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
                 output: str | None = None, seed_index: int | None = None,
                 weights: str = "ema") -> dict:
  """Evaluates a checkpoint; returns the record written to ``<workdir>/eval/<step>.json``.

  A run of many members (``jaxgan.population``) is evaluated member by member:
  the record's metrics are the mean, ``:std`` and ``:<member>`` values, and
  ``members`` lists each member's values and metrics. ``seed_index`` picks one
  (written to ``eval/<step>_member<i>.json``). ``weights="raw"`` samples G's own
  weights where the run keeps an EMA (``eval/<step>_raw.json``).
  """
  from jaxgan import config as config_lib, population
  from jaxgan.api import open_run
  from jaxgan.metric_writers import TaskProgress
  from jaxgan.training import evaluate_members
  if weights not in WEIGHTS:
    raise ConfigError(f"weights={weights!r}: choose ema or raw.")
  exp, state = open_run(workdir, step, update=update, preflight=True)
  if weights == "raw":
    if state.g_ema_params is None:
      raise ConfigError(f"{workdir} keeps no EMA of G, so its samples already come from G's own "
                        f"weights: drop --weights=raw.")
    state = state.replace(g_ema_params=None)
  population.check_member_index(exp.population, seed_index)
  step = int(state.step)
  start = time.time()
  names = config_lib.split_names(exp.config.eval.metrics)
  if not names:
    raise ConfigError("no metrics to evaluate: pass --metrics=... (see jaxgan.evaluators).")
  indices = None if seed_index is None else [seed_index]
  figures_in = workdir if weights == "ema" else os.path.join(workdir, "raw")  # as training's raw/
  result, per_member = evaluate_members(exp, state, step, figures_in, names, progress=TaskProgress(),
                                        indices=indices)
  meta = dict(step=step, seconds=time.time() - start, num_samples=exp.config.eval.num_samples,
              files=result.files, weights=weights)
  if exp.population.batched:
    chosen = indices or list(range(exp.population.size))
    meta["members"] = [{**exp.population.describe()[i], "metrics": m} for i, m in zip(chosen, per_member)]
  record = _record(result.scalars, names, **meta)
  suffix = "" if seed_index is None or not exp.population.batched else f"_member{seed_index}"
  suffix += "_raw" if weights == "raw" else ""
  output = output or os.path.join(workdir, "eval", f"{step}{suffix}.json")
  _write(record, output)
  return record


def selected_steps(workdir: str) -> tuple[str, list[int], Any]:
  """(the selection spec, each member's best step, the run's population) of a run trained
  with ``eval.select``."""
  from jaxgan import checkpointing, population, selection
  from jaxgan.api import read_config_json
  from jaxgan.config import from_stored
  config = from_stored(read_config_json(workdir))
  select = selection.parse(config.eval.select)
  pop = population.from_config(config)
  with checkpointing.Checkpointer(workdir, read_only=True, selection=select,
                                  members=pop.size if pop.batched else 1) as ckpt:
    steps = ckpt.best_steps()
  if any(s is None for s in steps):
    raise ConfigError(f"{workdir} has no checkpoint saved with {select.metric}; it is saved at "
                      f"each evaluation from the first one on: train on, or evaluate --step=N.")
  return config.eval.select, steps, pop


def evaluate_best(workdir: str, *, update: dict | None = None, output: str | None = None,
                  seed_index: int | None = None, weights: str = "ema") -> dict:
  """Evaluates the best checkpoint by ``config.eval.select``; in a run of many members,
  each member at its own best step (``evaluate_run`` with its ``seed_index``, then mean,
  ``:std`` and ``:<member>`` as usual), written to ``eval/best.json``."""
  spec, steps, pop = selected_steps(workdir)
  output = output or os.path.join(workdir, "eval", "best_raw.json" if weights == "raw" else "best.json")
  if len(steps) == 1 or seed_index is not None:
    member = None if len(steps) == 1 else seed_index
    record = evaluate_run(workdir, steps[member or 0], update=update, seed_index=member,
                          weights=weights)
    record["selected_by"] = spec
    _write(record, output)
    return record
  records = [evaluate_run(workdir, step, update=update, seed_index=m, weights=weights)
             for m, step in enumerate(steps)]
  per_member = [r["metrics"] for r in records]
  shared = [k for k in per_member[0] if all(k in p for p in per_member)]
  record = _record(pop.summarize({k: [p[k] for p in per_member] for k in shared}),
                   records[0]["evaluators"], selected_by=spec, steps=steps,
                   seconds=sum(r["seconds"] for r in records), num_samples=records[0]["num_samples"],
                   weights=weights,
                   members=[{**r["members"][0], "step": step} for r, step in zip(records, steps)])
  _write(record, output)
  return record


def members_table(record: dict) -> str:
  """A text table of a many-member record: one row per member, then mean +- std."""
  members = record.get("members") or []
  if not members:
    return ""
  keys = [k for k in members[0]["metrics"] if all(k in m["metrics"] for m in members)]
  rows = [["member"] + keys]
  rows += [[m["label"] + (f" @ step {m['step']}" if "step" in m else "")]
           + [f"{m['metrics'][k]:.4g}" for k in keys] for m in members]
  if len(members) > 1:
    rows.append(["mean +- std"] + [f"{np.mean([m['metrics'][k] for m in members]):.4g} +- "
                                   f"{np.std([m['metrics'][k] for m in members]):.2g}" for k in keys])
  widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
  return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) for r in rows)


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
    elif _WORKDIR.value and _BEST.value:
      if _STEP.value is not None:
        raise app.UsageError("give --best or --step, not both")
      record = evaluate_best(_WORKDIR.value, update=_overrides(), output=_OUTPUT.value,
                             seed_index=_SEED_INDEX.value, weights=_WEIGHTS.value)
      table = members_table(record)
      if table:
        print(table, file=sys.stderr)
    elif _WORKDIR.value:
      record = evaluate_run(_WORKDIR.value, _STEP.value, update=_overrides(), output=_OUTPUT.value,
                            seed_index=_SEED_INDEX.value, weights=_WEIGHTS.value)
      table = members_table(record)
      if table:
        print(table, file=sys.stderr)
    else:
      raise app.UsageError("give --workdir (a run) or --samples (a sample file)")
  print(json.dumps(record["metrics"], indent=2, default=float))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
