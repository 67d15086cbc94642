"""Faults a new user hit the hard way: bad inputs, two launches, signals at start-up, divergence."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import jaxgan
from conftest import tiny_gaussian_config
from jaxgan.data.mnist_builder import read_idx
from jaxgan.errors import ConfigError, DatasetNotFoundError, NonFiniteLossError
from jaxgan.run import workdir_lock


def _env():
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)  # one CPU device, as a user has
  return env


_PARSE = (
  "import sys; from jaxgan.cli import train; "
  "train._parse_flags(['jaxgan'] + sys.argv[1:]); print('PARSED')"
)


def test_bad_config_files_and_flags_each_get_one_line_and_exit_2(repo_root, tmp_path):
  (tmp_path / "syntax.py").write_text("def get_config(:\n  pass\n")
  (tmp_path / "empty.py").write_text("X = 1\n")
  cases = {
    "missing file": (
      ["--config=experiments/gausian_1d.py", "--workdir=w"],
      "config file experiments/gausian_1d.py does not exist. "
      "Did you mean experiments/gaussian_1d.py?",
    ),
    "syntax error": (
      [f"--config={tmp_path}/syntax.py", "--workdir=w"],
      f"config file {tmp_path}/syntax.py has a syntax error at line 1: invalid syntax",
    ),
    "no get_config": (
      [f"--config={tmp_path}/empty.py", "--workdir=w"],
      f"config file {tmp_path}/empty.py has no get_config()",
    ),
    "unknown variant": (
      ["--config=experiments/gaussian_1d.py:nope", "--workdir=w"],
      "unknown variant 'nope'",
    ),
    "bad value": (
      ["--config=experiments/gaussian_1d.py", "--workdir=w", "--config.train.steps=abc"],
      "flag --config.train.steps=abc: invalid literal for int()",
    ),
    "no config": (["--workdir=w"], "--config and --workdir are required"),
    "unknown flag": (
      ["--config=experiments/gaussian_1d.py", "--workdir=w", "--stepz=3"],
      "Unknown command line flag 'stepz'",
    ),
  }
  procs = {
    name: subprocess.Popen(
      [sys.executable, "-c", _PARSE, *argv],
      cwd=repo_root,
      env=_env(),
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for name, (argv, _) in cases.items()
  }  # absl's flags are global: one process per case
  verbose = subprocess.Popen(
    [sys.executable, "-c", _PARSE, *cases["missing file"][0]],
    cwd=repo_root,
    env=dict(_env(), JAXGAN_TRACEBACK="1"),
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  _, err = verbose.communicate(timeout=300)  # for bug reports: the traceback, then the same line
  assert verbose.returncode == 2 and err.startswith("Traceback (most recent call last):"), err
  assert err.strip().splitlines()[-1] == "jaxgan: error: " + cases["missing file"][1]
  for name, proc in procs.items():
    out, err = proc.communicate(timeout=300)
    lines = err.strip().splitlines()
    assert proc.returncode == 2 and not out, (name, proc.returncode, out, err)
    assert len(lines) == 1 and lines[0].startswith("jaxgan: error: "), (name, err)
    assert cases[name][1] in lines[0], (name, lines[0])


def test_a_workdir_that_is_a_file_is_refused_before_anything_is_built(tmp_path):
  path = tmp_path / "notadir"
  path.write_text("x")
  with pytest.raises(
    ConfigError,
    match=r"^--workdir .*notadir is a file, not a directory; pass a "
    r"directory path\.$",
  ):
    jaxgan.train(tiny_gaussian_config(), str(path))
  with pytest.raises(ConfigError, match=r"cannot be created: .*notadir is a file"):
    jaxgan.train(tiny_gaussian_config(), str(path / "sub"))


def test_a_truncated_mnist_gz_is_one_line(tmp_path):
  source = os.environ.get("JAXGAN_MNIST_DIR")
  if not source or not os.path.exists(os.path.join(source, "t10k-labels-idx1-ubyte.gz")):
    import gzip

    raw = bytes([0, 0, 8, 1, 0, 0, 0, 200]) + bytes(range(200))
    data = gzip.compress(raw)
  else:
    with open(os.path.join(source, "t10k-labels-idx1-ubyte.gz"), "rb") as f:
      data = f.read()
  path = tmp_path / "t10k-labels-idx1-ubyte.gz"
  path.write_bytes(data[: len(data) // 2])
  with pytest.raises(
    DatasetNotFoundError,
    match=r"cannot be read \(EOFError: .*\); it is truncated or "
    r"damaged: replace it with a fresh copy\.",
  ):
    read_idx(str(path))


_HOLDER = textwrap.dedent("""
    import sys, time
    from jaxgan.run import workdir_lock
    with workdir_lock.hold(sys.argv[1]):
      print("held", flush=True)
      time.sleep(600)
""")


def test_a_second_launch_on_a_busy_workdir_fails_at_once_and_a_killed_holder_leaves_no_lock(
  repo_root, tmp_path
):
  wd = tmp_path / "run"
  wd.mkdir()
  holder = subprocess.Popen(
    [sys.executable, "-c", _HOLDER, str(wd)],
    cwd=repo_root,
    env=_env(),
    stdout=subprocess.PIPE,
    text=True,
  )
  try:
    assert holder.stdout.readline().strip() == "held"
    started = time.time()
    with pytest.raises(
      workdir_lock.WorkdirBusyError,
      match=rf"^{wd} is in use by process {holder.pid} on .* \(started .*\); wait for it "
      rf"to finish, stop it, or use another --workdir\.$",
    ):
      jaxgan.train(tiny_gaussian_config(), str(wd))
    assert not (wd / "checkpoints").exists() and not (wd / "metrics.jsonl").exists()
  finally:
    holder.kill()  # SIGKILL: no cleanup runs, the kernel drops the lock
    holder.wait()
  state = jaxgan.train(tiny_gaussian_config(), str(wd), progress=False)
  assert int(state.step) == 4 and sorted(os.listdir(wd / "checkpoints")) == ["2", "4"]
  del started


def test_finite_divergence_stops_the_run_naming_step_and_value(tmp_path):
  """Adam at lr 1e8 once ran to the end with loss ~1e29 and nothing stopped it."""
  config = tiny_gaussian_config(steps=20, steps_per_call=1, log_every=1, checkpoint_every=1)
  config.optim.d.lr = config.optim.g.lr = 1e8
  with pytest.raises(NonFiniteLossError) as info:
    jaxgan.train(config, str(tmp_path / "run"), progress=False)
  message = str(info.value)
  assert (
    "diverged past train.divergence_bound=1e+08: " in message
    or "non-finite value (NaN or inf): " in message
  ), message
  step = int(message.split(" at step ")[1].split(";")[0])
  assert 1 <= step < 20, message
  assert (
    f"the last good checkpoint (step {step - 1})" in message
    if step > 1
    else "no checkpoint had been written yet" in message
  ), message


@pytest.mark.slow
def test_signals_at_any_moment_of_start_up_stop_cleanly(repo_root, tmp_path):
  """SIGTERM/SIGINT from process start to the first steps: never swallowed, never a crash."""
  delays = [0.3, 1.5, 3.0, 4.5, 6.0, 8.0]
  procs = []
  for i, delay in enumerate(delays):
    wd = tmp_path / f"run{i}"
    flags = [
      "--config=experiments/gaussian_1d.py",
      f"--workdir={wd}",
      "--config.train.steps=3000000",
      "--config.train.checkpoint_every=3000000",
      "--config.eval.metrics=",
    ]
    proc = subprocess.Popen(
      [sys.executable, "-m", "jaxgan.cli.train", *flags],
      cwd=repo_root,
      env=_env(),
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    procs.append((proc, wd, delay, signal.SIGTERM if i % 2 == 0 else signal.SIGINT))
  start = time.time()
  for proc, _, delay, sig in sorted(procs, key=lambda p: p[2]):
    time.sleep(max(0.0, start + delay - time.time()))
    proc.send_signal(sig)
  for proc, wd, delay, sig in procs:
    _, err = proc.communicate(timeout=300)
    case = f"{sig.name} at {delay}s: exit {proc.returncode}\n{err[-2000:]}"
    assert proc.returncode in (130, -sig, 1 if sig == signal.SIGINT else -sig), case
    assert "Exception ignored" not in err and "Segmentation" not in err, case
    if proc.returncode == 130:
      assert "Traceback" not in err, case
      steps = (
        sorted(int(s) for s in os.listdir(wd / "checkpoints"))
        if (wd / "checkpoints").exists()
        else []
      )
      assert len(steps) <= 1, case
      if any(
        m in err for m in ("nothing was written", "nothing new was written", "nothing was saved")
      ):
        assert not steps, case  # fresh workdirs: stopped before training means no checkpoint
      else:
        assert steps and f"Interrupted: checkpoint at step {steps[-1]}" in err, case
