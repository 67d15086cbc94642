"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD^2, cubic polynomial kernel.

k(x, y) = (x.y / d + 1)^3; the unbiased estimate is averaged over random subsets
(100 subsets of 1,000 by default, as in the paper's code and torch-fidelity),
and reported with its standard deviation over subsets. Computed in float64, and
not centred: unlike distances, the polynomial kernel changes under a shift, and
KID is defined on the features as they are.
"""

from __future__ import annotations

import numpy as np


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  d = x.shape[1]
  kxx = (x @ x.T / d + 1.0) ** 3
  kyy = (y @ y.T / d + 1.0) ** 3
  kxy = (x @ y.T / d + 1.0) ** 3
  m, n = len(x), len(y)
  return float(
    (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    - 2.0 * kxy.mean()
  )


def kernel_distance(
  real: np.ndarray,
  fake: np.ndarray,
  *,
  num_subsets: int = 100,
  subset_size: int = 1000,
  seed: int = 0,
) -> tuple[float, float]:
  """(mean, std) of the unbiased MMD^2 over random subsets."""
  rng = np.random.default_rng(seed)
  size = min(subset_size, len(real), len(fake))
  values = [
    mmd2_unbiased(
      real[rng.choice(len(real), size, replace=False)],
      fake[rng.choice(len(fake), size, replace=False)],
    )
    for _ in range(num_subsets)
  ]
  return float(np.mean(values)), float(np.std(values))
