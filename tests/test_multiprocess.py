"""Multi-host for real: two processes on this machine, each with 2 CPU devices.

They join through ``jax.distributed.initialize`` (the ``--distributed`` flag),
train one shard_map program over the 4 global devices, and each reads only its
own half of every global batch. The result must equal a one-process run.
"""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxgan import api

MNIST_DIR = os.environ.get("JAXGAN_MNIST_DIR", "")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def launch(repo_root, workdir, overrides, *, devices, distributed=None, env_extra=None):
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             JAX_PLATFORMS="cpu", **(env_extra or {}))
  cmd = [sys.executable, "-m", "jaxgan.main", f"--workdir={workdir}", *overrides]
  if distributed:
    port, pid = distributed
    cmd += ["--distributed", f"--coordinator_address=localhost:{port}", "--num_processes=2",
            f"--process_id={pid}"]
  return subprocess.Popen(cmd, cwd=repo_root, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


@pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason="needs real MNIST (JAXGAN_MNIST_DIR)")
def test_two_processes_equal_one_process(repo_root, tmp_path):
  overrides = ["--config=experiments/mnist_dcgan.py:smoke", "--config.data.on_device=False",
               f"--config.data.data_dir={tmp_path / 'tfds'}", "--config.eval.metrics=",
               "--config.train.steps=3", "--config.train.checkpoint_every=3",
               "--config.train.steps_per_call=1"]
  # Prepare MNIST once, so the two processes do not race to write it.
  single = launch(repo_root, tmp_path / "single", overrides, devices=4)
  out, err = single.communicate(timeout=600)
  assert single.returncode == 0, err
  port = free_port()
  procs = [launch(repo_root, tmp_path / "multi", overrides, devices=2, distributed=(port, pid))
           for pid in range(2)]
  results = [p.communicate(timeout=600) for p in procs]
  for p, (out, err) in zip(procs, results):
    assert p.returncode == 0, err
  assert "on 4 device(s)" in results[0][1]  # process 0 reports the global mesh
  _, a = api.load_run(str(tmp_path / "single"))
  _, b = api.load_run(str(tmp_path / "multi"))
  assert int(b.step) == 3
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-4, atol=1e-5)
