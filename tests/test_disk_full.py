"""A full disk stops a run with one line naming the device, the free space and the newest
complete checkpoint; that checkpoint stays intact and the re-run resumes from it.

ENOSPC is injected where each kind of write fails (metrics.jsonl, TensorBoard, a figure,
orbax's save thread), and, where the system lets an unprivileged user mount a tmpfs in a
user namespace, a real 600 KiB filesystem fills up under a CLI run.
"""

import errno
import os
import re
import shutil
import subprocess
import sys
import textwrap

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import jaxgan
from conftest import FAST_COMPILE_FLAGS, tiny_gaussian_config
from jaxgan.evaluators import figures
from jaxgan.run import checkpointing, disk_full, writers
from jaxgan.run.disk_full import DiskFullError
from jaxgan.run.writers import read_jsonl


def config(steps=8):
  c = tiny_gaussian_config(steps=steps, checkpoint_every=2, log_every=2)
  c.eval.update(metrics="gaussian_1d", every=2, num_samples=256)
  return c


def leaves(state):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """The final state of the run with space to spare."""
  return leaves(jaxgan.train(config(), str(tmp_path_factory.mktemp("straight")), progress=False))


def enospc(*_):
  raise OSError(errno.ENOSPC, "No space left on device")


def inject(where: str, monkeypatch, step: int = 6) -> None:
  """Makes the ``where`` write of ``step`` find the disk full."""
  if where == "metrics":
    original = writers._append
    monkeypatch.setattr(
      writers,
      "_append",
      lambda path, data: enospc() if b'"step": 6,' in data else original(path, data),
    )
  elif where == "tensorboard":
    original_add = writers._EventFile.add
    monkeypatch.setattr(
      writers._EventFile,
      "add",
      lambda self, s, summary: enospc() if s == step else original_add(self, s, summary),
    )
  elif where == "figure":  # PIL's write of the PNG, inside figures.save_png
    original_png = figures.Image.Image.save
    monkeypatch.setattr(
      figures.Image.Image,
      "save",
      lambda self, path, *a, **k: (
        enospc() if str(path).endswith(f"{step:07d}.png") else original_png(self, path, *a, **k)
      ),
    )
  elif where == "checkpoint":  # fails in orbax's save thread, as tensorstore's writes do
    original_save = ocp.JsonCheckpointHandler._save_fn

    async def save_fn(self, x, directory):
      if re.search(rf"checkpoints/{step}\b.*digest", str(directory)):
        enospc()
      return await original_save(self, x, directory)

    monkeypatch.setattr(ocp.JsonCheckpointHandler, "_save_fn", save_fn)


WHAT = {
  "metrics": ("metrics.jsonl", "metrics"),
  "tensorboard": ("tensorboard", "TensorBoard events"),
  "figure": ("figures/density_1d_0000006.png", "a figure"),
  "checkpoint": ("checkpoints", "a checkpoint"),
}


@pytest.mark.parametrize("where", list(WHAT))
def test_a_full_disk_stops_the_run_in_one_line_and_the_rerun_resumes(
  where, straight, tmp_path, monkeypatch, capfd
):
  wd = str(tmp_path / "run")
  monkeypatch.setattr(disk_full, "free_mib", lambda path: 0.25)
  with monkeypatch.context() as m:
    inject(where, m)
    with pytest.raises(DiskFullError) as e:
      jaxgan.train(config(), wd, progress=False)
  path, what = WHAT[where]
  assert str(e.value) == (
    f"no space left on the device holding {wd}/{path} (0.2 MiB free) while writing {what}: "
    f"free space there or use another --workdir; the newest complete checkpoint is step 4; "
    f"re-run the same command to resume from it."
  )
  err = capfd.readouterr().err
  assert "Traceback" not in err and "RESOURCE_EXHAUSTED" not in err, err
  assert sorted(s for s in os.listdir(os.path.join(wd, "checkpoints")) if s.isdigit()) == ["2", "4"]
  logged = [r["step"] for r in read_jsonl(os.path.join(wd, "metrics.jsonl"))]  # still parses
  assert logged[:2] == [2, 4]

  restored = []
  original = checkpointing.Checkpointer.restore

  def spy(self, step, target):
    state, position = original(self, step, target)
    restored.append(int(step))
    return state, position

  monkeypatch.setattr(checkpointing.Checkpointer, "restore", spy)
  final = jaxgan.train(config(), wd, progress=False)
  assert restored == [4]
  for x, y in zip(leaves(final), straight, strict=True):
    np.testing.assert_array_equal(x, y)
  assert [r["step"] for r in read_jsonl(os.path.join(wd, "metrics.jsonl"))] == [2, 4, 6, 8]


def test_a_failed_metrics_append_leaves_no_partial_record(tmp_path, monkeypatch):
  path = str(tmp_path / "metrics.jsonl")
  writers._append(path, b'{"step": 1}\n')
  real_write = os.write

  def short_then_full(fd, data):  # the disk takes 5 bytes, then is full
    if len(data) > 5:
      return real_write(fd, bytes(data[:5]))
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(writers.os, "write", short_then_full)
  with pytest.raises(OSError):
    writers._append(path, b'{"step": 2}\n')
  monkeypatch.undo()
  with open(path) as f:
    assert f.read() == '{"step": 1}\n'


def test_a_record_cut_short_by_a_crash_is_dropped_on_resume(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 2}\n{"step": 4}\n{"step": 6, "d_lo')
  with writers.MetricWriter(str(tmp_path), resume_step=4, tensorboard=False):
    pass
  assert path.read_text() == '{"step": 2}\n{"step": 4}\n'


_DRIVER = textwrap.dedent("""
    import errno, re, sys
    import orbax.checkpoint as ocp
    from jaxgan.run import disk_full

    original = ocp.JsonCheckpointHandler._save_fn

    async def save_fn(self, x, directory):  # the final checkpoint meets a full disk
      if re.search(r"checkpoints/20\\b.*digest", str(directory)):
        raise OSError(errno.ENOSPC, "No space left on device")
      return await original(self, x, directory)

    ocp.JsonCheckpointHandler._save_fn = save_fn
    disk_full.free_mib = lambda path: 3.0
    from jaxgan.cli import train
    train.run()
""")


def _env(fast_compile: bool = True):
  """One CPU device, as a user has; XLA's optimizations off unless the run is long."""
  env = dict(os.environ)
  env["XLA_FLAGS"] = FAST_COMPILE_FLAGS if fast_compile else ""
  return env


@pytest.mark.slow
def test_the_cli_prints_one_line_and_exits_2_and_the_same_command_resumes(repo_root, tmp_path):
  wd = tmp_path / "run"
  flags = ["--config=experiments/gaussian_1d.py:smoke", f"--workdir={wd}"]

  def run(*argv):
    return subprocess.run(
      [sys.executable, *argv, *flags], cwd=repo_root, env=_env(), capture_output=True, text=True
    )

  full = run("-c", _DRIVER)
  assert full.returncode == 2, full.stderr
  errors = [line for line in full.stderr.splitlines() if "rror" in line or "Traceback" in line]
  assert errors == [
    f"jaxgan: error: no space left on the device holding {wd}/checkpoints (3.0 MiB free) "
    f"while writing a checkpoint: free space there or use another --workdir; the newest "
    f"complete checkpoint is step 10; re-run the same command to resume from it."
  ], full.stderr
  assert "Done:" not in full.stderr  # no summary of a run whose last save failed
  again = run("-m", "jaxgan.cli.train")
  assert again.returncode == 0, again.stderr
  assert f"Resuming {wd} from step 10." in again.stderr
  assert sorted(os.listdir(wd / "checkpoints")) == ["10", "20"]


_SMALL_FS = textwrap.dedent("""
    set -u
    mount -t tmpfs -o size=600k tmpfs "$1" || exit 77
    "$2" -m jaxgan.cli.train "${@:3}" 2> "$1.full.err"; echo "rc=$?" >> "$1.full.err"
    ls "$1/run/checkpoints" > "$1.kept"
    mount -o remount,size=64m "$1"
    "$2" -m jaxgan.cli.train "${@:3}" 2> "$1.again.err"; echo "rc=$?" >> "$1.again.err"
""")


@pytest.mark.slow
def test_a_real_small_filesystem_fills_and_the_run_resumes_once_there_is_space(repo_root, tmp_path):
  """Needs ``unshare`` with unprivileged user and mount namespaces (skipped without them)."""
  probe = ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {tmp_path}"]
  if not shutil.which("unshare") or subprocess.run(probe, capture_output=True).returncode:
    pytest.skip("cannot mount a small tmpfs here (unshare -rm with mount namespaces)")
  mnt = tmp_path / "mnt"
  mnt.mkdir()
  wd = mnt / "run"
  flags = [
    "--config=experiments/gaussian_1d.py",
    f"--workdir={wd}",
    "--config.train.steps=6000",
    "--config.train.checkpoint_every=500",
    "--config.train.log_every=500",
    "--config.eval.metrics=",
  ]
  script = tmp_path / "small_fs.sh"
  script.write_text(_SMALL_FS)
  subprocess.run(
    ["unshare", "-rm", "bash", str(script), str(mnt), sys.executable, *flags],
    cwd=repo_root,
    env=_env(fast_compile=False),  # 6,000 steps: running, not compiling, is what takes time
    check=True,
    timeout=600,
  )
  full = (tmp_path / "mnt.full.err").read_text().splitlines()
  assert full[-1] == "rc=2", full
  assert not [line for line in full if "Traceback" in line or "RESOURCE_EXHAUSTED" in line], full
  kept = sorted(int(s) for s in (tmp_path / "mnt.kept").read_text().split() if s.isdigit())
  assert kept, f"the disk filled before the first checkpoint completed: {full}"
  assert re.fullmatch(
    rf"jaxgan: error: no space left on the device holding {re.escape(str(wd))}/\S+ "
    rf"\(\d+\.\d MiB free\) while writing [a-zA-Z ]+: free space there or use another "
    rf"--workdir; the newest complete checkpoint is step {kept[-1]}; re-run the same command "
    rf"to resume from it\.",
    full[-2],
  ), full[-2]
  again = (tmp_path / "mnt.again.err").read_text()
  assert again.splitlines()[-1] == "rc=0", again
  assert f"Resuming {wd} from step {kept[-1]}" in again
