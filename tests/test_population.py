"""Many runs in one program (jaxgan.core.population): each member is the run it stands for."""

import json
import os

import jax
import numpy as np
import pytest

from conftest import tiny_gaussian_config
from jaxgan import config as config_lib
from jaxgan.core import population
from jaxgan.errors import ConfigError, NonFiniteLossError
from jaxgan.evaluators.evaluate import evaluate_members, evaluate_state
from jaxgan.experiment import build_experiment
from jaxgan.run.loop import train


def _assert_trees(a, b, exact=True):
  la, lb = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)
  assert [p for p, _ in la] == [p for p, _ in lb]
  for (path, x), (_, y) in zip(la, lb):
    if exact:
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=str(path))
    else:
      np.testing.assert_allclose(
        np.asarray(x), np.asarray(y), rtol=2e-5, atol=2e-6, err_msg=str(path)
      )


def _member(state, i):
  return population.member_state(state, i).replace(hparams=None)


@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory):
  """S=3 trained for 2 steps, stopped, resumed to 4 (checkpoints every 2), and the
  matching uninterrupted single runs."""
  root = tmp_path_factory.mktemp("seeds")
  cfg = tiny_gaussian_config(steps=4, num_seeds=3)
  cfg.seed = 5
  first = cfg.copy_and_resolve_references()
  first.train.steps = 2
  train(first, str(root / "pop"), progress=False)
  pop_state = train(cfg, str(root / "pop"), progress=False)
  singles = []
  for s in (5, 6, 7):
    c = tiny_gaussian_config(steps=4)
    c.seed = s
    singles.append(train(c, str(root / f"single{s}"), progress=False))
  return root, cfg, pop_state, singles


@pytest.mark.slow
def test_three_seeds_in_one_program_resumed_equal_three_single_runs(three_seeds):
  """Bit-exact: same keys, same data, same ops; so the resume is exact too."""
  _, _, pop_state, singles = three_seeds
  assert pop_state.step.shape == () and int(pop_state.step) == 4
  assert pop_state.d.params["Dense_0"]["kernel"].shape[0] == 3
  for i, single in enumerate(singles):
    _assert_trees(_member(pop_state, i), single)


def test_metrics_carry_mean_std_and_members(three_seeds):
  root, *_ = three_seeds
  with open(root / "pop" / "metrics.jsonl") as f:
    last = json.loads(f.readlines()[-1])
  members = [last[f"d_loss:{i}"] for i in range(3)]
  assert last["d_loss"] == pytest.approx(np.mean(members))
  assert last["d_loss:std"] == pytest.approx(np.std(members))
  with open(root / "single6" / "metrics.jsonl") as f:
    assert last["d_loss:1"] == pytest.approx(json.loads(f.readlines()[-1])["d_loss"], rel=1e-6)
  described = json.loads((root / "pop" / "members.json").read_text())
  assert [m["seed"] for m in described] == [5, 6, 7]


def test_per_member_evaluation(three_seeds):
  _, cfg, pop_state, singles = three_seeds
  c = cfg.copy_and_resolve_references()
  c.eval.update(metrics="gaussian_1d", num_samples=500)
  exp = build_experiment(c)
  summary, per_member = evaluate_members(exp, jax.device_get(pop_state), 4, None)
  assert len(per_member) == 3
  w1 = [m["w1"] for m in per_member]
  assert summary.scalars["w1"] == pytest.approx(np.mean(w1))
  assert summary.scalars["w1:std"] == pytest.approx(np.std(w1))
  assert [summary.scalars[f"w1:{i}"] for i in range(3)] == pytest.approx(w1)
  single = tiny_gaussian_config(steps=4)
  single.seed = 6
  single.eval.update(metrics="gaussian_1d", num_samples=500)
  alone = evaluate_state(build_experiment(single), singles[1], 4, None)
  assert alone.scalars["w1"] == pytest.approx(w1[1], rel=1e-6)


@pytest.mark.slow
def test_sweep_member_equals_a_separate_run(tmp_path):
  cfg = tiny_gaussian_config(steps=4, ema_kimg=0.01)  # no base penalty: the sweep's terms count
  cfg.sweep.optim.d.lr = (1e-3,)  # one value, still a traced member hyperparameter
  cfg.sweep.loss.d_penalties = ("gp:1@2", "gp:10@2")
  cfg.sweep.train.ema_kimg = (0.01, 0.05)
  state = train(cfg, str(tmp_path / "sweep"), progress=False)
  described = json.loads((tmp_path / "sweep" / "members.json").read_text())
  assert len(described) == 4
  m = 3  # value-major: lr=1e-3, gp:10 (second), ema_kimg=0.05 (second)
  assert described[m]["values"] == {
    "optim.d.lr": 1e-3,
    "loss.d_penalties": "gp:10@2",
    "train.ema_kimg": 0.05,
  }
  assert float(state.hparams["loss"]["d_penalties"]["gp"][m]) == 10.0
  single = tiny_gaussian_config(steps=4, ema_kimg=0.05)
  single.optim.d.lr, single.loss.d_penalties = 1e-3, "gp:10@2"
  alone = train(single, str(tmp_path / "single"), progress=False)
  # A traced hyperparameter and a compile-time constant can round differently in fused
  # kernels (XLA folds constants), so members match separate runs to float tolerance.
  _assert_trees(_member(state, m), alone, exact=False)


def test_a_one_value_sweep_is_still_applied():
  cfg = tiny_gaussian_config()
  cfg.sweep.optim.d.lr = (5e-2,)
  exp = build_experiment(cfg)
  state = exp.init_state()
  assert exp.population.batched and exp.population.size == 1
  assert state.hparams["optim"]["d"]["lr"].tolist() == [np.float32(5e-2)]


def test_resuming_with_other_members_is_refused(three_seeds):
  from jaxgan.errors import CheckpointMismatchError

  root, cfg, *_ = three_seeds
  c = cfg.copy_and_resolve_references()
  c.seed = 6  # same shapes, but members would become seeds 6, 7, 8
  with pytest.raises(
    CheckpointMismatchError,
    match=r"holds other members than this config \(seed: 5 -> 6\); "
    r"a run's seeds and swept values are fixed",
  ):
    train(c, str(root / "pop"), progress=False)


def test_shape_changing_and_mixed_zero_sweeps_fail_before_compiling():
  cfg = tiny_gaussian_config()
  cfg.sweep.model = {"g_hidden": ((16,), (32,))}
  with pytest.raises(
    ConfigError,
    match=r"^config.model.g_hidden cannot be swept in one program: it "
    r"changes shapes, data or the compiled program, not just numbers. Launch one run",
  ):
    config_lib.validate(cfg)
  cfg = tiny_gaussian_config()
  cfg.sweep.train = {"batch_size": (8, 16)}
  with pytest.raises(ConfigError, match="config.train.batch_size cannot be swept"):
    config_lib.validate(cfg)
  cfg = tiny_gaussian_config(ema_decay=0.9)
  cfg.sweep.train.ema_decay = (0.0, 0.99)
  with pytest.raises(
    ConfigError, match=r"mixes 0 with non-zero values; 0 switches the feature off"
  ):
    config_lib.validate(cfg)
  cfg = tiny_gaussian_config()
  cfg.sweep.loss.d_penalties = ("gp:1", "r1:1")
  with pytest.raises(ConfigError, match="differ only in weights"):
    config_lib.validate(cfg)
  cfg = tiny_gaussian_config()
  cfg.sweep.optim.d.lr = (1e-3, -1.0)
  with pytest.raises(
    ConfigError, match=r"member optim.d.lr=-1.0 seed=0: config.optim.d.lr must be > 0"
  ):
    config_lib.validate(cfg)


def test_a_swept_value_the_build_branches_on_is_refused_at_trace_time():
  cfg = tiny_gaussian_config()
  cfg.optim.d.update(schedule="exponential", decay_rate=0.5, decay_steps=10, min_lr=1e-5)
  cfg.sweep.optim.d.min_lr = (1e-5, 1e-6)  # optax branches on end_value
  with pytest.raises(
    ConfigError,
    match=r"^config.sweep: optim.d.min_lr decide\(s\) the program's "
    r"structure here",
  ):
    build_experiment(cfg)


def test_non_finite_member_stops_the_run_naming_it(tmp_path):
  cfg = tiny_gaussian_config(steps=4)
  cfg.optim.d.name = "sgd"
  cfg.sweep.optim.d.lr = (1e-2, 1e30)
  with pytest.raises(
    NonFiniteLossError, match=r"at step \d in member 1 \(optim.d.lr=1e\+30 seed=0\)"
  ):
    train(cfg, str(tmp_path / "nan"), progress=False)


def test_vmapped_population_on_four_devices_equals_one_device(three_seeds):
  """train.member_loop='vmap' (auto on accelerators) batches the members' ops, inside
  shard_map over 4 devices; members run in turn on one device agree to float rounding."""
  root, cfg, pop_state, _ = three_seeds
  c = cfg.copy_and_resolve_references()
  c.parallel = "shard_map"
  c.train.member_loop = "vmap"
  four = train(c, str(root / "four"), progress=False)
  _assert_trees(four, pop_state, exact=False)  # a batch split over devices sums in another order


def test_member_pipeline_stacks_each_seeds_order():
  from jaxgan.data.image_pipeline import ImagePipeline

  class Tiny:
    spec, on_device = None, True

    def __len__(self):
      return 50

    def close(self):
      pass

  pipes = [
    ImagePipeline(Tiny(), global_batch=4, minibatches=1, seed=s, value_range=(0, 1)) for s in (0, 1)
  ]
  stacked = population.MemberPipeline(pipes)
  got = stacked.host_inputs(3, 2)["index"]
  assert got.shape == (2, 2, 1, 4)
  for i, p in enumerate(pipes):
    np.testing.assert_array_equal(got[i], p.host_inputs(3, 2)["index"])
  assert stacked.inputs_batch_axes() == {"index": 3}


def test_evaluate_and_export_take_a_member_index(three_seeds):
  from jaxgan.cli.export import export_samples
  from jaxgan.evaluators.evaluate import evaluate_run, members_table

  root, *_ = three_seeds
  wd = str(root / "pop")
  update = {"eval.metrics": "gaussian_1d", "eval.num_samples": 500}
  every = evaluate_run(wd, update=update)
  assert [m["seed"] for m in every["members"]] == [5, 6, 7]
  w1 = [m["metrics"]["w1"] for m in every["members"]]
  assert every["metrics"]["w1"] == pytest.approx(np.mean(w1))
  table = members_table(every).splitlines()
  assert table[1].startswith("seed=5") and table[-1].startswith("mean +- std")
  one = evaluate_run(wd, update={**update, "eval.metrics": "gaussian_1d,loss_curves"}, seed_index=1)
  assert one["metrics"]["w1"] == pytest.approx(w1[1]) and len(one["members"]) == 1
  assert (
    os.path.join(wd, "members", "1", "figures", "loss_curves.png") in one["files"]
  )  # its own losses
  assert os.path.exists(os.path.join(wd, "eval", "4_member1.json"))
  with pytest.raises(
    ConfigError, match=r"holds 3 members \(see members.json\); pass --seed_index=0..2"
  ):
    export_samples(wd, 10, progress=False)
  with pytest.raises(ConfigError, match=r"--seed_index=3: this run has 3 member\(s\); use 0..2."):
    evaluate_run(wd, update=update, seed_index=3)
  import jaxgan

  cfg = jaxgan.load_run(wd)[0]
  with pytest.raises(ConfigError, match=r"this run has 3 members; pass member=0..2."):
    jaxgan.sample(cfg, jaxgan.load_run(wd)[1], 5)
  path = export_samples(wd, 10, progress=False, seed_index=2)
  assert path.endswith("samples_4_10_member2.npz") and np.load(path)["samples"].shape == (10, 1)
  config, state = jaxgan.load_run(wd)
  np.testing.assert_array_equal(
    jaxgan.sample(config, state, 5, member=2),
    jaxgan.sample(*jaxgan.load_run(str(root / "single7")), 5),
  )
