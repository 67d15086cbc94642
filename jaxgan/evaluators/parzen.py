"""``parzen``: the paper's Parzen-window log-likelihood of the test set (Table 1).

Kernels on ``eval.num_samples`` (10,000) generated images in [0, 1]; sigma chosen
on the first ``eval.parzen_valid_size`` (1,000) of training images 50,000-59,999;
mean log-likelihood and standard error over the 10,000 test images.
"""

from __future__ import annotations

import numpy as np

from jaxgan.errors import ConfigError
from jaxgan.evaluators import EvalContext, EvalResult
from jaxgan.evaluators.common import generated, real_split
from jaxgan.metrics.parzen import parzen_protocol

VALIDATION_START = 50_000


def preflight(name, config, spec) -> None:
  if not spec.is_image:
    raise ConfigError(f"config.eval.metrics: {name} needs an image dataset, not {spec.name!r}.")


def evaluate(ctx: EvalContext) -> EvalResult:
  samples, _ = generated(ctx)
  train = real_split(ctx, "train")["x"]
  if len(train) <= VALIDATION_START:
    raise ConfigError(f"parzen's validation split is training images {VALIDATION_START}+, but "
                      f"{ctx.dataset.name} has {len(train)}.")
  valid = train[VALIDATION_START:][: ctx.config.eval.parzen_valid_size].astype(np.float32) / 255.0
  test = real_split(ctx, "test")["x"].astype(np.float32) / 255.0
  out = parzen_protocol(samples.reshape(len(samples), -1), valid.reshape(len(valid), -1),
                        test.reshape(len(test), -1), progress=ctx.progress)
  return EvalResult({k: v for k, v in out.items() if not isinstance(v, list)})
