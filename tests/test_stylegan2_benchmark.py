"""benchmarks/stylegan2_step.py without running a step (compiling one takes 30 s or more here):
the torch side's built-in settings are the mnist config's, and a record has the contract's keys."""

import os
import sys

import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import stylegan2_step as bench

KEYS = {
  "impl",
  "workload",
  "batch",
  "steps",
  "device",
  "cpu",
  "date",
  "steps_per_sec",
  "images_per_sec",
  "compile_s",
  "cpu_per_wall",
  "threads",
  "phases",
  "config",
}


def test_torch_defaults_are_the_mnist_config():
  c = bench.jaxgan_config(bench.DEFAULT_CONFIG, {})
  assert bench.settings(c) == bench.MNIST


def test_overrides_reach_the_torch_settings():
  c = bench.jaxgan_config(
    bench.DEFAULT_CONFIG, {"train.batch_size": 16, "loss.g_penalties": "pl:2@4"}
  )
  s = bench.settings(c)
  assert (s["batch"], s["pl_weight"], s["g_reg_interval"]) == (16, 2.0, 4)
  assert bench.phases_text(s) == "Dmain + Dreg/16 + Gmain + Greg/4 + G_ema"


def test_what_the_torch_side_does_not_build_is_refused():
  with pytest.raises(SystemExit, match="loss.ada"):
    bench.settings(bench.jaxgan_config("experiments/stylegan2.py:mnist_ada1k", {}))


@pytest.mark.parametrize("steps,pl,expected", [(1, 0.0, 16), (32, 0.0, 32), (17, 2.0, 32)])
def test_timed_steps_hold_whole_reg_intervals(steps, pl, expected):
  s = dict(bench.MNIST, pl_weight=pl)
  assert bench.timed_steps(steps, s) == expected


def test_record_has_the_contract_keys():
  args = type("Args", (), {"impl": "jaxgan", "config": bench.DEFAULT_CONFIG, "overrides": {}})
  out = {
    "steps": 16,
    "elapsed": 8.0,
    "cpu_s": 16.0,
    "compile_s": 1.0,
    "device": "cpu",
    "threads": "2",
  }
  record = bench.record_of(args, dict(out, settings=bench.MNIST))
  assert set(record) == KEYS
  assert record["steps_per_sec"] == 2.0 and record["images_per_sec"] == 64.0
  assert record["workload"] == "stylegan2_mnist"
