"""The command line end to end: launch, override, resume, bad input."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

import jaxgan
from conftest import FAST_COMPILE_FLAGS
from jaxgan.run.stopping import StopRequest, StopRequested
from jaxgan.run.writers import read_jsonl


def cli(repo_root, workdir, *flags):
  env = dict(os.environ)
  env["XLA_FLAGS"] = FAST_COMPILE_FLAGS  # one CPU device, as a user has
  return subprocess.run(
    [
      sys.executable,
      "-m",
      "jaxgan.cli.train",
      "--config=experiments/gaussian_1d.py:smoke",
      f"--workdir={workdir}",
      *flags,
    ],
    cwd=repo_root,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )


@pytest.mark.slow
def test_cli_trains_overrides_and_resumes(repo_root, tmp_path):
  wd = tmp_path / "run"
  first = cli(repo_root, wd, "--config.train.steps=10", "--config.train.log_every=5")
  assert first.returncode == 0, first.stderr
  assert "step 10/10" in first.stderr
  config = json.loads((wd / "config.json").read_text())
  assert config["train"]["steps"] == 10 and config["train"]["log_every"] == 5
  assert [r["step"] for r in read_jsonl(str(wd / "metrics.jsonl"))] == [5, 10]
  assert sorted(os.listdir(wd / "checkpoints")) == ["10"]
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(wd / "tensorboard"))

  second = cli(repo_root, wd, "--config.train.steps=20", "--config.train.log_every=5")
  assert second.returncode == 0, second.stderr
  assert "Resuming" in second.stderr and "from step 10" in second.stderr
  assert "train.steps: 10 -> 20" in second.stderr
  records = read_jsonl(str(wd / "metrics.jsonl"))
  assert [r["step"] for r in records] == [5, 10, 15, 20]
  final = records[-1]
  assert {
    "d_loss",
    "g_loss",
    "d_real",
    "d_fake",
    "d_grad_norm",
    "g_grad_norm",
    "steps_per_sec",
    "w1",
    "ks",
    "gen_mean",
    "gen_std",
    "d_half_gap",
  } <= set(final)
  assert os.path.exists(wd / "figures" / "density_1d_0000020.png")


def test_cli_bad_key_fails_fast_with_valid_keys(repo_root, tmp_path):
  out = cli(repo_root, tmp_path / "bad", "--config.train.stepz=5")
  assert out.returncode == 2
  assert "config.train has no key 'stepz'. Did you mean 'steps'?" in out.stderr
  assert "Traceback" not in out.stderr
  assert not (tmp_path / "bad").exists()  # nothing was created or started


def test_cli_sweep_of_a_shape_key_fails_with_what_to_do(repo_root, tmp_path):
  out = cli(repo_root, tmp_path / "bad", "--config.sweep.model.g_hidden=((8,),(16,))")
  assert out.returncode == 2
  assert (
    "config.model.g_hidden cannot be swept in one program: it changes shapes, data or the "
    "compiled program, not just numbers. Launch one run per value instead"
  ) in out.stderr
  assert "Traceback" not in out.stderr and not (tmp_path / "bad").exists()


def test_cli_bad_name_fails_before_compiling(repo_root, tmp_path):
  out = cli(repo_root, tmp_path / "bad", "--config.loss.g=nonsaturating")
  assert out.returncode == 2
  assert "unknown generator loss 'nonsaturating'" in out.stderr
  assert "non_saturating" in out.stderr
  assert "Compiled" not in out.stderr


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_the_rerun_resumes(repo_root, tmp_path):

  wd = tmp_path / "run"
  env = dict(os.environ)
  env["XLA_FLAGS"] = FAST_COMPILE_FLAGS
  flags = [
    "--config=experiments/gaussian_1d.py",
    f"--workdir={wd}",
    "--config.train.steps=10000000",
    "--config.train.checkpoint_every=10000000",
    "--config.train.log_every=250",
    "--config.eval.metrics=",
  ]
  proc = subprocess.Popen(
    [sys.executable, "-m", "jaxgan.cli.train", *flags],
    cwd=repo_root,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  deadline = time.time() + 120
  while time.time() < deadline and not (wd / "metrics.jsonl").exists():
    time.sleep(0.2)
  while time.time() < deadline and not (wd / "metrics.jsonl").read_text().strip():
    time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 130, err
  saved = int(re.search(r"Interrupted: checkpoint at step (\d+)", err).group(1))
  assert saved >= 250 and os.listdir(wd / "checkpoints") == [str(saved)]
  assert "Traceback" not in err
  target = saved + 500
  again = cli(repo_root, wd, "--config.train.steps=" + str(target), "--config.eval.metrics=")
  assert again.returncode == 0, again.stderr
  assert f"from step {saved}" in again.stderr
  # The rerun trained on to its target and checkpointed there.
  config, state = jaxgan.load_run(str(wd))
  assert int(state.step) == target and config.train.steps == target
  assert sorted(int(s) for s in os.listdir(wd / "checkpoints"))[-1] == target
  assert read_jsonl(str(wd / "metrics.jsonl"))[-1]["step"] == target


def test_first_signal_requests_a_stop_and_the_second_interrupts():

  if threading.current_thread() is not threading.main_thread():
    pytest.skip("signal handlers can only be installed from the main thread")
  before = signal.getsignal(signal.SIGTERM)
  with StopRequest() as stop:
    assert not stop.requested
    stop.check("now")  # nothing requested: no-op
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.requested  # the loop saves at the next call boundary
    with pytest.raises(StopRequested, match=r"^signal 15 before step 7$"):
      stop.check("before step 7")
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
  assert signal.getsignal(signal.SIGTERM) is before  # handlers restored


@pytest.mark.parametrize(
  "old,script,module",
  [
    ("main", "jaxgan-train", "train"),
    ("evaluate", "jaxgan-evaluate", "evaluate"),
    ("export", "jaxgan-export", "export"),
    ("plot_metric", "jaxgan-plot-metric", "plot_metric"),
    ("reference_samples", "jaxgan-reference-samples", "reference_samples"),
  ],
)
def test_old_program_paths_name_the_new_command(repo_root, old, script, module):
  proc = subprocess.run(
    [sys.executable, "-m", f"jaxgan.{old}", "--workdir=w"],
    cwd=repo_root,
    capture_output=True,
    text=True,
    timeout=60,
  )
  assert proc.returncode == 2
  assert proc.stderr == (
    f"jaxgan: error: `python -m jaxgan.{old}` is now `{script}` "
    f"(or `python -m jaxgan.cli.{module}`), with the same flags.\n"
  )
  with pytest.raises(ImportError, match=f"jaxgan.{old} moved: .*`{script}`"):
    __import__(f"jaxgan.{old}")


@pytest.mark.parametrize(
  "module,flag",
  [
    ("train", "--workdir"),
    ("evaluate", "--best"),
    ("export", "--num_samples"),
    ("plot_metric", "--scalar"),
    ("reference_samples", "--kind"),
    ("prepare", "--source"),
    ("reference_stats", "--split"),
  ],
)
def test_console_scripts_help_shows_the_programs_own_flags(repo_root, module, flag):
  """A console script's __main__ is a generated wrapper; --helpshort must still describe the
  program (its docstring and flags), as ``python -m jaxgan.cli.<module> --helpshort`` does."""
  wrapper = (
    f"import sys; sys.argv = ['jaxgan-x', '--helpshort']; "
    f"from jaxgan.cli.{module} import run; run()"
  )
  proc = subprocess.run(
    [sys.executable, "-c", wrapper], cwd=repo_root, capture_output=True, text=True, timeout=120
  )
  own = __import__(f"jaxgan.cli.{module}", fromlist=["_"]).__doc__.splitlines()[0]
  assert proc.stdout.startswith(own), proc.stdout
  assert re.search(rf"^  --(\[no\])?{flag[2:]}:", proc.stdout, re.M), proc.stdout
