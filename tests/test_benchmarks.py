"""A one-step smoke run of the benchmark contract (speed itself is measured in benchmarks/)."""

import json
import os
import subprocess
import sys

import pytest

KEYS = {
  "impl",
  "workload",
  "batch",
  "steps",
  "device",
  "steps_per_sec",
  "examples_per_sec",
  "compile_s",
  "flops_per_step",
  "gflops_per_sec",
}


# (flags, what the record must say: the flags given, the workload's batch where none is).
@pytest.mark.parametrize(
  "args,expected",
  [
    (
      ["--workload=dcgan28", "--batch=4", "--steps=1"],
      {
        "workload": "dcgan28",
        "steps": 1,
        "batch": 4,
        "steps_per_call": 1,
        "seeds": 1,
        "config": {},
      },
    ),
    # every other flag at once: fused steps, seeds in one program, config overrides
    (
      [
        "--workload=toy1d",
        "--steps=2",
        "--steps-per-call=2",
        "--seeds=3",
        "--set=loss.d_penalties=r1:1@2",
        "--set=model.d_spectral_norm=True",
      ],
      {
        "workload": "toy1d",
        "steps": 2,
        "batch": 256,
        "steps_per_call": 2,
        "seeds": 3,
        "config": {"loss.d_penalties": "r1:1@2", "model.d_spectral_norm": True},
      },
    ),
  ],
)
def test_train_step_benchmark_prints_one_json_line(repo_root, args, expected):
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  out = subprocess.run(
    [sys.executable, "benchmarks/train_step.py", *args],
    cwd=repo_root,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert out.returncode == 0, out.stderr
  lines = out.stdout.strip().splitlines()
  assert len(lines) == 1
  record = json.loads(lines[0])
  assert set(record) >= KEYS
  assert record["impl"] == "jaxgan" and record["steps_per_sec"] > 0
  assert record["flops_per_step"] > 0 and record["gflops_per_sec"] > 0
  assert record["device"].startswith("cpu")
  assert {k: record[k] for k in expected} == expected
  assert record["conv_transpose"] == "auto" and record["conv"] == "auto"  # the defaults
  # Throughput counts every example of every seed; GFLOP/s every seed's step. (The record
  # rounds examples_per_sec to 0.1 and gflops_per_sec to 0.01: hence the abs slack.)
  sps, seeds, batch = record["steps_per_sec"], record["seeds"], record["batch"]
  assert record["examples_per_sec"] == pytest.approx(sps * batch * seeds, rel=1e-2, abs=0.05)
  assert record["gflops_per_sec"] == pytest.approx(
    record["flops_per_step"] * sps * seeds / 1e9, rel=1e-2, abs=0.005
  )
