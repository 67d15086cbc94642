"""Mode coverage on 2-D Gaussian mixtures (Unrolled GAN, VEEGAN, PacGAN).

Each sample is assigned to its nearest mode centre; it is *high quality* if it
lies within 3 standard deviations of that centre. A mode is *covered* when at
least ``min_count`` high-quality samples land on it (PacGAN uses 20 of 2,500
samples for the 25-mode grid; with ``min_count=1`` this is VEEGAN's count).
The KL divergence of the high-quality samples' mode histogram from uniform
shows how evenly the covered modes are used.
"""

from __future__ import annotations

import numpy as np


def mode_coverage(
  samples: np.ndarray, centers: np.ndarray, std: float, *, min_count: int = 20
) -> dict[str, float]:
  samples, centers = np.asarray(samples, np.float64), np.asarray(centers, np.float64)
  d2 = ((samples[:, None, :] - centers[None, :, :]) ** 2).sum(-1)
  nearest = d2.argmin(axis=1)
  hq = np.sqrt(d2[np.arange(len(samples)), nearest]) <= 3.0 * std
  counts = np.bincount(nearest[hq], minlength=len(centers))
  share = counts / max(counts.sum(), 1)
  nz = share > 0
  return {
    "modes_covered": float(np.sum(counts >= min_count)),
    "modes_total": float(len(centers)),
    "modes_with_any_hq": float(np.sum(counts >= 1)),
    "hq_fraction": float(hq.mean()),
    "mode_kl_uniform": float(np.sum(share[nz] * np.log(share[nz] * len(centers))))
    if hq.any()
    else float("inf"),
  }


def stacked_mnist_modes(digits: np.ndarray, num_digits: int = 10) -> dict[str, float]:
  """Stacked MNIST's mode count and KL from the per-channel digits of generated samples.

  ``digits`` [N, 3] holds the digit a classifier reads in each channel; the mode
  is their 3-digit number. Modes: how many of the ``num_digits ** 3`` get at
  least one sample (VEEGAN's and PacGAN's count); KL: KL(q || uniform) in nats
  of the samples' mode histogram q (0 for a uniform histogram, log 1000 = 6.91
  when every sample is one mode).
  """
  digits = np.asarray(digits, np.int64)
  total = num_digits ** digits.shape[1]
  modes = np.zeros(len(digits), np.int64)
  for c in range(digits.shape[1]):
    modes = modes * num_digits + digits[:, c]
  q = np.bincount(modes, minlength=total) / max(len(digits), 1)
  nz = q > 0
  return {
    "stacked_modes": float(nz.sum()),
    "stacked_kl": float(np.sum(q[nz] * np.log(q[nz] * total))),
  }
