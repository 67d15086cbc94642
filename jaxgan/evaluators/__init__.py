"""Evaluators, picked by name (``config.eval.metrics``, ``jaxgan.evaluate --metrics``).

An evaluator is ``fn(ctx: EvalContext) -> EvalResult``: scalars for
``metrics.jsonl``/TensorBoard and optional images (figures). Each lives in its
own module; importing this package registers them without importing their
heavy dependencies (matplotlib, scipy) until they run.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxgan.registry import Registry


@dataclasses.dataclass
class EvalContext:
  """What an evaluator may look at. ``state`` is a single (unreplicated) copy."""

  config: ml_collections.ConfigDict
  gan: Any  # jaxgan.core.gan.GAN
  state: Any  # jaxgan.core.state.GANState
  dataset: Any  # the object built from config.data
  step: int
  workdir: str | None
  rng: jax.Array
  sampler: Any = None  # jaxgan.core.sampling.Sampler, shared between evaluators
  cache: dict = dataclasses.field(default_factory=dict)  # this state's samples and their features
  # What depends only on the dataset and config (feature nets, real images and their
  # features): kept across a run's evaluations when the caller passes one dict.
  shared: dict = dataclasses.field(default_factory=dict)
  progress: Callable[[str, int, int], None] | None = None  # for long computations
  # In a population (jaxgan.core.population): this state's member, whose scalars are the
  # ``name:<member>`` columns of ``run_dir``'s metrics.jsonl (run_dir: the run's root).
  member: int | None = None
  run_dir: str | None = None


@dataclasses.dataclass
class EvalResult:
  scalars: dict[str, float] = dataclasses.field(default_factory=dict)
  images: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # HWC uint8
  files: list[str] = dataclasses.field(default_factory=list)

  def merge(self, other: EvalResult) -> EvalResult:
    return EvalResult(
      {**self.scalars, **other.scalars}, {**self.images, **other.images}, self.files + other.files
    )


EVALUATORS: Registry[Callable[[EvalContext], EvalResult]] = Registry("evaluator")


class _Lazy:
  """An evaluator whose module is imported when it first runs (or is checked).

  ``headline``: its scalar that a run's summary shows first (None for figures).
  """

  def __init__(self, module: str, attr: str, headline: str | None = None):
    self.module, self.attr, self.headline = module, attr, headline

  def _module(self):
    return importlib.import_module(f"jaxgan.evaluators.{self.module}")

  def __call__(self, ctx: EvalContext) -> EvalResult:
    return getattr(self._module(), self.attr)(ctx)

  def preflight(self, config: ml_collections.ConfigDict, spec: Any) -> None:
    """Cheap checks (files present, data kind right) run before training starts."""
    check = getattr(self._module(), "preflight", None)
    if check is not None:
      check(self.attr, config, spec)


EVALUATORS.register("gaussian_1d")(_Lazy("gaussian_1d", "evaluate", "w1_over_std"))
for _name in ("samples", "interpolation", "nearest_neighbours", "loss_curves"):
  EVALUATORS.register(_name)(_Lazy("image_figures", _name))
EVALUATORS.register("parzen")(_Lazy("parzen", "evaluate", "parzen_ll"))
EVALUATORS.register("parzen_valid")(_Lazy("parzen", "validation", "parzen_valid"))
for _name, _attr, _headline in (
  ("fid", "fid", "fid"),
  ("kid", "kid", "kid"),
  ("is", "inception_score", "is"),
  ("precision_recall", "precision_recall", "precision"),
  ("class_coverage", "class_coverage", "class_kl_uniform"),
):
  EVALUATORS.register(_name)(_Lazy("feature_metrics", _attr, _headline))
EVALUATORS.register("mode_coverage")(_Lazy("mixtures", "mode_coverage", "modes_covered"))
EVALUATORS.register("mixture_2d")(_Lazy("mixtures", "figure"))
EVALUATORS.register("stacked_mnist_modes")(_Lazy("stacked_mnist", "evaluate", "stacked_modes"))


def headlines(names: list[str]) -> list[str]:
  """The headline scalars of evaluators ``names``, in order: what a summary shows first."""
  return [h for h in (EVALUATORS.get(n).headline for n in names) if h is not None]


def preflight(names: list[str], config: ml_collections.ConfigDict, spec: Any) -> None:
  for name in names:
    EVALUATORS.get(name).preflight(config, spec)


def run_evaluators(names: list[str], ctx: EvalContext) -> EvalResult:
  result = EvalResult()
  for name in names:
    result = result.merge(EVALUATORS.get(name)(ctx))
  return result
