"""A one-step smoke run of the benchmark contract (speed itself is measured in benchmarks/)."""

import json
import os
import subprocess
import sys

import pytest

KEYS = {"impl", "workload", "batch", "steps", "device", "steps_per_sec", "examples_per_sec",
        "compile_s", "flops_per_step", "gflops_per_sec"}


@pytest.mark.parametrize("args", [
    ["--workload=toy1d", "--steps=2", "--steps-per-call=2"],
    ["--workload=dcgan28", "--batch=4", "--steps=1"],
    ["--workload=toy1d", "--steps=2", "--seeds=3"],
])
def test_train_step_benchmark_prints_one_json_line(repo_root, args):
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  out = subprocess.run([sys.executable, "benchmarks/train_step.py", *args], cwd=repo_root, env=env,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr
  lines = out.stdout.strip().splitlines()
  assert len(lines) == 1
  record = json.loads(lines[0])
  assert KEYS <= set(record)
  assert record["impl"] == "jaxgan" and record["steps_per_sec"] > 0
  assert record["flops_per_step"] > 0 and record["gflops_per_sec"] > 0
  assert record["device"].startswith("cpu")
