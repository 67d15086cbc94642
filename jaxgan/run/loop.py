"""The training loop: compiled steps in, checkpoints, metrics and figures out.

``train(config, workdir)`` is the whole program behind ``jaxgan-train``
and equally a notebook call. Re-running it on the same workdir resumes from the
latest checkpoint, bit-exactly: batches and noise are pure functions of the
step, and the state pytree holds everything else.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging as absl_logging

from jaxgan import config as config_lib
from jaxgan import evaluators
from jaxgan.core import population as population_lib
from jaxgan.core.state import GANState
from jaxgan.core.train_step import NEVER
from jaxgan.data import Prefetcher
from jaxgan.errors import CheckpointMismatchError, ConfigError, NonFiniteLossError
from jaxgan.evaluators.evaluate import evaluate_members
from jaxgan.experiment import Experiment, build_experiment
from jaxgan.run import (
  checkpointing,
  disk_full,
  environment,
  orbax_noise,
  selection,
  stopping,
  workdir_lock,
)
from jaxgan.run import summary as run_summary
from jaxgan.run.writers import MetricWriter, Progress, StepRate, TaskProgress, write_json


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
  command: Sequence[str] | None = None,
) -> GANState:
  """Trains (or resumes) the experiment in ``workdir`` and returns the final state.

  Process 0 holds ``<workdir>/.lock`` throughout (``jaxgan.run.workdir_lock``): a
  second launch on the same workdir fails at once. SIGINT/SIGTERM at any point
  stop the run at the next safe point (``jaxgan.run.stopping``): before training,
  with nothing written; during it, after saving a checkpoint. ``stop``: a
  request already installed by the caller (the CLI installs one at start-up).
  A full disk stops the run with one ``DiskFullError`` line (``jaxgan.run.disk_full``).
  ``command``: the command line that launched the run, which the end-of-run summary
  repeats with a larger ``--config.train.steps`` as the way to train on.

  This is a program (``jaxgan-train``'s, and a notebook's): it filters orbax's noise
  while it runs (``jaxgan.run.orbax_noise``).
  """
  own = stop is None
  stop = stopping.StopRequest() if own else stop
  with stop if own else contextlib.nullcontext(), orbax_noise.filtered():
    workdir = os.path.abspath(workdir)
    check_workdir(workdir)
    exp = build_experiment(config, devices=devices)
    stop.check("while building the experiment; nothing was written")
    lead = jax.process_index() == 0
    with disk_full.stops_the_run(workdir):
      os.makedirs(workdir, exist_ok=True)
      with workdir_lock.hold(workdir) if lead else contextlib.nullcontext():
        return _train_locked(exp, workdir, progress=progress, lead=lead, stop=stop, command=command)


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
  exp: Experiment,
  workdir: str,
  *,
  progress: bool,
  lead: bool,
  stop: stopping.StopRequest,
  command: Sequence[str] | None,
) -> GANState:
  config, t = exp.config, exp.config.train
  started = time.time()
  config_dict = config_lib.to_dict(config)
  if lead:
    _write_launch_files(exp, workdir, config_dict)
  bar = Progress(
    t.steps, enabled=progress and lead, d_output=exp.gan.d_loss.output, members=exp.population.size
  )
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
    start, state = _resume(exp, ckpt, state, config_dict, bar)
    start = start or 0
    if start >= t.steps:
      bar.message(f"Already trained to step {start} >= train.steps={t.steps}; nothing to do.")
      return state
    _record_environment(workdir, ckpt, start, bar, lead)
    stop.check(f"before step {start}; nothing new was written")
    with MetricWriter(workdir, resume_step=start, enabled=lead) as writer:
      loop = _Loop(exp, workdir, ckpt, writer, bar, stop, lead, config_dict, select, start, state)
      state = loop.run()
      ckpt.wait()  # the summary names a complete checkpoint (a full disk stops it here)
      bar.finish()
      bar.message(
        run_summary.end_of_run(
          workdir,
          step=loop.step,
          wall_s=time.time() - started,
          last_eval=loop.last_eval,
          last_checkpoint=loop.last_saved,
          members=exp.population.size,
          best=select and (select.metric, ckpt.best_steps()),
          headlines=evaluators.headlines(config_lib.split_names(config.eval.metrics)),
          command=command,
        )
      )
  return state


def _write_launch_files(exp: Experiment, workdir: str, config_dict: dict) -> None:
  """config.json and members.json (a population), written at each launch."""
  path = os.path.join(workdir, "config.json")
  with disk_full.writing(path, "config.json"):
    write_json(path, config_dict, indent=2, sort_keys=True)
  if exp.population.batched:
    path = os.path.join(workdir, "members.json")
    with disk_full.writing(path, "members.json"):
      write_json(path, exp.population.describe(), indent=2)


def _record_environment(
  workdir: str, ckpt: checkpointing.Checkpointer, start: int, bar: Progress, lead: bool
) -> None:
  """environment.json of this launch, which trains; resuming from a checkpoint saved on
  another environment says so in one line (a warning when there is no progress line).
  Every process reads the checkpoint's record (orbax reads are collective); process 0
  writes and speaks."""
  saved = ckpt.stored_environment(start) if start else None
  if not lead:
    return
  now = environment.describe()
  path = os.path.join(workdir, environment.FILE)
  with disk_full.writing(path, environment.FILE):
    write_json(path, now, indent=2)
  note = environment.change_note(start, saved, now)
  if note is not None:
    (bar.message if bar.enabled else absl_logging.warning)(note)


def _resume(
  exp: Experiment, ckpt: checkpointing.Checkpointer, state: GANState, config_dict: dict, bar
) -> tuple[int | None, GANState]:
  """(step, state) of the newest good checkpoint, or (None, ``state``) if there is none.

  Damaged newer steps are moved aside and named (``checkpointing.recovery``); a
  checkpoint that does not fit this config, or holds other population members, stops.
  """
  target = checkpointing.abstract(state, exp.runner.state_sharding())
  found = ckpt.restore_latest_good(
    target,
    config_changes=lambda stored: config_lib.diff(stored, config_dict),
    warn=bar.message if bar.enabled else None,
  )
  if found is None:
    return None, state
  changes = config_lib.diff(found.config, config_dict)
  moved = exp.population.layout_changes(changes) if exp.population.batched else []
  if moved:
    raise CheckpointMismatchError(
      f"the checkpoint at step {found.step} in {ckpt.workdir} holds other members than this "
      f"config ({'; '.join(moved)}); a run's seeds and swept values are fixed when it starts. "
      f"Use a new --workdir, or restore the checkpoint's values."
    )
  if found.data.get("iteration") != found.step:
    raise ConfigError(
      f"checkpoint {found.step} has data position {found.data}, expected {found.step}"
    )
  bar.message(
    f"Resuming {ckpt.workdir} from step {found.step}"
    + (": config changes " + "; ".join(changes) if changes else ".")
  )
  return found.step, found.state


class _Loop:
  """The compiled calls from ``start`` to ``train.steps`` and what happens between them.

  At each call boundary (``_after_call``): a heartbeat line, or the periodic actions
  in this order: check the losses are finite, log (``train.log_every``), evaluate and
  select (``eval.every``), write the record, save (``train.checkpoint_every``, and
  every evaluation of a selection run). ``_save`` is the one save path; an interrupt
  saves through it too (``_save_on_interrupt``).
  """

  def __init__(
    self,
    exp: Experiment,
    workdir: str,
    ckpt: checkpointing.Checkpointer,
    writer: MetricWriter,
    bar: Progress,
    stop: stopping.StopRequest,
    lead: bool,
    config_dict: dict,
    select: selection.Selection | None,
    start: int,
    state: GANState,
  ):
    self.exp, self.runner, self.workdir = exp, exp.runner, workdir
    self.ckpt, self.writer, self.bar, self.stop, self.lead = ckpt, writer, bar, stop, lead
    self.tasks = TaskProgress(enabled=bar.enabled)
    self.config_dict, self.select = config_dict, select
    self.members = exp.population.size if exp.population.batched else 1
    self.bound = exp.config.train.get("divergence_bound", float("inf"))
    self.start = self.step = start
    self.last_saved: int | None = start if start > 0 else None
    self.last_eval: dict[str, Any] = {}
    self.pending: list[tuple[int, dict]] = []  # (steps, metrics) since the last log
    self.rate = StepRate(start)  # steps/s of the calls, evaluation and saving left out
    self.dstate = self.runner.place_state(state)

  def run(self) -> GANState:
    config, pipeline, t = self.exp.config, self.exp.pipeline, self.exp.config.train
    device_data = self.runner.place_device_data(pipeline.device_data())
    chunks = plan_chunks(
      self.start, t.steps, t.steps_per_call, [t.log_every, t.checkpoint_every, config.eval.every]
    )
    prefetch = Prefetcher(lambda s, n: self.runner.place_inputs(pipeline.host_inputs(s, n)), chunks)
    began = time.time()
    try:
      for call, ((first, n), inputs) in enumerate(zip(chunks, prefetch)):
        if self.stop.agreed(call, self.ckpt.reached_preemption):  # all processes, same call
          raise stopping.StopRequested(self.stop.describe(self.step))
        self._call(first, n, inputs, device_data, began)
        self._after_call()
    except KeyboardInterrupt:
      self._save_on_interrupt()
      raise
    finally:
      prefetch.close()
      pipeline.close()
    return self.runner.unreplicate(self.dstate)

  def _call(self, first: int, n: int, inputs: Any, device_data: Any, began: float) -> None:
    self.dstate, metrics = self.runner(self.dstate, inputs, device_data)
    self.step = first + n
    self.pending.append((n, self.runner.unreplicate(metrics)))
    if len(self.pending) > 2:  # wait for the call before last, not this one: no bubble
      jax.block_until_ready(self.pending[-3][1])
    if first == self.start:  # the first call compiles; keep it out of steps/s
      jax.block_until_ready(self.dstate)
      self.bar.message(
        f"Compiled and ran the first {n} step(s) in {time.time() - began:.1f}s "
        f"({self.runner.mode} on {self.runner.num_devices} device(s))."
      )
      self.rate.reset(self.step)

  def _after_call(self) -> None:
    config, t, step = self.exp.config, self.exp.config.train, self.step
    log = _is_boundary(step, t.log_every, t.steps)
    evaluate = _is_boundary(step, config.eval.every, t.steps) and bool(config.eval.metrics)
    # a selection metric needs a checkpoint at every evaluation to choose from
    save = _is_boundary(step, t.checkpoint_every, t.steps) or (evaluate and self.select is not None)
    if not log:
      self.bar.heartbeat(step, self.rate.rate(step))
    if not (log or evaluate or save):
      return
    self.pending = jax.device_get(self.pending)
    self._check_finite(self.pending)
    record = self._log() if log else {}
    with self.rate.paused():
      chosen, bad_select = self._evaluate(record) if evaluate else (None, None)
      if record:
        self.writer.write_scalars(step, record)
      if save:
        self._save(metrics=chosen)
      if bad_select:  # after the save: a misnamed metric loses no training
        raise ConfigError(bad_select)

  def _check_finite(self, pending: list[tuple[int, dict]]) -> None:
    _check_finite(pending, self.last_saved, self.workdir, self.exp.population, self.bound)

  def _log(self) -> dict[str, Any]:
    """The record of the steps since the last log: mean losses (per member) and steps/s."""
    rate = self.rate.rate(self.step)
    record = {**self.exp.population.summarize(_aggregate(self.pending)), "steps_per_sec": rate}
    self.bar.update(self.step, record, rate)
    self.pending = []
    self.rate.reset(self.step)
    return record

  def _evaluate(self, record: dict[str, Any]) -> tuple[dict[str, float] | None, str | None]:
    """Evaluates on process 0 (scalars into ``record``, images to TensorBoard); returns this
    step's selection scalars, the same on every process, or the reason there are none."""
    if self.lead:
      host_state = jax.device_get(self.runner.unreplicate(self.dstate))
      result, _ = evaluate_members(
        self.exp, host_state, self.step, self.workdir, progress=self.tasks
      )
      record.update(result.scalars)
      self.last_eval = result.scalars
      self.writer.write_images(self.step, result.images)
    if self.select is None:
      return None, None
    return selection.shared_metrics(
      self.select, self.last_eval if self.lead else None, self.members
    )

  def _save(self, metrics: dict[str, float] | None = None) -> None:
    """The one save path: state, data position and config at this step (``metrics``: the
    selection scalars saved with it); TensorBoard is flushed with it."""
    self.ckpt.save(
      self.step,
      self.runner.unreplicate(self.dstate),
      {"iteration": self.step},
      self.config_dict,
      metrics=metrics,
    )
    self.last_saved = self.step
    self.writer.flush()

  def _save_on_interrupt(self) -> None:
    """Keeps the work done since the last checkpoint, if it is sound, and says where it is."""
    restore_signals = stopping.ignore_signals()  # a second Ctrl-C must not break the save
    saved = self.last_saved
    try:
      self._check_finite(jax.device_get(self.pending))
      if self.step not in (self.last_saved, self.start):
        self._save()
        self.ckpt.wait()  # the message below names a complete checkpoint
        saved = self.last_saved
      self.bar.message(
        f"Interrupted: checkpoint at step {saved}; re-run the same command to resume."
        if saved is not None
        else "Interrupted before the first step; nothing was saved."
      )
      if not self.lead:  # the other processes say where they stopped too
        print(
          f"jaxgan: process {jax.process_index()} stopped at step {self.step}; checkpoint at "
          f"step {saved}.",
          file=sys.stderr,
          flush=True,
        )
    except Exception as e:  # e.g. the state was donated to the interrupted call
      self.bar.message(
        f"Interrupted; step {self.step} could not be saved ({type(e).__name__}); "
        f"the last checkpoint is step {saved}."
      )
    finally:
      self.ckpt.wait()
      restore_signals()
