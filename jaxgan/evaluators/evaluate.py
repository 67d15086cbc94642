"""Evaluation of a state, a checkpoint or a file of samples, with evaluators by name.

``evaluate_state`` runs ``config.eval.metrics`` on one state (what training calls
at each evaluation); ``evaluate_members`` does it member by member for a
population; ``evaluate_run`` and ``evaluate_best`` reopen a run's checkpoint and
write ``<workdir>/eval/<step>.json``; ``evaluate_samples`` scores a ``.npz`` with the
evaluators that need no GAN. Each written record holds ``environment`` (what it
ran on: ``jaxgan.run.environment``) and ``bn_stats``, the batch-norm statistics G sampled
with (``jaxgan.core.sampling.BNStats``; null for a G without batch norm); the returned
record also holds ``written_to``.
"""

from __future__ import annotations

import datetime
import os
import time
from typing import Any

import jax
import numpy as np

from jaxgan import config as config_lib
from jaxgan import evaluators
from jaxgan.core import population
from jaxgan.core.sampling import Sampler, bn_stats_of
from jaxgan.core.state import GANState
from jaxgan.data import build_dataset
from jaxgan.errors import ConfigError
from jaxgan.experiment import Experiment, truncation
from jaxgan.run import checkpointing, environment, selection
from jaxgan.run.reopen import open_run, read_config_json, require_run_dir
from jaxgan.run.writers import TaskProgress, write_json

WEIGHTS = ("ema", "raw")


def evaluate_state(
  exp: Experiment,
  state: GANState,
  step: int,
  workdir: str | None,
  names: list[str] | None = None,
  progress=None,
  *,
  member: int | None = None,
  run_dir: str | None = None,
) -> evaluators.EvalResult:
  """Runs the named evaluators (default: ``config.eval.metrics``) on one state
  (``member``/``run_dir``: which member of a population's run it is).

  With an EMA of G, ``config.eval.raw_metrics`` also run on G's own weights
  (default names only): their scalars and figures are prefixed ``raw/`` and
  their files go to ``<workdir>/raw``, so one run shows what the average adds.
  """
  raw_names = (
    config_lib.split_names(exp.config.eval.get("raw_metrics", "")) if names is None else []
  )
  names = config_lib.split_names(exp.config.eval.metrics) if names is None else names
  if "sampler" not in exp.eval_shared:  # compiles G once per run, not once per evaluation
    psi, z_threshold = truncation(exp.config)
    exp.eval_shared["sampler"] = Sampler(
      exp.gan, truncation_psi=psi, truncation_z=z_threshold, bn_stats=bn_stats_of(exp.config)
    )

  def run(names, state, workdir):
    ctx = evaluators.EvalContext(
      config=exp.config,
      gan=exp.gan,
      state=state,
      dataset=exp.dataset,
      step=step,
      workdir=workdir,
      rng=jax.random.PRNGKey(exp.config.eval.seed),
      sampler=exp.eval_shared["sampler"],
      shared=exp.eval_shared,
      progress=progress,
      member=member,
      run_dir=run_dir,
    )
    return evaluators.run_evaluators(names, ctx)

  result = run(names, state, workdir)
  if raw_names and state.g_ema is not None:
    raw = run(raw_names, state.replace(g_ema=None), workdir and os.path.join(workdir, "raw"))
    result = result.merge(
      evaluators.EvalResult(
        {f"raw/{k}": v for k, v in raw.scalars.items()},
        {f"raw/{k}": v for k, v in raw.images.items()},
        raw.files,
      )
    )
  return result


def evaluate_members(
  exp: Experiment,
  state: GANState,
  step: int,
  workdir: str | None,
  names: list[str] | None = None,
  progress=None,
  indices: list[int] | None = None,
) -> tuple[evaluators.EvalResult, list[dict]]:
  """Evaluates each member of a population on its own: (summary, per-member scalars).

  The summary's scalars are ``population.summarize``'s mean, ``:std`` and
  ``:<member>`` entries; member i's figures go to ``<workdir>/members/<i>/figures``
  and to TensorBoard as ``m<i>/<name>``. A single run is one member.
  """
  pop = exp.population
  if not pop.batched:
    result = evaluate_state(exp, state, step, workdir, names, progress)
    return result, [result.scalars]
  indices = list(range(pop.size)) if indices is None else indices
  results = []
  for i in indices:
    where = os.path.join(workdir, "members", str(i)) if workdir else None
    if progress:
      progress(f"member {i} ({pop.members[i].label})", 0, 1)
    results.append(
      evaluate_state(
        exp, exp.member_state(state, i), step, where, names, progress, member=i, run_dir=workdir
      )
    )
  shared = [k for k in results[0].scalars if all(k in r.scalars for r in results)]
  if len(indices) == 1:
    scalars = dict(results[0].scalars)
  else:
    scalars = pop.summarize({k: [r.scalars[k] for r in results] for k in shared}, indices)
  images = {f"m{i}/{k}": v for i, r in zip(indices, results) for k, v in r.images.items()}
  files = [f for r in results for f in r.files]
  return evaluators.EvalResult(scalars, images, files), [r.scalars for r in results]


def evaluate_run(
  workdir: str,
  step: int | None = None,
  *,
  update: dict | None = None,
  output: str | None = None,
  seed_index: int | None = None,
  weights: str = "ema",
) -> dict:
  """Evaluates a checkpoint; returns the record written to ``<workdir>/eval/<step>.json``.

  A run of many members (``jaxgan.core.population``) is evaluated member by member:
  the record's metrics are the mean, ``:std`` and ``:<member>`` values, and
  ``members`` lists each member's values and metrics. ``seed_index`` picks one
  (written to ``eval/<step>_member<i>.json``). ``weights="raw"`` samples G's own
  weights where the run keeps an EMA (``eval/<step>_raw.json``). Batch-norm statistics
  other than running ones (``config.eval.bn_stats``) add their name
  (``eval/<step>_standing.json``).
  """
  if weights not in WEIGHTS:
    raise ConfigError(f"weights={weights!r}: choose ema or raw.")
  exp, state = open_run(workdir, step, update=update, preflight=True)
  if weights == "raw":
    if state.g_ema is None:
      raise ConfigError(
        f"{workdir} keeps no EMA of G, so its samples already come from G's own "
        f"weights: drop --weights=raw."
      )
    state = state.replace(g_ema=None)
  population.check_member_index(exp.population, seed_index)
  step = int(state.step)
  start = time.time()
  names = config_lib.split_names(exp.config.eval.metrics)
  if not names:
    raise ConfigError("no metrics to evaluate: pass --metrics=... (see jaxgan.evaluators).")
  indices = None if seed_index is None else [seed_index]
  figures_in = workdir if weights == "ema" else os.path.join(workdir, "raw")  # as training's raw/
  result, per_member = evaluate_members(
    exp, state, step, figures_in, names, progress=TaskProgress(), indices=indices
  )
  meta = dict(
    step=step,
    seconds=time.time() - start,
    num_samples=exp.config.eval.num_samples,
    files=result.files,
    weights=weights,
    bn_stats=exp.eval_shared["sampler"].bn_record(),
  )
  if exp.eval_shared.get("reference_protocols"):  # what fid, kid, precision were measured against
    meta["references"] = dict(exp.eval_shared["reference_protocols"])
  if exp.population.batched:
    chosen = indices or list(range(exp.population.size))
    meta["members"] = [
      {**exp.population.describe()[i], "metrics": m} for i, m in zip(chosen, per_member)
    ]
  record = _record(result.scalars, names, **meta)
  suffix = "" if seed_index is None or not exp.population.batched else f"_member{seed_index}"
  suffix += "_raw" if weights == "raw" else ""
  suffix += _bn_suffix(exp.config)
  output = output or os.path.join(workdir, "eval", f"{step}{suffix}.json")
  return _write(record, output)


def selected_steps(workdir: str) -> tuple[str, list[int], Any]:
  """(the selection spec, each member's best step, the run's population) of a run trained
  with ``eval.select``."""
  require_run_dir(workdir)
  config = config_lib.from_stored(read_config_json(workdir))
  select = selection.parse(config.eval.select)
  pop = population.from_config(config)
  with checkpointing.Checkpointer(
    workdir, read_only=True, selection=select, members=pop.size if pop.batched else 1
  ) as ckpt:
    steps = ckpt.best_steps()
  if any(s is None for s in steps):
    raise ConfigError(
      f"{workdir} has no checkpoint saved with {select.metric}; it is saved at "
      f"each evaluation from the first one on: train on, or evaluate --step=N."
    )
  return config.eval.select, steps, pop


def evaluate_best(
  workdir: str,
  *,
  update: dict | None = None,
  output: str | None = None,
  seed_index: int | None = None,
  weights: str = "ema",
) -> dict:
  """Evaluates the best checkpoint by ``config.eval.select``; in a run of many members,
  each member at its own best step (``evaluate_run`` with its ``seed_index``, then mean,
  ``:std`` and ``:<member>`` as usual), written to ``eval/best.json``."""
  spec, steps, pop = selected_steps(workdir)
  bn = _bn_suffix(config_lib.from_stored(read_config_json(workdir)), update)
  output = output or os.path.join(
    workdir, "eval", f"best{'_raw' if weights == 'raw' else ''}{bn}.json"
  )
  if len(steps) == 1 or seed_index is not None:
    member = None if len(steps) == 1 else seed_index
    record = evaluate_run(
      workdir, steps[member or 0], update=update, seed_index=member, weights=weights
    )
    record = {k: v for k, v in record.items() if k != "written_to"}
    record["selected_by"] = spec
    return _write(record, output)
  records = [
    evaluate_run(workdir, step, update=update, seed_index=m, weights=weights)
    for m, step in enumerate(steps)
  ]
  per_member = [r["metrics"] for r in records]
  shared = [k for k in per_member[0] if all(k in p for p in per_member)]
  record = _record(
    pop.summarize({k: [p[k] for p in per_member] for k in shared}),
    records[0]["evaluators"],
    selected_by=spec,
    steps=steps,
    seconds=sum(r["seconds"] for r in records),
    num_samples=records[0]["num_samples"],
    weights=weights,
    bn_stats=records[0]["bn_stats"],
    members=[{**r["members"][0], "step": step} for r, step in zip(records, steps)],
  )
  return _write(record, output)


def members_table(record: dict) -> str:
  """A text table of a many-member record: one row per member, then mean +- std."""
  members = record.get("members") or []
  if not members:
    return ""
  keys = [k for k in members[0]["metrics"] if all(k in m["metrics"] for m in members)]
  rows = [["member"] + keys]
  rows += [
    [m["label"] + (f" @ step {m['step']}" if "step" in m else "")]
    + [f"{m['metrics'][k]:.4g}" for k in keys]
    for m in members
  ]
  if len(members) > 1:
    rows.append(
      ["mean +- std"]
      + [
        f"{np.mean([m['metrics'][k] for m in members]):.4g} +- "
        f"{np.std([m['metrics'][k] for m in members]):.2g}"
        for k in keys
      ]
    )
  widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
  return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) for r in rows)


def evaluate_samples(
  path: str,
  dataset: str,
  names: list[str],
  *,
  data_dir: str = "",
  update: dict | None = None,
  output: str | None = None,
) -> dict:
  """Evaluates samples from a file against ``dataset``'s real data with evaluators that
  need no GAN (``evaluators.without_gan``); with ``output``, writes the record there
  and figures to ``figures/`` beside it."""
  for name in names:
    evaluators.EVALUATORS.get(name)  # an unknown name: the valid ones, and the closest
  bad = [n for n in names if evaluators.EVALUATORS.get(n).needs_gan]
  if bad:
    raise ConfigError(
      f"{', '.join(bad)} {'needs' if len(bad) == 1 else 'need'} a run's GAN (--workdir); "
      f"--samples works with {', '.join(evaluators.without_gan())}."
    )
  config = config_lib.base_config(model="mlp", data=dataset)  # also rejects unknown names
  if "data_dir" in config.data:
    config.data.data_dir = data_dir
  config.update_from_flattened_dict(update or {})
  ds = build_dataset(config.data)
  evaluators.preflight(names, config, ds.spec)
  with np.load(path) as f:
    samples = np.asarray(f["samples"], np.float32)
    labels = f.get("labels", None)
  if samples.shape[1:] != tuple(ds.spec.shape):
    raise ConfigError(
      f"{path}: samples have shape {samples.shape[1:]}, {dataset} has {ds.spec.shape}."
    )
  ctx = evaluators.EvalContext(
    config=config,
    gan=None,
    state=None,
    dataset=ds,
    step=0,
    workdir=os.path.dirname(os.path.abspath(output)) if output else None,
    rng=jax.random.PRNGKey(0),
    progress=TaskProgress(),
  )
  ctx.cache["generated"] = (samples, labels)
  start = time.time()
  result = evaluators.run_evaluators(names, ctx)
  record = _record(
    result.scalars,
    names,
    samples_file=os.path.abspath(path),
    dataset=dataset,
    seconds=time.time() - start,
    num_samples=len(samples),
    files=result.files,
  )
  return _write(record, output) if output else record


def _bn_suffix(config, update: dict | None = None) -> str:
  """``_<mode>`` for batch-norm statistics other than running ones, so that records of
  different protocols never overwrite each other."""
  mode = (update or {}).get("eval.bn_stats", config.eval.get("bn_stats", "running"))
  return "" if mode == "running" else f"_{mode}"


def _record(scalars: dict, names: list[str], **meta) -> dict:
  return {
    "metrics": scalars,
    "evaluators": names,
    **meta,
    "date": datetime.date.today().isoformat(),
    "environment": environment.describe(),
  }


def _write(record: dict, path: str) -> dict:
  """Writes ``record`` to ``path``; returns it with ``written_to`` (the absolute path)."""
  path = os.path.abspath(path)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  write_json(path, record, indent=2, default=float)
  return {**record, "written_to": path}
