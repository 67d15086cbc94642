"""``parzen``: the paper's Parzen-window log-likelihood of the test set (Table 1);
``parzen_valid``: the same estimate on held-out training images, for model selection.

``parzen``: kernels on ``eval.num_samples`` (10,000) generated images in [0, 1];
sigma chosen on the first ``eval.parzen_valid_size`` (1,000) of training images
50,000-59,999; mean log-likelihood and standard error over the 10,000 test images.

``parzen_valid`` never reads the test split. It is cheap enough to run every few
thousand steps, like the released code's per-epoch ``monitor_ll`` (which scored
images 50,000-59,999 against 100 fresh samples per batch at a fixed sigma 0.2):
kernels on the first ``eval.parzen_valid_samples`` (2,000) generated images,
sigma chosen as above on images 50,000-50,999, and the mean log-likelihood of
images 51,000-59,999 (sigma's images excluded). Fewer kernels bias the value
low, so it ranks checkpoints; the reported number is ``parzen``'s. Train on
images 0-49,999 (``data.train_range=(0, 50000)``) or it scores training data.
"""

from __future__ import annotations

import numpy as np

from jaxgan.errors import ConfigError
from jaxgan.evaluators import EvalContext, EvalResult
from jaxgan.evaluators.common import generated, real_split
from jaxgan.metrics.parzen import parzen_protocol

VALIDATION_START = 50_000
VALIDATION_STOP = 60_000


def preflight(name, config, spec) -> None:
  if not spec.is_image:
    raise ConfigError(f"config.eval.metrics: {name} needs an image dataset, not {spec.name!r}.")
  if name == "parzen_valid":
    if config.eval.parzen_valid_samples > config.eval.num_samples:
      raise ConfigError(
        f"config.eval.parzen_valid_samples={config.eval.parzen_valid_samples} is more "
        f"than the {config.eval.num_samples} samples drawn (config.eval.num_samples)."
      )
    train_range = tuple(config.data.train_range)
    if not train_range or train_range[1] > VALIDATION_START:
      raise ConfigError(
        f"config.eval.metrics: parzen_valid scores training images {VALIDATION_START:,}-"
        f"{VALIDATION_STOP - 1:,}, which config.data.train_range={train_range} trains on; set "
        f'--config.data.train_range="(0, {VALIDATION_START})".'
      )


def evaluate(ctx: EvalContext) -> EvalResult:
  samples, _ = generated(ctx)
  train = real_split(ctx, "train")["x"]
  if len(train) <= VALIDATION_START:
    raise ConfigError(
      f"parzen's validation split is training images {VALIDATION_START}+, but "
      f"{ctx.dataset.name} has {len(train)}."
    )
  valid = train[VALIDATION_START:][: ctx.config.eval.parzen_valid_size].astype(np.float32) / 255.0
  test = real_split(ctx, "test")["x"].astype(np.float32) / 255.0
  out = parzen_protocol(
    samples.reshape(len(samples), -1),
    valid.reshape(len(valid), -1),
    test.reshape(len(test), -1),
    progress=ctx.progress,
  )
  return EvalResult({k: v for k, v in out.items() if not isinstance(v, list)})


def validation(ctx: EvalContext) -> EvalResult:
  samples, _ = generated(ctx)
  samples = samples[: ctx.config.eval.parzen_valid_samples]
  train = real_split(ctx, "train")["x"]  # the only split read: never the test images
  if len(train) < VALIDATION_STOP:
    raise ConfigError(
      f"parzen_valid scores training images {VALIDATION_START}-{VALIDATION_STOP - 1}, "
      f"but {ctx.dataset.name} has {len(train)}."
    )
  held_out = train[VALIDATION_START:VALIDATION_STOP].astype(np.float32) / 255.0
  sigma_set, scored = (
    held_out[: ctx.config.eval.parzen_valid_size],
    held_out[ctx.config.eval.parzen_valid_size :],
  )
  out = parzen_protocol(
    samples.reshape(len(samples), -1),
    sigma_set.reshape(len(sigma_set), -1),
    scored.reshape(len(scored), -1),
    progress=ctx.progress,
  )
  return EvalResult(
    {
      "parzen_valid": out["parzen_ll"],
      "parzen_valid_se": out["parzen_se"],
      "parzen_valid_sigma": out["parzen_sigma"],
    }
  )
