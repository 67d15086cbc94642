"""Model selection on validation data: eval.select, the kept best checkpoint, evaluate --best,
and the validation Parzen that never reads the test split."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

import jaxgan
from conftest import experiment, needs_mnist, tiny_gaussian_config
from jaxgan import config as config_lib
from jaxgan import evaluators
from jaxgan.cli import plot_metric
from jaxgan.errors import ConfigError
from jaxgan.evaluators import evaluate
from jaxgan.run import checkpointing, selection


def _save_all(workdir, planted, *, members=1, mode="max", max_to_keep=1):
  sel = selection.Selection("v", mode)
  with checkpointing.Checkpointer(
    workdir, max_to_keep=max_to_keep, selection=sel, members=members
  ) as ckpt:
    for step, values in planted.items():
      metrics = None
      if values is not None:
        metrics = {"v": float(np.mean(values))}
        if members > 1:
          metrics.update({f"v:{m}": float(v) for m, v in enumerate(values)})
      ckpt.save(step, {"w": jnp.full((3,), float(step))}, {"iteration": step}, {"c": 1}, metrics)
    ckpt.wait()
    return sorted(ckpt.all_steps()), ckpt.best_steps()


def test_the_best_planted_step_is_kept_beside_the_newest_and_survives_resume(tmp_path):
  wd = str(tmp_path / "run")
  kept, best = _save_all(wd, {10: [1.0], 20: [5.0], 30: [2.0], 40: None, 50: [0.5]})
  assert kept == [20, 50] and best == [20]  # 40 had no evaluation: not a candidate
  # A resumed run (a new manager on the same directory) keeps comparing with the old best.
  kept, best = _save_all(wd, {60: [4.0], 70: [6.0], 80: [3.0]})
  assert kept == [70, 80] and best == [70]
  with checkpointing.Checkpointer(wd, read_only=True, selection=selection.Selection("v")) as ckpt:
    assert ckpt.best_steps() == [70]
    state, _ = ckpt.restore(70, {"w": jnp.zeros((3,))})
  np.testing.assert_array_equal(np.asarray(state["w"]), [70.0, 70.0, 70.0])


def test_each_member_keeps_its_own_best_and_min_mode_picks_the_smallest(tmp_path):
  planted = {10: [1.0, 9.0], 20: [5.0, 2.0], 30: [2.0, 8.0], 40: [3.0, 3.0]}
  kept, best = _save_all(str(tmp_path / "max"), planted, members=2)
  assert best == [20, 10] and kept == [10, 20, 40]
  kept, best = _save_all(str(tmp_path / "min"), planted, members=2, mode="min")
  assert best == [10, 20] and kept == [10, 20, 40]


def test_select_specs_are_checked_in_one_line():
  assert selection.parse("parzen_valid:max") == selection.Selection("parzen_valid", "max")
  assert selection.parse("") is None
  with pytest.raises(
    ConfigError,
    match=r"^config.eval.select='parzen_valid' must be "
    r"'<scalar>:max' or '<scalar>:min', e.g. 'parzen_valid:max'.$",
  ):
    selection.parse("parzen_valid")
  c = tiny_gaussian_config()
  c.eval.select = "w1:min"
  with pytest.raises(
    ConfigError,
    match=r"config.eval.select='w1:min' needs an evaluator that gives "
    r"it in config.eval.metrics",
  ):
    config_lib.validate(c)
  with pytest.raises(
    ConfigError,
    match=r"^config.eval.select names 'fid' but the evaluation gave "
    r"ks, w1; fix config.eval.select.$",
  ):
    selection.checkpoint_metrics(selection.Selection("fid"), {"w1": 0.1, "ks": 0.2}, 1)


def _logged(workdir, key):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f if line.strip()]
  return {r["step"]: r[key] for r in records if key in r}


def test_a_run_keeps_the_argmin_of_its_evaluations_across_resume_and_evaluate_best_uses_it(
  tmp_path,
):
  wd = str(tmp_path / "run")
  c = tiny_gaussian_config(steps=8, checkpoint_every=100, max_to_keep=1)
  c.eval.update(metrics="gaussian_1d", every=2, num_samples=256, select="w1:min")
  jaxgan.train(c, wd, progress=False)
  c.train.steps = 14
  jaxgan.train(c, wd, progress=False)
  w1 = _logged(wd, "w1")
  assert sorted(w1) == [2, 4, 6, 8, 10, 12, 14]
  best = min(w1, key=lambda s: (w1[s], s))
  with checkpointing.Checkpointer(wd, read_only=True) as ckpt:
    assert sorted(ckpt.all_steps()) == sorted({best, 14})
  record = evaluate.evaluate_best(wd)
  assert record["step"] == best and record["selected_by"] == "w1:min"
  assert record["metrics"]["w1"] == pytest.approx(w1[best], rel=1e-5)
  assert os.path.exists(os.path.join(wd, "eval", "best.json"))


def test_a_population_keeps_each_seeds_best_and_evaluates_each_at_its_own(tmp_path):
  wd = str(tmp_path / "pop")
  c = tiny_gaussian_config(steps=8, checkpoint_every=100, max_to_keep=1, num_seeds=2)
  c.eval.update(metrics="gaussian_1d", every=2, num_samples=256, select="w1:min")
  jaxgan.train(c, wd, progress=False)
  per_member = [_logged(wd, f"w1:{m}") for m in range(2)]
  bests = [min(w, key=lambda s: (w[s], s)) for w in per_member]
  with checkpointing.Checkpointer(wd, read_only=True) as ckpt:
    assert sorted(ckpt.all_steps()) == sorted(set(bests) | {8})
  record = evaluate.evaluate_best(wd)
  assert record["steps"] == bests
  for m in range(2):
    assert record["metrics"][f"w1:{m}"] == pytest.approx(per_member[m][bests[m]], rel=1e-5)
  # The selection curve of every seed, as the README's figure is made.
  png = plot_metric.plot(wd, "w1", str(tmp_path / "w1.png"), mode="min", references={"paper": 0.1})
  from PIL import Image

  assert Image.open(png).size == (640, 380)
  with pytest.raises(ConfigError, match=r"metrics.jsonl has no 'fid'; it has .*w1"):
    plot_metric.plot(wd, "fid", str(tmp_path / "fid.png"))


def test_a_misnamed_selection_metric_stops_after_saving_that_step(tmp_path):
  wd = str(tmp_path / "typo")
  c = tiny_gaussian_config(steps=4, checkpoint_every=100)
  c.eval.update(metrics="gaussian_1d", every=2, num_samples=256, select="fid:min")
  with pytest.raises(
    ConfigError,
    match=r"^config.eval.select names 'fid' but the evaluation gave "
    r".*w1.*; fix config.eval.select.$",
  ):
    jaxgan.train(c, wd, progress=False)
  with checkpointing.Checkpointer(wd, read_only=True) as ckpt:
    assert ckpt.all_steps() == [2]  # the evaluated step is kept, without metrics


def test_evaluate_best_without_a_selection_says_what_to_do(tmp_path):
  wd = str(tmp_path / "plain")
  jaxgan.train(tiny_gaussian_config(), wd, progress=False)
  with pytest.raises(
    ConfigError,
    match="this run has no config.eval.select, so it kept no best checkpoint; evaluate --step=N",
  ):
    evaluate.evaluate_best(wd)


def test_parzen_valid_refuses_to_score_images_it_trains_on():
  c = experiment("mnist_gan.py")
  c.eval.metrics = "parzen_valid"
  from jaxgan.data.spec import DataSpec

  spec = DataSpec(shape=(28, 28, 1), num_classes=10, is_image=True, name="mnist")
  with pytest.raises(
    ConfigError,
    match=r"parzen_valid scores training images 50,000-59,999, which "
    r"config.data.train_range=\(\) trains on",
  ):
    evaluators.preflight(["parzen_valid"], c, spec)
  c.data.train_range = (0, 50_000)
  evaluators.preflight(["parzen_valid"], c, spec)


@needs_mnist
def test_parzen_valid_never_reads_the_test_split_and_matches_numpy(mnist_tfds_dir, monkeypatch):
  from jax import random
  from test_evaluate import numpy_parzen_protocol

  from jaxgan.data import build_dataset, images

  c = experiment("mnist_gan.py:paper_code")
  c.data.data_dir = mnist_tfds_dir
  c.eval.parzen_valid_samples = 300
  ds = build_dataset(c.data)
  opened = []
  real_reopen = images.ImageDataset.other_split
  monkeypatch.setattr(
    images.ImageDataset,
    "other_split",
    lambda self, split: opened.append(split) or real_reopen(self, split),
  )
  data = ds.load_all()
  flat = data["x"][np.argsort(data["index"])].reshape(60_000, -1).astype(np.float32) / 255.0
  rng = np.random.default_rng(0)
  samples = np.clip(
    flat[rng.choice(50_000, 400, replace=False)] + rng.normal(0, 0.1, (400, 784)), 0, 1
  )
  ctx = evaluators.EvalContext(
    config=c, gan=None, state=None, dataset=ds, step=0, workdir=None, rng=random.PRNGKey(0)
  )
  ctx.cache["generated"] = (samples.reshape(-1, 28, 28, 1).astype(np.float32), None)
  out = evaluators.run_evaluators(["parzen_valid"], ctx).scalars
  assert opened == []  # no other split was opened: never the test images
  mean, se, sigma = numpy_parzen_protocol(samples[:300], flat[50_000:51_000], flat[51_000:60_000])
  assert out["parzen_valid_sigma"] == pytest.approx(sigma)
  assert out["parzen_valid"] == pytest.approx(mean, abs=1e-2)
  assert out["parzen_valid_se"] == pytest.approx(se, rel=1e-3)
