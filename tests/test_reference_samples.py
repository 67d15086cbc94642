"""Reference sample files: k-means codebooks and memorised training images."""

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import MNIST_DIR, needs_mnist
from jaxgan.cli import reference_samples
from jaxgan.errors import ConfigError


def test_kmeans_finds_separated_clusters_and_its_objective_never_rises():
  rng = np.random.default_rng(0)
  centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]], np.float32)
  # 3001 points: not a multiple of the distance block, so padding must not leak in.
  x = np.concatenate([c + rng.normal(0, 0.1, (750, 2)) for c in centres] + [centres[:1]])
  found, history = reference_samples.kmeans(x, 4, iterations=8, seed=0)
  by_x_then_y = lambda a: a[np.lexsort(a.T[::-1])]
  np.testing.assert_allclose(by_x_then_y(found), by_x_then_y(centres), atol=0.02)
  assert all(b <= a + 1e-6 for a, b in itertools.pairwise(history))
  assert history[-1] == pytest.approx(2 * 0.1**2, rel=0.1)  # E|x - c|^2 of N(c, 0.1^2 I_2)
  again, _ = reference_samples.kmeans(x, 4, iterations=8, seed=0)
  np.testing.assert_array_equal(found, again)
  _, stuck = reference_samples.kmeans(x, 4, iterations=8, seed=1)  # a start with two in one cluster
  assert (
    all(b <= a + 1e-6 for a, b in itertools.pairwise(stuck)) and stuck[-1] > 12
  )  # Lloyd's local minimum


def test_kmeans_with_k_equal_to_n_returns_the_points_and_refuses_more():
  x = np.arange(12, dtype=np.float32).reshape(6, 2)
  found, history = reference_samples.kmeans(x, 6, iterations=2)
  np.testing.assert_array_equal(np.sort(found, axis=0), x)
  assert history == [0.0, 0.0]
  with pytest.raises(
    ConfigError, match=r"k-means needs 1 <= k <= 6 points; got k=7\. Lower --num\."
  ):
    reference_samples.kmeans(x, 7)


def test_make_train_draws_distinct_images_in_order_and_checks_its_inputs():
  images = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1) / 10
  out = reference_samples.make("train", images, 4, seed=3)
  assert out.shape == (4, 1, 1, 1) and len(np.unique(out)) == 4
  assert np.all(np.diff(out.ravel()) > 0)
  with pytest.raises(ConfigError, match=r"--num=11: the training images hold 10; choose 1\.\.10\."):
    reference_samples.make("train", images, 11)
  with pytest.raises(ConfigError, match=r"--kind='median': choose one of train, kmeans\."):
    reference_samples.make("median", images, 2)
  with pytest.raises(ConfigError, match=r"--train_range='0-5' must be 'start,stop'"):
    reference_samples._parse_range("0-5")


@needs_mnist
def test_cli_writes_a_kmeans_codebook_of_the_selected_mnist_images(tmp_path, mnist_tfds_dir):
  out = tmp_path / "kmeans.npz"
  env = dict(os.environ, JAXGAN_MNIST_DIR=MNIST_DIR)
  cmd = [
    sys.executable,
    "-m",
    "jaxgan.cli.reference_samples",
    "--dataset=mnist",
    "--kind=kmeans",
    "--num=20",
    "--iterations=2",
    "--train_range=0,300",
    f"--data_dir={mnist_tfds_dir}",
    f"--output={out}",
  ]
  proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert (
    "20 kmeans samples (28, 28, 1) from 300 mnist train images; the first 100 in "
    f"{tmp_path / 'kmeans.png'}"
  ) in proc.stdout

  assert Image.open(tmp_path / "kmeans.png").size == (2 * (10 * 30 + 2), 2 * (2 * 30 + 2))
  with np.load(out) as f:
    samples = f["samples"]
  assert samples.dtype == np.float32 and samples.shape == (20, 28, 28, 1)
  assert samples.min() >= 0.0 and samples.max() <= 1.0
  # The same codebook as the library's on exactly those 300 images (seed 0, 2 iterations).
  images = reference_samples.training_images("mnist", (0, 300), data_dir=mnist_tfds_dir)
  assert images.shape == (300, 28, 28, 1)
  expected, _ = reference_samples.kmeans(images, 20, iterations=2, seed=0)
  np.testing.assert_allclose(samples.reshape(20, -1), np.clip(expected, 0, 1), atol=1e-6)
