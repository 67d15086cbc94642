"""Evaluators wired to runs and sample files: parzen, feature metrics, mode coverage, the CLI."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from scipy import special
from scipy.spatial.distance import cdist

import jaxgan
from conftest import experiment, needs_mnist, tiny_gaussian_config
from jaxgan import evaluators
from jaxgan.cli import plot_metric
from jaxgan.cli.export import export_samples
from jaxgan.data import build_dataset
from jaxgan.data.mixtures import ring_2d
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError, FeatureNetNotFoundError, UserError
from jaxgan.evaluators import evaluate
from jaxgan.feature_nets import lenet

GAUSSIAN = DataSpec((1,), name="gaussian_1d")
MNIST = DataSpec((28, 28, 1), num_classes=10, is_image=True, name="mnist")
CIFAR = DataSpec((32, 32, 3), num_classes=10, is_image=True, name="cifar10")
# Every registered evaluator: whether it needs a run's GAN (the others also score a file
# of samples), and data its preflight refuses, naming it (None: it refuses none).
EVALUATOR_CASES = {
  "gaussian_1d": (True, None),
  "samples": (True, None),
  "interpolation": (True, None),
  "nearest_neighbours": (True, None),
  "loss_curves": (True, None),
  "parzen": (False, GAUSSIAN),
  "parzen_valid": (True, GAUSSIAN),
  "fid": (False, GAUSSIAN),
  "kid": (False, GAUSSIAN),
  "is": (False, CIFAR),
  "precision_recall": (False, GAUSSIAN),
  "class_coverage": (False, CIFAR),
  "fid_intra": (True, GAUSSIAN),
  "mode_coverage": (False, MNIST),
  "mixture_2d": (False, MNIST),
  "stacked_mnist_modes": (False, MNIST),
}


def test_every_evaluator_declares_whether_it_needs_the_gan():
  assert set(EVALUATOR_CASES) == set(evaluators.EVALUATORS)
  for name, (needs_gan, _) in EVALUATOR_CASES.items():
    assert evaluators.EVALUATORS.get(name).needs_gan is needs_gan, name
  assert evaluators.without_gan() == sorted(n for n, (g, _) in EVALUATOR_CASES.items() if not g)


@pytest.mark.parametrize("name", sorted(EVALUATOR_CASES))
def test_each_evaluators_preflight_names_it_by_its_registered_name(name):
  spec = EVALUATOR_CASES[name][1]
  if spec is None:
    evaluators.preflight([name], experiment("gaussian_1d.py"), GAUSSIAN)
    return
  with pytest.raises(ConfigError) as e:
    evaluators.preflight([name], experiment("gaussian_1d.py"), spec)
  assert re.match(rf"config\.eval\.metrics: {name}[ :]", str(e.value)), str(e.value)


def test_is_on_a_sample_file_of_rgb_images_names_is(tmp_path):
  import tensorflow_datasets as tfds  # slow to import: only this test needs it

  path = tmp_path / "rgb.npz"
  np.savez(path, samples=np.zeros((4, 32, 32, 3), np.float32))
  with tfds.testing.mock_data(num_examples=4), pytest.raises(ConfigError) as e:
    evaluate.evaluate_samples(str(path), "cifar10", ["is"], data_dir=str(tmp_path))
  assert str(e.value) == (
    "config.eval.metrics: is needs the dataset's classifier, which jaxgan has for 28x28x1 "
    "data only; use fid, kid or precision_recall."
  )


def test_a_sample_file_takes_only_evaluators_that_need_no_gan(tmp_path):
  path = tmp_path / "ring.npz"
  np.savez(path, samples=np.zeros((16, 2), np.float32))
  with pytest.raises(ConfigError) as e:
    evaluate.evaluate_samples(str(path), "ring_2d", ["mode_coverage", "loss_curves"])
  assert str(e.value) == (
    "loss_curves needs a run's GAN (--workdir); --samples works with "
    f"{', '.join(evaluators.without_gan())}."
  )
  with pytest.raises(ConfigError, match=r"unknown evaluator 'mode_coverag'. Did you mean"):
    evaluate.evaluate_samples(str(path), "ring_2d", ["mode_coverag"])


def test_a_missing_workdir_is_named_as_missing(tmp_path):
  missing = str(tmp_path / "nowhere")
  message = (
    f"--workdir {missing} does not exist; give the directory a run was trained in "
    f"(jaxgan-train --workdir=...)."
  )
  for call in (evaluate.evaluate_run, evaluate.evaluate_best, lambda w: export_samples(w, 10)):
    with pytest.raises(ConfigError) as e:
      call(missing)
    assert str(e.value) == message


def _evaluate_cli(*flags):
  return subprocess.Popen(
    [sys.executable, "-m", "jaxgan.cli.evaluate", *flags],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def test_mode_coverage_of_a_run_is_written_per_step(tmp_path):
  missing = _evaluate_cli(f"--workdir={tmp_path / 'nowhere'}")
  c = experiment("mixtures_2d.py:smoke")
  jaxgan.train(c, str(tmp_path), progress=False)
  record = evaluate.evaluate_run(str(tmp_path), update={"eval.metrics": "mode_coverage"})
  saved = json.loads((tmp_path / "eval" / "20.json").read_text())
  assert saved["step"] == 20 and saved["metrics"] == record["metrics"]
  assert saved["metrics"]["modes_total"] == 8.0
  assert 0.0 <= saved["metrics"]["hq_fraction"] <= 1.0
  assert record["written_to"] == str(tmp_path / "eval" / "20.json") and "written_to" not in saved
  environment = saved["environment"]  # what it ran on (jaxgan.run.environment)
  assert environment["versions"]["jax"] and environment["device_count"] >= 1
  assert "model" in environment["cpu"] and "machine" not in saved
  # The program: the metrics on stdout, where it wrote them on stderr.
  out, err = _evaluate_cli(f"--workdir={tmp_path}", "--metrics=mode_coverage").communicate(
    timeout=300
  )
  assert json.loads(out) == record["metrics"]
  assert err.strip().splitlines()[-1] == f"wrote {tmp_path / 'eval' / '20.json'}"
  out, err = missing.communicate(timeout=300)
  assert missing.returncode == 2 and not out
  assert err.strip() == (
    f"jaxgan: error: --workdir {tmp_path / 'nowhere'} does not exist; give the directory a "
    "run was trained in (jaxgan-train --workdir=...)."
  )


def test_mode_coverage_of_planted_samples_at_the_mode_centres(tmp_path):
  centres = np.asarray(ring_2d().centers, np.float32)
  assert centres.shape == (8, 2)
  path = tmp_path / "planted.npz"
  np.savez(path, samples=np.repeat(centres, 100, axis=0))  # 100 per mode >= mode_min_count (20)
  record = evaluate.evaluate_samples(
    str(path), "ring_2d", ["mode_coverage", "mixture_2d"], output=str(tmp_path / "out.json")
  )
  m = record["metrics"]
  assert record["files"] == [str(tmp_path / "figures" / "mixture_2d_0000000.png")]
  assert os.path.exists(record["files"][0])
  assert m["modes_total"] == 8.0 and m["modes_covered"] == 8.0 and m["modes_with_any_hq"] == 8.0
  assert m["hq_fraction"] == 1.0
  assert m["mode_kl_uniform"] == pytest.approx(0.0, abs=1e-12)
  # Over half the mass on one mode and one mode dropped: both show up.
  skewed = np.concatenate(
    [np.repeat(centres[:1], 700, axis=0), np.repeat(centres[1:7], 100, axis=0)]
  )
  np.savez(path, samples=skewed)
  m = evaluate.evaluate_samples(str(path), "ring_2d", ["mode_coverage"])["metrics"]
  assert m["modes_covered"] == 7.0 and m["hq_fraction"] == 1.0
  share = np.array([700] + [100] * 6) / 1300
  assert m["mode_kl_uniform"] == pytest.approx(float(np.sum(share * np.log(share * 8))), rel=1e-9)


def numpy_parzen_protocol(samples, valid, test):
  """The protocol written independently: scipy distances and logsumexp, float64."""

  def ll(x, sigma):
    d2 = cdist(x.astype(np.float64), samples.astype(np.float64), "sqeuclidean")
    return (
      special.logsumexp(-d2 / (2 * sigma**2), axis=1)
      - np.log(len(samples))
      - x.shape[1] * np.log(sigma * np.sqrt(2 * np.pi))
    )

  sigmas = np.logspace(-1, 0, 10)
  best = sigmas[int(np.argmax([ll(valid, s).mean() for s in sigmas]))]
  scores = ll(test, best)
  return scores.mean(), scores.std() / np.sqrt(len(scores)), best


@pytest.fixture(scope="module")
def mnist_data_dir(mnist_tfds_dir):
  return mnist_tfds_dir


@needs_mnist
def test_parzen_of_a_sample_file_agrees_with_independent_numpy(mnist_data_dir, tmp_path):
  c = experiment("mnist_gan.py")
  c.data.data_dir = mnist_data_dir
  train = build_dataset(c.data).load_all()
  order = np.argsort(train["index"])
  images = train["x"][order].reshape(60_000, -1).astype(np.float32) / 255.0
  rng = np.random.default_rng(0)
  # "Samples": noisy training digits (a stand-in generator), 500 of them (the protocol's 10,000
  # cost 4x more time and test nothing more).
  samples = np.clip(
    images[rng.choice(50_000, 500, replace=False)] + rng.normal(0, 0.1, (500, 784)), 0, 1
  )
  path = tmp_path / "samples.npz"
  np.savez(path, samples=samples.reshape(-1, 28, 28, 1).astype(np.float32))
  record = evaluate.evaluate_samples(
    str(path), "mnist", ["parzen"], data_dir=mnist_data_dir, output=str(tmp_path / "out.json")
  )
  test = build_dataset(c.data, split="test").load_all()
  test_x = test["x"][np.argsort(test["index"])].reshape(10_000, -1).astype(np.float32) / 255.0
  mean, se, sigma = numpy_parzen_protocol(samples, images[50_000:51_000], test_x)
  m = record["metrics"]
  assert m["parzen_sigma"] == pytest.approx(sigma)
  assert m["parzen_ll"] == pytest.approx(mean, abs=1e-2)  # measured gap ~3e-5 (ll ~131)
  assert m["parzen_se"] == pytest.approx(se, rel=1e-3)
  assert json.loads((tmp_path / "out.json").read_text())["metrics"]["parzen_ll"] == m["parzen_ll"]


@pytest.fixture(scope="module")
def quick_lenet(tmp_path_factory, mnist_data_dir):
  """A LeNet trained on 3,000 images for one epoch: enough to exercise the metrics."""
  c = experiment("mnist_gan.py")
  c.data.data_dir = mnist_data_dir
  data = build_dataset(c.data).load_all()
  params = lenet.train_lenet(data["x"][:3000], data["y"][:3000], epochs=1)
  workdir = str(tmp_path_factory.mktemp("lenet"))
  lenet.save(workdir, params, {"dataset": "mnist", "id": lenet.params_id(params)})
  return workdir


@needs_mnist
@pytest.mark.slow
def test_feature_metrics_on_a_real_mnist_run(quick_lenet, mnist_data_dir, tmp_path):
  c = experiment("mnist_cgan.py:smoke")
  c.data.data_dir = mnist_data_dir
  c.eval.update(
    metrics="",
    feature_net=quick_lenet,
    stats_cache_dir=str(tmp_path / "cache"),
    num_samples=600,
    kid_subsets=5,
    kid_subset_size=200,
  )
  jaxgan.train(c, str(tmp_path / "run"), progress=False)
  names = "fid,kid,is,precision_recall,class_coverage"
  record = evaluate.evaluate_run(str(tmp_path / "run"), update={"eval.metrics": names})
  m = record["metrics"]
  assert m["fid"] > 0 and np.isfinite(m["kid"]) and 1.0 <= m["is"] <= 10.0
  assert 0.0 <= m["precision"] <= 1.0 and 0.0 <= m["recall"] <= 1.0
  assert sum(m[f"class_share_{i}"] for i in range(10)) == pytest.approx(1.0)
  cached = os.listdir(tmp_path / "cache")
  assert len(cached) == 1 and re.fullmatch(r"mnist-test-lenet-[0-9a-f]{16}\.npz", cached[0])
  # The record names the reference its feature metrics were measured against.
  assert re.fullmatch(r"mnist test 10000 28x28x1 lenet:[0-9a-f]{8}", record["references"]["test"])


@needs_mnist
def test_real_test_images_score_as_real(quick_lenet, mnist_data_dir, tmp_path):
  c = experiment("mnist_gan.py")
  c.data.data_dir = mnist_data_dir
  test = build_dataset(c.data, split="test").load_all()
  path = tmp_path / "real.npz"
  np.savez(path, samples=test["x"].astype(np.float32) / 255.0)
  m = evaluate.evaluate_samples(
    str(path),
    "mnist",
    ["fid", "precision_recall", "class_coverage"],
    data_dir=mnist_data_dir,
    update={"eval.feature_net": quick_lenet, "eval.stats_cache_dir": str(tmp_path / "c")},
  )["metrics"]
  assert m["fid"] == pytest.approx(0.0, abs=1e-6)  # the same images: identical statistics
  assert m["precision"] == 1.0 and m["recall"] == 1.0
  assert m["class_kl_uniform"] < 0.05  # vs log(10) = 2.3 for one class


def test_missing_feature_net_fails_before_training(tmp_path, monkeypatch):
  # The preflight check needs only the data's shape, not the data: no MNIST here.
  monkeypatch.delenv(lenet.ENV, raising=False)
  c = experiment("mnist_gan.py:smoke")
  c.eval.feature_net = ""
  mnist = DataSpec((28, 28, 1), num_classes=10, is_image=True, name="mnist")
  with pytest.raises(
    FeatureNetNotFoundError, match=r"python -m jaxgan.feature_nets.lenet --workdir=DIR"
  ) as e:
    evaluators.preflight(["fid"], c, mnist)
  assert isinstance(e.value, UserError)  # printed without a traceback by the CLI
  assert "no trained LeNet at '(unset)'" in str(e.value)
  assert "config.eval.feature_net=DIR" in str(e.value)
  # A directory without a trained LeNet is named in the message.
  c.eval.feature_net = str(tmp_path)
  with pytest.raises(FeatureNetNotFoundError, match=re.escape(f"no trained LeNet at '{tmp_path}'")):
    evaluators.preflight(["fid"], c, mnist)
  # build_experiment runs the same preflight, before anything is compiled or trained
  # (shown on data that needs no files: fid has no feature net for 1-D samples).
  g = tiny_gaussian_config()
  g.eval.metrics = "fid"
  with pytest.raises(
    ConfigError, match=re.escape("feature metrics need 28x28x1 (or 32x32x1 padded) or RGB images")
  ):
    jaxgan.build_experiment(g)


def test_raw_metrics_score_g_own_weights_beside_its_ema(tmp_path):
  """eval.raw_metrics logs raw/<scalar> from G's own weights; evaluate --weights=raw repeats it."""
  c = experiment("gaussian_1d.py:smoke")  # EMA decay 0.999: far behind G after 20 steps
  c.eval.raw_metrics = "gaussian_1d"
  jaxgan.train(c, str(tmp_path), progress=False)
  logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  last = [r for r in logged if "w1" in r][-1]
  assert last["step"] == 20 and last["raw/w1"] != last["w1"]  # two different generators
  assert (tmp_path / "raw" / "figures" / "density_1d_0000020.png").exists()
  ema = evaluate.evaluate_run(str(tmp_path))
  raw = evaluate.evaluate_run(str(tmp_path), weights="raw")
  assert ema["metrics"]["w1"] == last["w1"] and ema["weights"] == "ema"
  assert raw["metrics"]["w1"] == last["raw/w1"] and raw["weights"] == "raw"
  assert (tmp_path / "eval" / "20_raw.json").exists() and (tmp_path / "eval" / "20.json").exists()
  assert "raw/w1" not in raw["metrics"]  # evaluate runs the metrics it is given, once
  # The results pages' figure: each run's curve with G's raw weights dashed beside it.

  plain = plot_metric.plot(str(tmp_path), "w1", str(tmp_path / "plain.png"), mode="min")
  both = plot_metric.plot(
    [str(tmp_path)] * 2, "w1", str(tmp_path / "both.png"), mode="min", dashed="raw/w1"
  )
  assert Image.open(both).size == Image.open(plain).size == (640, 380)
  assert not np.array_equal(np.asarray(Image.open(both)), np.asarray(Image.open(plain)))


def test_weights_raw_on_a_run_without_ema_says_so(tmp_path):
  c = experiment("mixtures_2d.py:smoke")
  jaxgan.train(c, str(tmp_path), progress=False)
  with pytest.raises(
    ConfigError,
    match=r"keeps no EMA of G, so its samples already come from G's "
    r"own weights: drop --weights=raw.",
  ):
    evaluate.evaluate_run(str(tmp_path), update={"eval.metrics": "mode_coverage"}, weights="raw")
