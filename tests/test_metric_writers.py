import io
import json

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
