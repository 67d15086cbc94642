"""The training loop: compiled steps in, checkpoints, metrics and figures out.

``train(config, workdir)`` is the whole program behind ``jaxgan-train``
and equally a notebook call. Re-running it on the same workdir resumes from the
latest checkpoint, bit-exactly: batches and noise are pure functions of the
step, and the state pytree holds everything else.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxgan import config as config_lib
from jaxgan.core import population as population_lib
from jaxgan.core.state import GANState
from jaxgan.core.train_step import NEVER
from jaxgan.data import Prefetcher
from jaxgan.errors import CheckpointMismatchError, ConfigError, NonFiniteLossError
from jaxgan.evaluators.evaluate import evaluate_members
from jaxgan.experiment import Experiment, build_experiment
from jaxgan.run import checkpointing, selection, stopping, workdir_lock
from jaxgan.run import summary as run_summary
from jaxgan.run.writers import MetricWriter, Progress, TaskProgress


def plan_chunks(
  start: int, end: int, steps_per_call: int, periods: list[int]
) -> list[tuple[int, int]]:
  """(first_step, num_steps) per compiled call; calls end on every period boundary."""
  chunks, s = [], start
  while s < end:
    boundary = min([end] + [(s // p + 1) * p for p in periods if p > 0])
    n = min(steps_per_call, boundary - s)
    chunks.append((s, n))
    s += n
  return chunks


def _is_boundary(step: int, every: int, end: int) -> bool:
  return step == end or (every > 0 and step % every == 0)


_NOT_LOGGED = ("first_bad_step", "bad_values")


def _aggregate(pending: list[tuple[int, dict]]) -> dict[str, np.ndarray]:
  """Step-weighted mean of per-call metrics (already on the host); per member in a population."""
  total = sum(n for n, _ in pending)
  keys = [k for k in pending[-1][1] if k not in _NOT_LOGGED]
  return {k: sum(n * np.asarray(m[k], np.float64) for n, m in pending) / total for k in keys}


def _check_finite(
  pending: list[tuple[int, dict]],
  last_saved: int | None,
  workdir: str,
  population: population_lib.Population | None = None,
  bound: float = float("inf"),
) -> None:
  """Raises NonFiniteLossError at the first step whose watched values are NaN/inf or > ``bound``."""
  firsts = [np.asarray(m["first_bad_step"]) for _, m in pending]
  bad = int(np.min(firsts)) if firsts else int(NEVER)
  if bad == int(NEVER):
    return
  call = int(np.argmin([np.min(f) for f in firsts]))
  values = {k: np.asarray(v) for k, v in pending[call][1]["bad_values"].items()}
  who = ""
  if population is not None and population.batched:
    member = int(np.argmin(np.asarray(firsts[call])))
    values = {k: v[member] for k, v in values.items()}
    who = f" in member {member} ({population.members[member].label})"
  worst = {k: float(v) for k, v in values.items() if not np.isfinite(v) or abs(v) > bound} or values
  shown = ", ".join(f"{k}={v:.4g}" for k, v in worst.items())
  what = (
    f"non-finite value (NaN or inf): {shown}"
    if not np.all(np.isfinite(list(worst.values())))
    else f"diverged past train.divergence_bound={bound:g}: {shown}"
  )
  where = (
    f"the last good checkpoint (step {last_saved}) in {workdir}/checkpoints is intact"
    if last_saved is not None
    else "no checkpoint had been written yet"
  )
  raise NonFiniteLossError(
    f"{what} at step {bad}{who}; training stopped and {where}. "
    f"Lower the learning rates, add gradient clipping (config.optim.*.clip_norm) "
    f"or check the data scaling, then re-run to resume from that checkpoint."
  )


def train(
  config: ml_collections.ConfigDict,
  workdir: str,
  *,
  progress: bool = True,
  devices: list | None = None,
  stop: stopping.StopRequest | None = None,
) -> GANState:
  """Trains (or resumes) the experiment in ``workdir`` and returns the final state.

  Process 0 holds ``<workdir>/.lock`` throughout (``jaxgan.run.workdir_lock``): a
  second launch on the same workdir fails at once. SIGINT/SIGTERM at any point
  stop the run at the next safe point (``jaxgan.run.stopping``): before training,
  with nothing written; during it, after saving a checkpoint. ``stop``: a
  request already installed by the caller (the CLI installs one at start-up).
  """
  own = stop is None
  stop = stopping.StopRequest() if own else stop
  with stop if own else contextlib.nullcontext():
    workdir = os.path.abspath(workdir)
    check_workdir(workdir)
    exp = build_experiment(config, devices=devices)
    stop.check("while building the experiment; nothing was written")
    lead = jax.process_index() == 0
    os.makedirs(workdir, exist_ok=True)
    with workdir_lock.hold(workdir) if lead else contextlib.nullcontext():
      return _train_locked(exp, workdir, progress=progress, lead=lead, stop=stop)


def check_workdir(workdir: str) -> None:
  """A workdir must be a directory, or creatable as one: fail before building anything."""
  path = workdir
  while path and not os.path.exists(path):
    path = os.path.dirname(path)
  if path == workdir and not os.path.isdir(workdir):
    raise ConfigError(f"--workdir {workdir} is a file, not a directory; pass a directory path.")
  if path != workdir and not os.path.isdir(path):
    raise ConfigError(
      f"--workdir {workdir} cannot be created: {path} is a file; pass another path."
    )
  if not os.access(path, os.W_OK):
    raise ConfigError(f"--workdir {workdir} is not writable here ({path}); pass a writable path.")


def _train_locked(
  exp: Experiment, workdir: str, *, progress: bool, lead: bool, stop: stopping.StopRequest
) -> GANState:
  config, runner, pipeline = exp.config, exp.runner, exp.pipeline
  t = config.train
  bound = t.get("divergence_bound", float("inf"))
  started = time.time()
  config_dict = config_lib.to_dict(config)
  if lead:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      json.dump(config_dict, f, indent=2, sort_keys=True)
    if exp.population.batched:
      with open(os.path.join(workdir, "members.json"), "w") as f:
        json.dump(exp.population.describe(), f, indent=2)
  bar = Progress(
    t.steps, enabled=progress and lead, d_output=exp.gan.d_loss.output, members=exp.population.size
  )
  task_progress = TaskProgress(enabled=progress and lead)

  state = exp.init_state()
  batched = exp.population.batched
  bar.message(
    run_summary.param_table("G", state.g.params, member_axis=batched)
    + "\n"
    + run_summary.param_table("D", state.d.params, member_axis=batched)
  )
  select = selection.parse(config.eval.select)
  members = exp.population.size if batched else 1
  with checkpointing.Checkpointer(
    workdir, max_to_keep=t.max_to_keep, selection=select, members=members
  ) as ckpt:
    target = checkpointing.abstract(state, runner.state_sharding())
    found = ckpt.restore_latest_good(target, config_dict, warn=bar.message if bar.enabled else None)
    start = last_saved = found.step if found else None  # damaged newer steps moved aside, warned
    if start is not None:
      changes = found.config_changes
      moved = exp.population.layout_changes(changes) if exp.population.batched else []
      if moved:
        raise CheckpointMismatchError(
          f"the checkpoint at step {start} in {workdir} holds other members than this config "
          f"({'; '.join(moved)}); a run's seeds and swept values are fixed when it starts. "
          f"Use a new --workdir, or restore the checkpoint's values."
        )
      state, position = found.state, found.data
      if position.get("iteration") != start:
        raise ConfigError(f"checkpoint {start} has data position {position}, expected {start}")
      bar.message(
        f"Resuming {workdir} from step {start}"
        + (": config changes " + "; ".join(changes) if changes else ".")
      )
    start = start or 0
    if start >= t.steps:
      bar.message(f"Already trained to step {start} >= train.steps={t.steps}; nothing to do.")
      return state

    stop.check(f"before step {start}; nothing new was written")
    dstate = runner.place_state(state)
    device_data = runner.place_device_data(pipeline.device_data())
    chunks = plan_chunks(
      start, t.steps, t.steps_per_call, [t.log_every, t.checkpoint_every, config.eval.every]
    )
    prefetch = Prefetcher(lambda s, n: runner.place_inputs(pipeline.host_inputs(s, n)), chunks)
    last_eval: dict[str, Any] = {}
    pending: list[
      tuple[int, dict]
    ] = []  # (steps, metrics) since the last log; also bounds dispatch
    step = start
    try:
      with MetricWriter(workdir, resume_step=start, enabled=lead) as writer:
        tick, tick_step, paused = time.time(), start, 0.0  # paused: eval/save time
        for call, ((first, n), inputs) in enumerate(zip(chunks, prefetch)):
          if stop.agreed(call, ckpt.reached_preemption):  # all processes, same call
            raise stopping.StopRequested(stop.describe(step))
          dstate, metrics = runner(dstate, inputs, device_data)
          step = first + n
          pending.append((n, runner.unreplicate(metrics)))
          if len(pending) > 2:  # wait for the call before last, not this one: no bubble
            jax.block_until_ready(pending[-3][1])
          if first == start:  # the first call compiles; keep it out of steps/s
            jax.block_until_ready(dstate)
            bar.message(
              f"Compiled and ran the first {n} step(s) in {time.time() - tick:.1f}s "
              f"({runner.mode} on {runner.num_devices} device(s))."
            )
            tick, tick_step = time.time(), step
          log = _is_boundary(step, t.log_every, t.steps)
          ev = _is_boundary(step, config.eval.every, t.steps) and bool(config.eval.metrics)
          # a selection metric needs a checkpoint at every evaluation to choose from
          save = _is_boundary(step, t.checkpoint_every, t.steps) or (ev and select is not None)
          if not (log or ev or save):
            continue
          pending = jax.device_get(pending)
          _check_finite(pending, last_saved, workdir, exp.population, bound)
          record: dict[str, Any] = {}
          if log:
            now = time.time()
            rate = (step - tick_step) / max(now - tick - paused, 1e-9) if step > tick_step else 0.0
            record.update(exp.population.summarize(_aggregate(pending)), steps_per_sec=rate)
            bar.update(step, record, rate)
            pending, tick, tick_step, paused = [], now, step, 0.0
          pause_start = time.time()
          chosen = bad_select = None  # this step's selection scalars, saved with its checkpoint
          if ev and lead:
            host_state = jax.device_get(runner.unreplicate(dstate))
            result, _ = evaluate_members(exp, host_state, step, workdir, progress=task_progress)
            record.update(result.scalars)
            last_eval = result.scalars
            writer.write_images(step, result.images)
          if ev and select is not None:  # every process saves with the same metrics
            chosen, bad_select = selection.shared_metrics(
              select, last_eval if lead else None, members
            )
          if record:
            writer.write_scalars(step, record)
          if save:
            ckpt.save(
              step, runner.unreplicate(dstate), {"iteration": step}, config_dict, metrics=chosen
            )
            last_saved = step
            writer.flush()
          if bad_select:  # after the save: a misnamed metric loses no training
            raise ConfigError(bad_select)
          paused += time.time() - pause_start
      bar.finish()
      bar.message(
        run_summary.end_of_run(
          workdir,
          step=step,
          wall_s=time.time() - started,
          last_eval=last_eval,
          last_checkpoint=last_saved,
          members=exp.population.size,
          best=select and (select.metric, ckpt.best_steps()),
        )
      )
    except KeyboardInterrupt:
      restore_signals = stopping.ignore_signals()  # a second Ctrl-C must not break the save
      try:  # keep the work done since the last checkpoint, if it is sound
        _check_finite(jax.device_get(pending), last_saved, workdir, exp.population, bound)
        if step not in (last_saved, start):
          ckpt.save(step, runner.unreplicate(dstate), {"iteration": step}, config_dict)
          last_saved = step
        bar.message(
          f"Interrupted: checkpoint at step {last_saved}; re-run the same command to resume."
          if last_saved is not None
          else "Interrupted before the first step; nothing was saved."
        )
        if not lead:  # the other processes say where they stopped too
          print(
            f"jaxgan: process {jax.process_index()} stopped at step {step}; checkpoint at step "
            f"{last_saved}.",
            file=sys.stderr,
            flush=True,
          )
      except Exception as e:  # e.g. the state was donated to the interrupted call
        bar.message(
          f"Interrupted; step {step} could not be saved ({type(e).__name__}); "
          f"the last checkpoint is step {last_saved}."
        )
      finally:
        ckpt.wait()
        restore_signals()
      raise
    finally:
      prefetch.close()
      pipeline.close()
  return runner.unreplicate(dstate)
