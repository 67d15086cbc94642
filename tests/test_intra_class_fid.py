"""fid_intra: per-class FIDs of a conditional G, checked against an independent numpy
computation, their mean, the per-class reference cache and the one-line refusals."""

import os
from types import SimpleNamespace

import jax
import numpy as np
import pytest

from conftest import experiment
from jaxgan import evaluators
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError
from jaxgan.evaluators import feature_metrics, intra_class

SPEC = DataSpec((28, 28, 1), num_classes=3, is_image=True, name="mnist")
COUNTS = (5, 7, 9)  # reference images per class: each class gets as many samples


class FakeNet:
  """Features: the first three pixels, so every number can be recomputed by hand."""

  kind, id = "lenet", "feedfacecafe0123"

  def __init__(self):
    self.calls = 0

  def __call__(self, images, progress=None, label=""):
    self.calls += 1
    return np.asarray(images, np.float64).reshape(len(images), -1)[:, :3], None


class FakeSampler:
  """G(z, y) = tanh(z / 2 + 0.3 y - 0.3) in [-1, 1]; records what it was asked and gave."""

  def __init__(self):
    self.calls = []

  def noise(self, key, n):
    return jax.random.normal(key, (n, *SPEC.shape))

  def from_noise(self, state, z, labels, *, key=None):
    x = np.tanh(np.asarray(z, np.float64) / 2 + 0.3 * labels[:, None, None, None] - 0.3)
    self.calls.append((labels.copy(), x))
    return x


class FakeDataset:
  name, split, spec = "mnist", "train", SPEC

  def __len__(self):
    return sum(COUNTS)


def make_ctx(tmp_path, conditional=True):
  config = experiment("mnist_gan.py")
  config.eval.stats_cache_dir = str(tmp_path / "stats")
  rng = np.random.default_rng(0)
  y = rng.permutation(np.repeat(np.arange(3), COUNTS)).astype(np.int32)
  x = rng.integers(0, 256, (len(y), *SPEC.shape)).astype(np.uint8)
  x[..., :3, 0] = np.clip(x[..., :3, 0] // 2 + 60 * y[:, None, None], 0, 255)
  ctx = evaluators.EvalContext(
    config=config,
    gan=SimpleNamespace(conditional=conditional, nets=SimpleNamespace(output_range=(-1.0, 1.0))),
    state=None,
    dataset=FakeDataset(),
    step=0,
    workdir=None,
    rng=jax.random.PRNGKey(0),
    sampler=FakeSampler(),
  )
  ctx.shared["real_train"] = {"x": x, "y": y, "index": np.arange(len(y))}
  ctx.shared["feature_net"] = FakeNet()
  return ctx, x, y


def numpy_fid(a, b):
  """Fréchet distance of two samples' Gaussians: Tr((S1 S2)^1/2) as the sum of the square
  roots of S1 S2's eigenvalues (real and >= 0 for PSD S1, S2), no scipy."""
  m1, m2 = a.mean(0), b.mean(0)
  s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  root = np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)).sum()
  return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * root)


def test_per_class_fids_and_their_mean_match_numpy(tmp_path):
  ctx, x, y = make_ctx(tmp_path)
  scalars = evaluators.run_evaluators(["fid_intra"], ctx).scalars
  assert set(scalars) == {"fid_intra", "fid_intra/0", "fid_intra/1", "fid_intra/2"}
  expected = []
  for c, (labels, out) in enumerate(ctx.sampler.calls):
    assert len(labels) == COUNTS[c] and (labels == c).all()  # as many samples as references
    fake = np.clip((out + 1) / 2, 0, 1).reshape(len(out), -1)[:, :3]
    real = (x[y == c] / 255.0).reshape(COUNTS[c], -1)[:, :3]
    expected.append(numpy_fid(fake, real))
  assert len(expected) == 3 and len(set(expected)) == 3
  np.testing.assert_allclose([scalars[f"fid_intra/{c}"] for c in range(3)], expected, rtol=1e-5)
  np.testing.assert_allclose(scalars["fid_intra"], np.mean(expected), rtol=1e-5)
  # The record names the split and classes the references come from.
  protocol = "mnist train class 0-2 5-9 28x28x1 lenet:feedface"
  assert ctx.shared["reference_protocols"] == {"train per class": protocol}
  assert ctx.shared["class_features_train_protocols"][1] == (
    "mnist train class 1 7 28x28x1 lenet:feedface"
  )


def test_class_statistics_are_cached_under_a_key_that_names_the_class(tmp_path):
  ctx, _, _ = make_ctx(tmp_path)
  first = intra_class.fid_intra(ctx).scalars
  paths = [feature_metrics.class_stats_path(ctx, "train", c) for c in range(3)]
  whole, whole_key = feature_metrics.stats_path(ctx, "train")
  assert len({p for p, _ in paths} | {whole}) == 4
  for c, (path, key) in enumerate(paths):
    assert key == {**whole_key, "class": c} and os.path.basename(path).startswith(
      f"mnist-train-class{c}-lenet-"
    )
  assert sorted(os.listdir(tmp_path / "stats")) == sorted(os.path.basename(p) for p, _ in paths)
  # A fresh evaluation reads them: the real images are not looked at again.
  again, _, _ = make_ctx(tmp_path)
  del again.shared["real_train"]  # FakeDataset cannot load it
  assert intra_class.fid_intra(again).scalars == first
  assert again.shared["feature_net"].calls == 3  # the generated classes only


def test_unconditional_runs_and_data_without_labels_are_refused_in_one_line(tmp_path):
  config = experiment("mnist_gan.py")
  assert not config.model.conditional
  why = "config.eval.metrics: fid_intra compares each class's samples with that class's real images"
  with pytest.raises(ConfigError) as e:
    evaluators.preflight(["fid_intra"], config, SPEC)
  assert str(e.value) == (
    f"{why}, and this run is unconditional (config.model.conditional=False); use fid."
  )
  config.model.conditional = True
  with pytest.raises(ConfigError) as e:
    evaluators.preflight(["fid_intra"], config, DataSpec((2,), name="ring_2d"))
  assert str(e.value) == f"{why}, and dataset 'ring_2d' has no labels; use fid."
  ctx, _, _ = make_ctx(tmp_path, conditional=False)
  ctx.shared["real_train"] = ctx.sampler = None  # refused before any work
  with pytest.raises(ConfigError, match="this run is unconditional"):
    intra_class.fid_intra(ctx)


def test_reference_stats_per_class_writes_the_files_fid_intra_reads(tmp_path, monkeypatch):
  import jaxgan.data
  from jaxgan.cli import reference_stats

  ctx, x, y = make_ctx(tmp_path)
  with pytest.raises(ConfigError) as e:  # before the data is opened
    reference_stats.reference_stats(ctx.config, "train", 10, per_class=True)
  assert str(e.value) == (
    "--num with --per_class: fid_intra compares against whole classes; leave --num out."
  )

  class Train(FakeDataset):
    def load_all(self):
      return {"x": x, "y": y, "index": np.arange(len(y))}

  monkeypatch.setattr(jaxgan.data, "build_dataset", lambda data, **kw: Train())
  monkeypatch.setattr(feature_metrics, "check_feature_net", lambda config, spec: "lenet")
  monkeypatch.setattr(feature_metrics, "_Net", lambda ctx: FakeNet())
  ref = reference_stats.reference_stats(ctx.config, "train", per_class=True)
  assert ref.protocol == "mnist train class 0-2 5-9 28x28x1 lenet:feedface" and not ref.cached
  assert ref.path == feature_metrics.class_stats_path(ctx, "train", 0)[0]
  assert len(os.listdir(tmp_path / "stats")) == 3
  del ctx.shared["real_train"]  # fid_intra reads the files
  np.testing.assert_allclose(
    intra_class.fid_intra(ctx).scalars["fid_intra"],
    intra_class.fid_intra(make_ctx(tmp_path / "fresh")[0]).scalars["fid_intra"],
    rtol=1e-12,
  )
  assert reference_stats.reference_stats(ctx.config, "train", per_class=True).cached
