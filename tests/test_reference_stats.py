"""jaxgan-reference-stats: real features into the evaluators' cache, and its key and protocol."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import experiment, needs_mnist
from jaxgan import evaluators
from jaxgan.cli import reference_stats
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError, FeatureNetNotFoundError
from jaxgan.evaluators import feature_metrics
from jaxgan.feature_nets import lenet


@pytest.fixture(scope="module")
def program_on_1d_data(repo_root):
  """The program on data without a feature network, started first: it runs beside the
  other tests (and its exit is checked last)."""
  proc = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "jaxgan.cli.reference_stats",
      f"--config={os.path.join(repo_root, 'experiments', 'gaussian_1d.py')}",
    ],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  yield proc
  proc.kill()


def test_the_cache_key_changes_with_split_count_and_resolution(program_on_1d_data):
  c = experiment("image_folder_dcgan.py:r64")
  assert "resolution" in c.data and "resolution" not in feature_metrics.NOT_CONTENT_KEYS

  def key(split="test", count=10_000, resolution=64):
    c.data.resolution = resolution
    return feature_metrics.stats_key(c, split, count, "inception", "0123456789ab")

  def file(k):
    return feature_metrics.stats_file(k, "image_folder-test-inception")

  keys = [key(), key(split="train"), key(count=5_000), key(resolution=32)]
  assert len({file(k) for k in keys}) == 4
  assert key() == keys[0] and file(key()) == file(keys[0])  # the same inputs: the same file
  # Where the files are read from is not part of the key.
  c.data.data_dir = "/elsewhere"
  assert file(key()) == file(keys[0])


def test_the_protocol_line_names_what_the_statistics_are():
  k = feature_metrics.stats_key(experiment("mnist_gan.py"), "test", 10_000, "lenet", "9cbbea18e9e2")
  assert feature_metrics.protocol(k, (28, 28, 1)) == "mnist test 10000 28x28x1 lenet:9cbbea18"
  assert feature_metrics.protocol(k, (32, 32, 1)) == (
    "mnist test 10000 32x32x1 centre 28x28 lenet:9cbbea18"
  )
  c = experiment("cifar10_dcgan.py")
  k = feature_metrics.stats_key(c, "train", 50_000, "inception", "0123456789ab-q8")
  assert feature_metrics.protocol(k, (32, 32, 3)) == (
    "cifar10 train 50000 32x32x3 bilinear 299x299 q8 inception:01234567"
  )


class _FakeRGB:
  spec = DataSpec((32, 32, 3), num_classes=10, is_image=True, name="cifar10")
  split = "test"

  def __len__(self):
    return 10_000


def test_rgb_data_without_inception_weights_fails_before_any_work(monkeypatch):
  import jaxgan.data

  monkeypatch.delenv(feature_metrics.INCEPTION_ENV, raising=False)
  monkeypatch.setattr(jaxgan.data, "build_dataset", lambda data, **kw: _FakeRGB())
  c = experiment("cifar10_dcgan.py")
  c.eval.inception_weights = ""
  with pytest.raises(FeatureNetNotFoundError) as e:
    reference_stats.reference_stats(c)
  assert str(e.value).startswith(
    "Inception weights for FID not given (empty path). Nothing is downloaded: get "
    "pt_inception-2015-12-05-6726825d.pth from pytorch-fid's release"
  )
  assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def untrained_lenet(tmp_path_factory) -> str:
  """A LeNet with random weights: its features serve the cache's plumbing as well as any."""
  shapes = jax.eval_shape(lenet.init_params, jax.random.PRNGKey(0))  # traced, not compiled
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: rng.normal(0, 0.1, s.shape).astype(s.dtype), shapes)
  workdir = str(tmp_path_factory.mktemp("lenet"))
  lenet.save(workdir, params, {"dataset": "mnist", "id": lenet.params_id(params)})
  return workdir


@pytest.fixture
def mnist_config(mnist_tfds_dir, untrained_lenet, tmp_path):
  c = experiment("mnist_gan.py")
  c.data.data_dir = mnist_tfds_dir
  c.eval.update(feature_net=untrained_lenet, stats_cache_dir=str(tmp_path / "stats"))
  return c


@needs_mnist
def test_reference_stats_are_what_an_evaluator_then_reads(mnist_config, monkeypatch):
  ref = reference_stats.reference_stats(mnist_config, "test", 500)
  digest = lenet.read_info(mnist_config.eval.feature_net)["id"][:8]
  assert ref.protocol == f"mnist test 500 28x28x1 lenet:{digest}" and not ref.cached
  assert os.path.isfile(ref.path) and os.listdir(os.path.dirname(ref.path)) == [
    os.path.basename(ref.path)
  ]
  with np.load(ref.path) as f:
    assert f["features"].shape == (500, 128) and f["mu"].shape == (128,)
    features = f["features"]
  # An evaluator's real_features reads the file: its network must not run.
  from jaxgan.data import build_dataset

  def no_features(*args, **kwargs):
    raise AssertionError("recomputed the cached features")

  monkeypatch.setattr(feature_metrics._Net, "__call__", no_features)
  ctx = evaluators.EvalContext(
    config=mnist_config,
    gan=None,
    state=None,
    dataset=build_dataset(mnist_config.data),  # the train split, as during training
    step=0,
    workdir=None,
    rng=jax.random.PRNGKey(0),
  )
  stats = feature_metrics.real_features(ctx, "test", 500)
  np.testing.assert_array_equal(stats["features"], features)
  assert feature_metrics.reference_protocol(ctx) == ref.protocol
  again = reference_stats.reference_stats(mnist_config, "test", 500)
  assert again.cached and again.path == ref.path and again.protocol == ref.protocol


@needs_mnist
def test_bad_split_and_num_are_one_line_each_before_any_work(mnist_config, monkeypatch):
  monkeypatch.setattr(feature_metrics, "real_features", None)  # any work would fail loudly
  with pytest.raises(ConfigError) as e:
    reference_stats.reference_stats(mnist_config, "valid")
  assert str(e.value) == "--split=valid: Unknown split 'valid'. Should be one of ['train', 'test']."
  with pytest.raises(ConfigError) as e:
    reference_stats.reference_stats(mnist_config, "test", 10_001)
  assert str(e.value) == (
    "--num=10001: the mnist test split has 10000 images; give 1 to 10000, or leave --num out "
    "for all of them."
  )


def test_the_program_exits_2_with_one_line(program_on_1d_data):
  out, err = program_on_1d_data.communicate(timeout=300)
  assert program_on_1d_data.returncode == 2 and not out
  assert err.strip().splitlines() == [
    "jaxgan: error: feature metrics need 28x28x1 (or 32x32x1 padded) or RGB images, not "
    "'gaussian_1d' (1,)."
  ]
