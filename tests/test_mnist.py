"""Real MNIST, prepared offline from the raw idx files, trained end to end.

Needs the four raw files in $JAXGAN_MNIST_DIR (``conftest.MNIST_SKIP`` says how).
"""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

import jaxgan
from conftest import FAST_COMPILE_FLAGS, experiment, needs_mnist
from jaxgan.data import build_dataset
from jaxgan.run import checkpointing
from jaxgan.run.writers import read_jsonl

pytestmark = needs_mnist


@pytest.fixture(scope="module")
def data_dir(mnist_tfds_dir):
  return mnist_tfds_dir


def mnist_config(name, data_dir):
  c = experiment(name)
  c.data.data_dir = data_dir
  return c


def test_builder_prepares_real_mnist_offline(data_dir):
  c = mnist_config("mnist_gan.py", data_dir)
  train = build_dataset(c.data)
  test = train.other_split("test")
  assert (len(train), len(test)) == (60_000, 10_000)
  assert train.spec.shape == (28, 28, 1) and train.spec.num_classes == 10
  data = train.load_all()
  order = np.argsort(data["index"])
  labels = data["y"][order]
  # LeCun's files, in their original order: the first training digits are 5 0 4 1 9.
  assert list(labels[:5]) == [5, 0, 4, 1, 9]
  assert np.bincount(labels, minlength=10).tolist() == [
    5923,
    6742,
    5958,
    6131,
    5842,
    5421,
    5918,
    6265,
    5851,
    5949,
  ]
  assert data["x"].dtype == np.uint8 and data["x"].max() == 255
  assert list(test.load_all()["y"][np.argsort(test.load_all()["index"])][:3]) == [7, 2, 1]


def check_export(workdir, data_dir):
  """jaxgan-export on a conditional run: unit-range samples with balanced labels."""
  env = dict(os.environ, TFDS_DATA_DIR=data_dir)
  env["XLA_FLAGS"] = FAST_COMPILE_FLAGS
  out = subprocess.run(
    [
      sys.executable,
      "-m",
      "jaxgan.cli.export",
      f"--workdir={workdir}",
      "--num_samples=250",
      "--chunk=100",
    ],
    capture_output=True,
    text=True,
    env=env,
    timeout=300,
  )
  assert out.returncode == 0, out.stderr
  path = out.stdout.strip().splitlines()[-1]
  assert path.endswith("samples_4_250.npz")
  with np.load(path) as f:
    samples, labels = f["samples"], f["labels"]
  assert samples.shape == (250, 28, 28, 1) and samples.dtype == np.float32
  assert samples.min() >= 0.0 and samples.max() <= 1.0
  assert np.bincount(labels).tolist() == [25] * 10
  assert "250/250 samples" in out.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
  "name", ["mnist_gan.py:smoke", "mnist_dcgan.py:smoke", "mnist_cgan.py:smoke"]
)
def test_short_real_mnist_runs_end_to_end(name, data_dir, tmp_path):
  c = mnist_config(name, data_dir)
  c.parallel = "none"
  state = jaxgan.train(c, str(tmp_path), progress=False)
  assert int(state.step) == c.train.steps
  records = read_jsonl(str(tmp_path / "metrics.jsonl"))
  log_every = c.train.log_every
  assert [r["step"] for r in records] == list(range(log_every, c.train.steps + 1, log_every))
  for r in records:
    losses = {k: v for k, v in r.items() if k.endswith("_loss")}
    assert {"d_loss", "g_loss"} <= set(losses), r
    assert all(np.isfinite(v) for v in losses.values()), r
  figures = sorted(os.listdir(tmp_path / "figures"))
  step = f"{c.train.steps:07d}"
  assert {
    f"samples_{step}.png",
    f"interpolation_{step}.png",
    f"nearest_neighbours_{step}.png",
    "loss_curves.png",
  } <= set(figures)
  # The sample grid: one row per class for the conditional model (10 wide), else 8x8;
  # 28-pixel digits with 2-pixel gaps and border, drawn at 2x (figures.image_grid).
  rows, cols = (10, 10) if c.model.conditional else (8, 8)
  with Image.open(tmp_path / "figures" / f"samples_{step}.png") as im:
    grid = np.asarray(im.convert("RGB"), np.float32)
  assert grid.shape == (2 * (rows * 30 + 2), 2 * (cols * 30 + 2), 3)
  assert grid.std() > 0
  assert (grid[:4] == 255).all() and (grid[:, :4] == 255).all()  # the white border
  # The samples themselves are not blank: pixels vary inside the 56x56 cells.
  tops, lefts = [2 * (2 + 30 * r) for r in range(rows)], [2 * (2 + 30 * q) for q in range(cols)]
  cells = np.stack([grid[t : t + 56, x : x + 56] for t in tops for x in lefts])
  assert cells.std() > 0
  if c.model.conditional:  # and its samples exported from the command line
    check_export(tmp_path, data_dir)


def test_interrupted_and_resumed_mnist_run_is_bit_identical(data_dir, tmp_path, monkeypatch):
  # The host pipeline (TFDS reads per batch); the on-device one sees the same batches
  # (tests/test_data.py), so its resume is exact too.
  def config(steps):
    c = mnist_config("mnist_dcgan.py:smoke", data_dir)
    c.data.on_device = False
    c.train.update(steps=steps, checkpoint_every=2, steps_per_call=1)
    c.eval.metrics = ""
    return c

  restored = []  # (requested step, restored state.step) of every checkpoint restore
  original = checkpointing.Checkpointer.restore

  def spy(self, step, target):
    state, position = original(self, step, target)
    restored.append((int(step), int(jax.device_get(state.step))))
    return state, position

  monkeypatch.setattr(checkpointing.Checkpointer, "restore", spy)
  straight = jaxgan.train(config(6), str(tmp_path / "a"), progress=False)
  jaxgan.train(config(2), str(tmp_path / "b"), progress=False)
  assert restored == []
  resumed = jaxgan.train(config(6), str(tmp_path / "b"), progress=False)
  # Resumed from the step-2 checkpoint, not retrained from step 0 (same seed: same result).
  assert restored == [(2, 2)]
  assert int(straight.step) == int(resumed.step) == 6
  for x, y in zip(
    jax.tree.leaves(jax.device_get(straight)), jax.tree.leaves(jax.device_get(resumed))
  ):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
