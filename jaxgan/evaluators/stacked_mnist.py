"""Stacked MNIST mode counting: jaxgan's LeNet reads each channel's digit.

The protocol of VEEGAN (Srivastava et al. 2017, Sec. 5) and PacGAN (Lin et al.
2018, Sec. 4): generate ``eval.num_samples`` images (26,000 in those papers),
classify each of the three channels with a pre-trained MNIST classifier (a LeNet
trained on another dataset is refused), and report how many of the 1,000 digit
triples appear and the KL of their histogram from uniform
(``jaxgan.metrics.modes.stacked_mnist_modes``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from jaxgan.errors import ConfigError
from jaxgan.evaluators import EvalContext, EvalResult
from jaxgan.evaluators.common import generated
from jaxgan.evaluators.feature_metrics import lenet_dir
from jaxgan.feature_nets import lenet
from jaxgan.metrics.modes import stacked_mnist_modes

Classify = Callable[[np.ndarray], np.ndarray]  # [n, 28, 28, 1] in [0, 1] -> digits [n]


def digits_per_channel(
  images_0_1: np.ndarray, classify: Classify, chunk: int = 2000, progress=None
) -> np.ndarray:
  """[N, H, W, 3] -> [N, 3]: the digit ``classify`` reads in each channel's central 28x28."""
  off = (images_0_1.shape[1] - 28) // 2
  images_0_1 = images_0_1[:, off : off + 28, off : off + 28]
  n = len(images_0_1)
  out = np.zeros((n, images_0_1.shape[-1]), np.int64)
  for c in range(images_0_1.shape[-1]):
    for i in range(0, n, chunk):
      out[i : i + chunk, c] = classify(images_0_1[i : i + chunk, ..., c : c + 1])
      if progress:
        progress(f"classifying channel {c}", min(i + chunk, n), n)
  return out


# LeNet reads 28x28: Stacked MNIST padded for StyleGAN2 (config.data.pad=2) is read at its
# centre, where the padded reals are exactly the originals.
SHAPES = ((28, 28, 3), (32, 32, 3))


def preflight(name, config, spec) -> None:
  if tuple(spec.shape) not in SHAPES:
    raise ConfigError(
      f"config.eval.metrics: {name} counts the digits of Stacked MNIST "
      f"(28x28x3, or 32x32x3 padded); {spec.name!r} has shape {tuple(spec.shape)}."
    )
  lenet.check_trained(lenet_dir(config))
  lenet.check_dataset(lenet_dir(config), "mnist", run_dataset=spec.name)  # MNIST digits


def evaluate(ctx: EvalContext) -> EvalResult:
  if "stacked_lenet" not in ctx.shared:
    ctx.shared["stacked_lenet"] = lenet.LeNetFeatures.load(
      lenet_dir(ctx.config), "mnist", run_dataset=ctx.dataset.spec.name
    )
  net = ctx.shared["stacked_lenet"]
  x, _ = generated(ctx)
  digits = digits_per_channel(
    x, lambda b: np.argmax(net.features_and_probs(b)[1], axis=-1), progress=ctx.progress
  )
  return EvalResult(stacked_mnist_modes(digits))
