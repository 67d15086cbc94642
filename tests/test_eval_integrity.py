"""Evaluation compares against the right statistics: cache keys, the LeNet's data, P/R."""

import json
import os
import re
import shutil

import jax
import numpy as np
import pytest
from scipy.spatial.distance import cdist

import jaxgan
from conftest import experiment, needs_mnist
from jaxgan import evaluators
from jaxgan.config import base_config
from jaxgan.data.spec import DataSpec
from jaxgan.errors import FeatureNetMismatchError, UserError
from jaxgan.evaluators import EvalContext, feature_metrics
from jaxgan.feature_nets import lenet
from jaxgan.metrics import precision_recall as pr
from jaxgan.metrics.distances import sq_dists

MNIST = DataSpec((28, 28, 1), num_classes=10, is_image=True, name="mnist")
FASHION = DataSpec((28, 28, 1), num_classes=10, is_image=True, name="fashion_mnist")


# --- precision/recall: a common offset must not change the decisions ------------------------


def float64_pr(real, fake, k=3):
  """The definition, in float64 with scipy's distances."""
  rr = np.sort(cdist(real, real, "sqeuclidean"), 1)[:, k]
  ff = np.sort(cdist(fake, fake, "sqeuclidean"), 1)[:, k]
  return (
    float(np.mean((cdist(fake, real, "sqeuclidean") <= rr[None]).any(1))),
    float(np.mean((cdist(real, fake, "sqeuclidean") <= ff[None]).any(1))),
  )


def test_precision_recall_ignores_a_large_common_offset():
  rng = np.random.default_rng(0)
  real = rng.normal(size=(200, 16))
  fake = np.concatenate([rng.normal(size=(100, 16)), rng.normal(1.5, 1, size=(100, 16))])
  expected = float64_pr(real, fake)
  assert expected == (0.42, 0.775)
  assert pr.precision_recall(real.astype(np.float32), fake.astype(np.float32)) == expected
  # Offset 1000x the spread: |a|^2 - 2ab + |b|^2 in float32 gave (0.455, 0.785) before centring.
  shifted = pr.precision_recall((real + 1000).astype(np.float32), (fake + 1000).astype(np.float32))
  assert shifted == expected
  # sq_dists centres too, for its other callers: errors stay small against the distances (~32).
  a, b = (real + 1000).astype(np.float32), (fake + 1000).astype(np.float32)
  exact = cdist(a.astype(np.float64), b.astype(np.float64), "sqeuclidean")
  assert np.abs(np.asarray(sq_dists(a, b)) - exact).max() < 1e-3  # was ~1 before


# --- the real-statistics cache: keyed on everything that changes the real features ------------


class FakeImages:
  """A dataset stand-in whose test images depend on ``crop``, as CelebA's would."""

  def __init__(self, crop, size=40, split="train"):
    self.name, self.split, self.crop, self.size = "celeb_a", split, crop, size
    self.spec = DataSpec((4, 4, 3), is_image=True, name="celeb_a")

  def __len__(self):
    return self.size

  def other_split(self, split):
    return FakeImages(self.crop, self.size, split)

  def load_all(self):
    x = np.random.default_rng(self.crop).integers(0, 256, (self.size, 4, 4, 3), dtype=np.uint8)
    return {"x": x, "y": np.zeros(self.size, np.int32), "index": np.arange(self.size)}


class FakeNet:
  """A feature-net stand-in: counts the images it is asked to featurise."""

  kind = "inception"

  def __init__(self, weights_id="w1"):
    self.id, self.calls = weights_id, 0

  def __call__(self, images, progress=None, label=""):
    self.calls += 1
    return images.reshape(len(images), -1)[:, :6].astype(np.float32), None


def real_stats(cache, net, crop=108, size=40, **data):
  c = base_config(model="mlp", data="celeb_a")
  c.data.update(crop=crop, **data)
  c.eval.stats_cache_dir = str(cache)
  ctx = EvalContext(
    config=c, gan=None, state=None, dataset=FakeImages(crop, size), step=0, workdir=None, rng=None
  )
  ctx.shared["feature_net"] = net
  return feature_metrics.real_features(ctx)["mu"]


def test_stats_cache_is_keyed_on_what_changes_the_real_features(tmp_path):
  net = FakeNet()
  mu_108 = real_stats(tmp_path, net, crop=108)
  files = os.listdir(tmp_path)
  assert net.calls == 1
  # Another crop: other images. The old key (dataset-split-kind-net) read crop 108's statistics.
  mu_128 = real_stats(tmp_path, net, crop=128)
  assert net.calls == 2 and not np.allclose(mu_128, mu_108)
  assert len(files) == 1 and re.fullmatch(r"celeb_a-test-inception-[0-9a-f]{16}\.npz", files[0])
  # Same config again: read from disk, not recomputed.
  np.testing.assert_array_equal(real_stats(tmp_path, net, crop=108), mu_108)
  assert net.calls == 2
  # Where the files are and how they are read do not change the images: same file.
  real_stats(tmp_path, net, crop=108, data_dir="/elsewhere", num_workers=1, pixel_range="zero_one")
  assert net.calls == 2
  # Other weights, another image size, another number of real examples: recomputed each time.
  real_stats(tmp_path, FakeNet("w2"), crop=108)
  real_stats(tmp_path, net, crop=108, image_size=32)
  real_stats(tmp_path, net, crop=108, size=30)
  assert net.calls == 4 and len(os.listdir(tmp_path)) == 5
  # The key is stored in the file, in the clear.
  with np.load(tmp_path / files[0]) as f:
    key = json.loads(str(f["key"]))
  assert key["data"]["crop"] == 108 and key["split"] == "test" and key["count"] == 40
  assert key["weights"] == "w1" and "data_dir" not in key["data"]


# --- the LeNet: refused on a dataset it was not trained on -------------------------------------


@pytest.fixture(scope="module")
def lenets(tmp_path_factory):
  """Untrained LeNet weights under lenet.json files that claim various datasets."""
  root = tmp_path_factory.mktemp("lenets")
  rng = np.random.default_rng(0)  # shapes from eval_shape: initialising for real takes seconds
  params = jax.tree.map(
    lambda s: rng.normal(0, 0.05, s.shape).astype(s.dtype),
    jax.eval_shape(lenet.init_params, jax.random.PRNGKey(0)),
  )
  ident = lenet.params_id(params)
  lenet.save(
    str(root / "mnist"), params, {"dataset": "mnist", "image_shape": [28, 28, 1], "id": ident}
  )
  infos = {
    "fashion": {"dataset": "fashion_mnist", "id": ident},
    "legacy": {"id": ident},
    "stale": {"dataset": "mnist", "id": "0123456789ab"},
  }
  for name, info in infos.items():
    shutil.copytree(root / "mnist" / "checkpoint", root / name / "checkpoint")
    (root / name / "lenet.json").write_text(json.dumps(info))
  return {name: str(root / name) for name in ("mnist", *infos)}


def fid_config(feature_net):
  c = experiment("mnist_gan.py:smoke")
  c.eval.update(metrics="fid", feature_net=feature_net)
  return c


def test_lenet_of_another_dataset_is_refused(lenets):
  c = fid_config(lenets["fashion"])
  with pytest.raises(FeatureNetMismatchError) as e:
    evaluators.preflight(["fid"], c, MNIST)
  msg = str(e.value)
  assert isinstance(e.value, UserError) and "\n" not in msg
  assert msg == (
    f"the LeNet at {lenets['fashion']!r} was trained on 'fashion_mnist', but this run's data "
    f"'mnist' needs one trained on 'mnist': train it, offline, in a few minutes: "
    f"python -m jaxgan.feature_nets.lenet --workdir=DIR (with $JAXGAN_MNIST_DIR set), "
    f"then set config.eval.feature_net=DIR."
  )
  evaluators.preflight(["fid", "is"], c, FASHION)  # its own dataset: accepted
  with pytest.raises(
    FeatureNetMismatchError, match=r"--dataset=fashion_mnist \(with \$JAXGAN_FASHION_MNIST_DIR"
  ):
    evaluators.preflight(["fid"], fid_config(lenets["mnist"]), FASHION)
  # Loading checks too (evaluators that skip the preflight, e.g. a run evaluated later).
  with pytest.raises(FeatureNetMismatchError, match="was trained on 'fashion_mnist'"):
    lenet.LeNetFeatures.load(lenets["fashion"], "mnist")
  assert (
    lenet.LeNetFeatures.load(lenets["fashion"], "fashion_mnist").id
    == lenet.LeNetFeatures.load(lenets["mnist"], "mnist").id
  )
  # Stacked MNIST reads MNIST digits from each channel.
  stacked = DataSpec((28, 28, 3), num_classes=1000, is_image=True, name="stacked_mnist")
  with pytest.raises(
    FeatureNetMismatchError, match="'stacked_mnist', whose channels are mnist digits, needs"
  ):
    evaluators.preflight(["stacked_mnist_modes"], fid_config(lenets["fashion"]), stacked)
  evaluators.preflight(["stacked_mnist_modes"], fid_config(lenets["mnist"]), stacked)
  # A 28x28x1 dataset jaxgan cannot train a LeNet for.
  kmnist = DataSpec((28, 28, 1), num_classes=10, is_image=True, name="kmnist")
  with pytest.raises(
    FeatureNetMismatchError, match="trains LeNets for mnist and fashion_mnist only: drop"
  ):
    evaluators.preflight(["fid"], c, kmnist)


def test_lenet_without_a_recorded_dataset_is_mnist_only(lenets):
  c = fid_config(lenets["legacy"])
  with pytest.warns(UserWarning, match="does not record its training dataset; taking it as mnist"):
    evaluators.preflight(["fid"], c, MNIST)
  with pytest.raises(
    FeatureNetMismatchError,
    match="was trained on an unrecorded dataset, but this run's data 'fashion_mnist'",
  ):
    evaluators.preflight(["fid"], c, FASHION)


def test_lenet_json_must_describe_the_checkpoint(lenets):
  with pytest.raises(FeatureNetMismatchError, match="lenet.json describes weights 0123456789ab"):
    lenet.LeNetFeatures.load(lenets["stale"], "mnist")


@needs_mnist
def test_lenet_mismatch_stops_a_run_before_training(lenets, mnist_tfds_dir, tmp_path):
  c = fid_config(lenets["fashion"])
  c.data.data_dir = mnist_tfds_dir
  with pytest.raises(FeatureNetMismatchError, match="was trained on 'fashion_mnist'"):
    jaxgan.train(c, str(tmp_path / "run"), progress=False)
  assert not (tmp_path / "run").exists()  # nothing written, nothing trained
