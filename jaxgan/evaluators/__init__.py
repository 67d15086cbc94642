"""Evaluators, picked by name (``config.eval.metrics``, ``jaxgan.evaluate --metrics``).

An evaluator is ``fn(ctx: EvalContext) -> EvalResult``: scalars for
``metrics.jsonl``/TensorBoard and optional images (figures). Each lives in its
own module; importing this package registers them without importing their
heavy dependencies (matplotlib, scipy) until they run.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from jaxgan.registry import Registry


@dataclasses.dataclass
class EvalContext:
  """What an evaluator may look at. ``state`` is a single (unreplicated) copy."""

  config: ml_collections.ConfigDict
  gan: Any            # jaxgan.gan.GAN
  state: Any          # jaxgan.state.GANState
  dataset: Any        # the object built from config.data
  step: int
  workdir: str | None
  rng: jax.Array
  sampler: Any = None  # jaxgan.sampling.Sampler, shared between evaluators
  cache: dict = dataclasses.field(default_factory=dict)  # shared samples etc.


@dataclasses.dataclass
class EvalResult:
  scalars: dict[str, float] = dataclasses.field(default_factory=dict)
  images: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # HWC uint8
  files: list[str] = dataclasses.field(default_factory=list)

  def merge(self, other: "EvalResult") -> "EvalResult":
    return EvalResult({**self.scalars, **other.scalars}, {**self.images, **other.images},
                      self.files + other.files)


EVALUATORS: Registry[Callable[[EvalContext], EvalResult]] = Registry("evaluator")


def _lazy(module: str, attr: str) -> Callable[[EvalContext], EvalResult]:
  def run(ctx: EvalContext) -> EvalResult:
    return getattr(importlib.import_module(f"jaxgan.evaluators.{module}"), attr)(ctx)
  run.__name__ = attr
  return run


EVALUATORS.register("gaussian_1d")(_lazy("gaussian_1d", "evaluate"))
for _name in ("samples", "interpolation", "nearest_neighbours", "loss_curves"):
  EVALUATORS.register(_name)(_lazy("image_figures", _name))


def run_evaluators(names: list[str], ctx: EvalContext) -> EvalResult:
  result = EvalResult()
  for name in names:
    result = result.merge(EVALUATORS.get(name)(ctx))
  return result
