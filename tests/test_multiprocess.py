"""Multi-host for real: two processes on this machine, each with 2 CPU devices.

They join through ``jax.distributed.initialize`` (the ``--distributed`` flag),
train one shard_map program over the 4 global devices, and each reads only its
own half of every global batch. The result must equal a one-process run, and a
signal to one process alone must stop both at the same step, resumably.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import jaxgan
from conftest import FAST_COMPILE_FLAGS, MNIST_DIR


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def launch(repo_root, workdir, overrides, *, devices, distributed=None, env_extra=None, log=None):
  env = dict(
    os.environ,
    XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} {FAST_COMPILE_FLAGS}",
    JAX_PLATFORMS="cpu",
    **(env_extra or {}),
  )
  cmd = [sys.executable, "-m", "jaxgan.cli.train", f"--workdir={workdir}", *overrides]
  if distributed:
    port, pid = distributed
    cmd += [
      "--distributed",
      f"--coordinator_address=localhost:{port}",
      "--num_processes=2",
      f"--process_id={pid}",
    ]
  if log is not None:  # a file, never a pipe: a pipe nobody reads fills and blocks the child
    return subprocess.Popen(
      cmd,
      cwd=repo_root,
      env=env,
      stdin=subprocess.DEVNULL,
      stdout=log,
      stderr=subprocess.STDOUT,
      text=True,
    )
  return subprocess.Popen(
    cmd, cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
  )


# The 2-D ring, sampled on device: no dataset to prepare, so this always runs.
RING = [
  "--config=experiments/mixtures_2d.py:smoke",
  "--config.eval.metrics=",
  "--config.train.batch_size=64",
  "--config.train.steps_per_call=5",
  "--config.train.log_every=5",
  "--config.train.checkpoint_every=1000000",
]
_STOPPED = re.compile(r"agreed by all 2 processes, at step (\d+) \(this is process (\d)\)")


def _last_logged_step(workdir) -> int:
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return -1
  with open(path) as f:
    lines = [line for line in f.read().splitlines() if line.strip()]
  return json.loads(lines[-1])["step"] if lines else -1


def run_pair(repo_root, tmp_path, workdir, steps, *, stop_with=None, after_step=-1, overrides=RING):
  """Two processes on ``workdir`` (``overrides``, then train.steps); optionally signals
  process 1 alone once a step past ``after_step`` is logged. Returns each process's exit
  code and output."""
  port, name = free_port(), f"{os.path.basename(workdir)}-{steps}-{stop_with}"
  logs = [open(tmp_path / f"{name}.{pid}.log", "w+") for pid in range(2)]  # noqa: SIM115 (closed below)
  procs = [
    launch(
      repo_root,
      workdir,
      [*overrides, f"--config.train.steps={steps}"],
      devices=2,
      distributed=(port, pid),
      log=logs[pid],
    )
    for pid in range(2)
  ]
  try:
    if stop_with is not None:
      deadline = time.monotonic() + 300
      while _last_logged_step(workdir) <= after_step:
        assert all(p.poll() is None for p in procs), "a process ended before it was signalled"
        assert time.monotonic() < deadline, "no training step was logged in 300 s"
        time.sleep(0.05)
      procs[1].send_signal(stop_with)
    codes = [p.wait(timeout=300) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  outputs = []
  for log in logs:
    log.seek(0)
    outputs.append(log.read())
    log.close()
  return codes, outputs


def _stop_step(codes, outputs) -> int:
  assert codes == [130, 130], outputs
  found = [_STOPPED.search(out) for out in outputs]
  assert all(found), outputs
  assert [int(m.group(2)) for m in found] == [0, 1]
  steps = {int(m.group(1)) for m in found}
  assert len(steps) == 1, f"the processes stopped at different steps: {steps}"
  return steps.pop()


@pytest.mark.slow
def test_one_process_signalled_alone_stops_both_at_one_step_and_resumes_exactly(
  repo_root, tmp_path
):
  wd = str(tmp_path / "stopped")
  # SIGTERM goes to JAX's preemption notifier (orbax's reached_preemption) ...
  first = _stop_step(*run_pair(repo_root, tmp_path, wd, 100_000, stop_with=signal.SIGTERM))
  assert first % 5 == 0 and 0 < first < 100_000
  assert os.path.isdir(os.path.join(wd, "checkpoints", str(first)))
  # ... SIGINT to the flag all processes share once per call.
  second = _stop_step(
    *run_pair(repo_root, tmp_path, wd, 100_000, stop_with=signal.SIGINT, after_step=first)
  )
  assert second > first and second % 5 == 0
  final = second + 10
  codes, outputs = run_pair(repo_root, tmp_path, wd, final)
  assert codes == [0, 0], outputs
  whole = str(tmp_path / "whole")
  codes, outputs = run_pair(repo_root, tmp_path, whole, final)
  assert codes == [0, 0], outputs

  _, resumed = jaxgan.load_run(wd)
  _, uninterrupted = jaxgan.load_run(whole)
  assert int(resumed.step) == int(uninterrupted.step) == final
  for x, y in zip(jax.tree.leaves(uninterrupted), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))  # bit-exact resume


@pytest.mark.slow
def test_two_processes_equal_one_process(repo_root, tmp_path, mnist_tfds_dir):
  """With real MNIST, host-fed (each process reads only its half of every global batch);
  without it, the 2-D ring sampled on device, so some version always runs."""
  if os.path.isdir(MNIST_DIR):
    overrides, steps = (
      [
        "--config=experiments/mnist_dcgan.py:smoke",
        "--config.data.on_device=False",
        f"--config.data.data_dir={mnist_tfds_dir}",
        "--config.eval.metrics=",
        "--config.train.checkpoint_every=3",
        "--config.train.steps_per_call=1",
      ],
      3,
    )
    # The one-process run prepares MNIST first (if no other test has), so the two processes
    # do not race to write it.
  else:  # few steps: over thousands, GAN dynamics amplify the all-reduce's float summation order
    overrides, steps = RING, 10
  single = launch(
    repo_root, tmp_path / "single", [*overrides, f"--config.train.steps={steps}"], devices=4
  )
  _, err = single.communicate(timeout=600)
  assert single.returncode == 0, err
  codes, outputs = run_pair(
    repo_root, tmp_path, str(tmp_path / "multi"), steps, overrides=overrides
  )
  assert codes == [0, 0], outputs
  assert "on 4 device(s)" in outputs[0]  # process 0 reports the global mesh
  _, a = jaxgan.load_run(str(tmp_path / "single"))
  _, b = jaxgan.load_run(str(tmp_path / "multi"))
  assert int(a.step) == int(b.step) > 0
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-4, atol=1e-5)
