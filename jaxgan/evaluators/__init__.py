"""Evaluators, picked by name (``config.eval.metrics``, ``jaxgan-evaluate --metrics``).

An evaluator is ``fn(ctx: EvalContext) -> EvalResult``: scalars for
``metrics.jsonl``/TensorBoard and optional images (figures). Each lives in its
own module; importing this package registers them (``Evaluator``: each declares
its headline scalar and whether it needs the GAN) without importing their
modules until they run.
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


EVALUATORS: Registry[Evaluator] = Registry("evaluator")


class Evaluator:
  """A registered evaluator, its module imported when it first runs (or is checked):
  evaluator modules import this package (``EvalContext``), and some import scipy or
  matplotlib, which a run without them should not pay for.

  Attributes:
    name: its registered name (``config.eval.metrics``), which its messages use.
    headline: its scalar that a run's summary shows first (None for figures).
    needs_gan: it reads the run's GAN: a state to sample from, G's or D's networks or
      losses, or what the run trained on (``parzen_valid``: which images its
      ``train_range`` held out; ``loss_curves``: its metrics.jsonl). Those that do not
      also score a file of samples (``jaxgan-evaluate --samples``).
  """

  def __init__(self, name: str, module: str, attr: str, *, headline: str | None, needs_gan: bool):
    self.name, self.module, self.attr = name, module, attr
    self.headline, self.needs_gan = headline, needs_gan

  def _module(self):
    return importlib.import_module(f"jaxgan.evaluators.{self.module}")

  def __call__(self, ctx: EvalContext) -> EvalResult:
    return getattr(self._module(), self.attr)(ctx)

  def preflight(self, config: ml_collections.ConfigDict, spec: Any) -> None:
    """Cheap checks (files present, data kind right) run before training starts."""
    check = getattr(self._module(), "preflight", None)
    if check is not None:
      check(self.name, config, spec)


def _register(
  name: str, module: str, attr: str, *, headline: str | None = None, needs_gan: bool
) -> None:
  EVALUATORS.register(name)(Evaluator(name, module, attr, headline=headline, needs_gan=needs_gan))


_register("gaussian_1d", "gaussian_1d", "evaluate", headline="w1_over_std", needs_gan=True)
for _name in ("samples", "interpolation", "nearest_neighbours", "loss_curves"):
  _register(_name, "image_figures", _name, needs_gan=True)
_register("parzen", "parzen", "evaluate", headline="parzen_ll", needs_gan=False)
_register("parzen_valid", "parzen", "validation", headline="parzen_valid", needs_gan=True)
for _name, _attr, _headline in (
  ("fid", "fid", "fid"),
  ("kid", "kid", "kid"),
  ("is", "inception_score", "is"),
  ("precision_recall", "precision_recall", "precision"),
  ("class_coverage", "class_coverage", "class_kl_uniform"),
):
  _register(_name, "feature_metrics", _attr, headline=_headline, needs_gan=False)
_register("fid_intra", "intra_class", "fid_intra", headline="fid_intra", needs_gan=True)
_register("mode_coverage", "mixtures", "mode_coverage", headline="modes_covered", needs_gan=False)
_register("mixture_2d", "mixtures", "figure", needs_gan=False)
_register(
  "stacked_mnist_modes", "stacked_mnist", "evaluate", headline="stacked_modes", needs_gan=False
)


def without_gan() -> list[str]:
  """The evaluators that score samples alone (a file of them: ``jaxgan-evaluate --samples``)."""
  return [name for name in EVALUATORS if not EVALUATORS.get(name).needs_gan]


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
