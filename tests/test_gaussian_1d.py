"""The 1-D experiment's metrics are right, and the default really learns the target."""

import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from jaxgan.evaluators.gaussian_1d import ks_to_normal, wasserstein1_to_normal
from jaxgan.run.writers import read_jsonl


def test_w1_to_normal_matches_scipy_on_a_large_reference_sample():
  rng = np.random.default_rng(0)
  x = rng.normal(4.3, 1.0, 10_000)  # shifted by 0.3 and too narrow against N(4, 1.25)
  reference = rng.normal(4.0, 1.25, 2_000_000)
  expected = stats.wasserstein_distance(x, reference)
  assert wasserstein1_to_normal(x, 4.0, 1.25) == pytest.approx(expected, abs=5e-3)
  # A pure shift of an exact quantile grid is a W1 of exactly that shift.
  q = 4.0 + 1.25 * stats.norm.ppf((np.arange(10_000) + 0.5) / 10_000)
  assert wasserstein1_to_normal(q + 0.2, 4.0, 1.25) == pytest.approx(0.2, abs=1e-9)


def test_ks_to_normal_matches_scipy_exactly():
  x = np.random.default_rng(1).normal(3.9, 1.3, 5_000)
  expected = stats.kstest(x, "norm", args=(4.0, 1.25)).statistic
  assert ks_to_normal(x, 4.0, 1.25) == pytest.approx(expected, abs=1e-12)


@pytest.mark.slow
def test_default_experiment_learns_the_gaussian(repo_root, tmp_path):
  """The default config on a shorter budget: W1 < 0.1 sigma. Launched as a user would, with
  XLA's optimizations (12,000 steps: running, not compiling, is what takes time)."""
  flags = [
    "--config=experiments/gaussian_1d.py",
    f"--workdir={tmp_path}",
    "--config.parallel=none",
    "--config.train.steps=12000",
    "--config.train.log_every=4000",
    "--config.train.checkpoint_every=12000",
    "--config.eval.every=12000",
  ]
  env = dict(os.environ, XLA_FLAGS="")  # one CPU device
  run = subprocess.run(
    [sys.executable, "-m", "jaxgan.cli.train", *flags],
    cwd=repo_root,
    env=env,
    capture_output=True,
    text=True,
  )
  assert run.returncode == 0, run.stderr
  final = read_jsonl(str(tmp_path / "metrics.jsonl"))[-1]
  assert final["step"] == 12_000
  assert final["w1"] < 0.1 * 1.25, final
  assert abs(final["gen_mean"] - 4.0) < 0.05 * 4.0
  assert abs(final["gen_std"] - 1.25) < 0.1 * 1.25
  assert (
    final["d_half_gap"] < 0.1
  )  # D is close to 1/2 over the data (0.057 measured; 0.5 if D wins)
  assert (tmp_path / "figures" / "density_1d_0012000.png").exists()
