import io
import json

import jaxgan
from conftest import tiny_gaussian_config
from jaxgan.run import writers as metric_writers
from jaxgan.run.writers import MetricWriter, Progress, TaskProgress, read_jsonl


def test_jsonl_drops_records_past_the_resumed_step(tmp_path):
  with MetricWriter(str(tmp_path), tensorboard=False) as w:
    for step in (10, 20, 30):
      w.write_scalars(step, {"d_loss": 1.0 * step, "nan": float("nan")})
  assert [r["step"] for r in read_jsonl(str(tmp_path / "metrics.jsonl"))] == [10, 20, 30]
  # A run that died after logging step 30 but checkpointed at 20 resumes from 20.
  with MetricWriter(str(tmp_path), resume_step=20, tensorboard=False) as w:
    w.write_scalars(30, {"d_loss": 3.5})
  records = read_jsonl(str(tmp_path / "metrics.jsonl"))
  assert [r["step"] for r in records] == [10, 20, 30]
  assert records[-1]["d_loss"] == 3.5
  assert records[0]["nan"] == "nan"  # valid JSON, not a bare NaN
  json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])


def test_tensorboard_event_file_has_the_scalars(tmp_path):
  from tensorboardX.event_file_writer import EventFileWriter  # noqa: F401 (dependency check)

  from tensorboard_reader import read_scalars

  with MetricWriter(str(tmp_path)) as w:
    w.write_scalars(5, {"d_loss": 1.25, "g_loss": 0.5})
  scalars = read_scalars(str(tmp_path / "tensorboard"))
  assert scalars["d_loss"] == [(5, 1.25)]
  assert scalars["g_loss"] == [(5, 0.5)]


def test_progress_line_has_losses_rate_and_eta():
  out = io.StringIO()
  p = Progress(1000, stream=out)
  p.update(250, {"d_loss": 1.3863, "g_loss": 0.6931, "d_real": 0.5, "d_fake": 0.49}, 125.0)
  line = out.getvalue()
  assert "step  250/1000 ( 25%)" in line
  assert "d_loss 1.3863" in line and "g_loss 0.6931" in line and "D(G(z)) 0.4900" in line
  assert "125.0 steps/s" in line and "ETA 0:00:06" in line


def test_progress_line_names_a_critic_as_such():
  out = io.StringIO()
  Progress(10, stream=out, d_output="critic").update(5, {"d_real": 3.25, "d_fake": -1.5}, 0.0)
  assert "critic(x) 3.2500 | critic(G(z)) -1.5000" in out.getvalue()
  assert "D(x)" not in out.getvalue()


def test_task_progress_shows_slow_rates_and_waits_two_seconds_in_logs(monkeypatch):
  clock = iter([100.0, 103.0, 110.0, 110.5, 111.0])
  monkeypatch.setattr(metric_writers.time, "time", lambda: next(clock))
  log = io.StringIO()  # not a tty: a log file
  progress = TaskProgress(stream=log)
  progress("k-means", 0, 4)  # starts the clock at 100 s; nothing shown yet
  progress("k-means", 1, 4)  # 3 s in: 1/3 per second
  progress("k-means", 4, 4)  # finished at 110 s
  progress("stats", 1, 2)  # a new task, 0 s in
  progress("stats", 2, 2)  # finished 0.5 s after it began: short tasks stay quiet in logs
  assert log.getvalue().splitlines() == [
    "k-means: 1/4 (0.33/s, ETA 9s)",
    "k-means: 4/4 (0.4/s, ETA 0s)",
  ]


class Clock:
  """A clock the test moves: ``clock.t = ...``."""

  def __init__(self, t=0.0):
    self.t = t

  def __call__(self):
    return self.t


def test_each_task_counts_rate_and_eta_from_its_own_start():
  # The second evaluation's 'generating samples' took one second, not the time since the first.
  clock, log = Clock(100.0), io.StringIO()
  progress = TaskProgress(stream=log, clock=clock)
  for t, done in [(100.0, 0), (104.0, 1000), (110.0, 2500)]:
    clock.t = t
    progress("generating samples", done, 2500)
  for t, done in [(500.0, 0), (502.5, 1000), (503.75, 2500)]:  # the next evaluation
    clock.t = t
    progress("generating samples", done, 2500)
  assert log.getvalue().splitlines() == [
    "generating samples: 1000/2500 (250/s, ETA 6s)",
    "generating samples: 2500/2500 (250/s, ETA 0s)",
    "generating samples: 1000/2500 (400/s, ETA 4s)",
    "generating samples: 2500/2500 (667/s, ETA 0s)",
  ]


def test_a_task_that_starts_over_without_finishing_is_a_new_task():
  clock, log = Clock(0.0), io.StringIO()
  progress = TaskProgress(stream=log, clock=clock)
  progress("k-means", 0, 10)
  clock.t = 3.0
  progress("k-means", 5, 10)  # abandoned half way
  clock.t = 100.0
  progress("k-means", 0, 10)  # the next one
  clock.t = 104.0
  progress("k-means", 2, 10)
  assert log.getvalue().splitlines() == [
    "k-means: 5/10 (1.7/s, ETA 3s)",
    "k-means: 2/10 (0.5/s, ETA 16s)",
  ]


def test_a_heartbeat_line_comes_after_30_quiet_seconds_whatever_log_every_is():
  clock, out = Clock(0.0), io.StringIO()
  p = Progress(10_000, stream=out, clock=clock)
  clock.t = 29.9
  p.heartbeat(2_000, 100.0)  # 29.9 s since the progress began: nothing yet
  clock.t = 30.0
  p.heartbeat(3_000, 100.0)
  clock.t = 45.0
  p.update(4_000, {"d_loss": 1.25}, 100.0)  # a logged step resets the 30 s
  clock.t = 74.0
  p.heartbeat(5_000, 100.0)
  clock.t = 75.0
  p.heartbeat(6_000, 0.0)  # no rate yet: no ETA either
  assert out.getvalue().splitlines() == [
    "step  3000/10000 ( 30%) | 100.0 steps/s | ETA 0:01:10",
    "step  4000/10000 ( 40%) | d_loss 1.2500 | 100.0 steps/s | ETA 0:01:00",
    "step  6000/10000 ( 60%)",
  ]


def test_step_rate_leaves_paused_time_out():
  clock = Clock(10.0)
  rate = metric_writers.StepRate(100, clock=clock)
  clock.t = 12.0
  with rate.paused():  # an evaluation
    clock.t = 20.0
  clock.t = 22.0
  assert rate.rate(100) == 0.0
  assert rate.rate(500) == 100.0  # 400 steps in 4 s of training
  rate.reset(500)
  clock.t = 24.0
  assert rate.rate(700) == 100.0


def test_a_run_with_a_long_log_every_shows_heartbeats_and_logs_nothing_more(
  tmp_path, monkeypatch, capfd
):
  clock = Clock(0.0)

  def every_read_is_16_seconds_later():
    clock.t += 16.0
    return clock.t

  monkeypatch.setattr(metric_writers, "now", every_read_is_16_seconds_later)
  c = tiny_gaussian_config(steps=8, steps_per_call=2, log_every=1000, checkpoint_every=1000)
  capfd.readouterr()
  jaxgan.train(c, str(tmp_path), progress=True)
  lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("step")]
  assert [line.split(" | ")[0] for line in lines] == [
    "step 2/8 ( 25%)",  # right after compiling: no rate yet
    "step 4/8 ( 50%)",
    "step 6/8 ( 75%)",
    "step 8/8 (100%)",  # the logged step (train.steps)
  ]
  assert lines[0] == "step 2/8 ( 25%)"
  assert all(" steps/s | ETA " in line for line in lines[1:3])
  assert "d_loss" in lines[3] and "d_loss" not in "".join(lines[:3])
  assert [r["step"] for r in read_jsonl(str(tmp_path / "metrics.jsonl"))] == [8]
