"""Model selection on a validation metric: ``config.eval.select = "<scalar>:max|min"``.

The paper's released code logged a validation Parzen estimate every epoch but
kept only the latest model; choosing a checkpoint then needs either the test
set (cheating) or a kept best. With a selection metric, every evaluation is
saved with its scalars as orbax checkpoint metrics, and the checkpoint manager
keeps the best step by it as well as the newest ``train.max_to_keep`` steps.
In a run of many members (``jaxgan.core.population``) each member's best step is
kept (``<scalar>:<member>``), since seeds peak at different steps.
``jaxgan-evaluate --best`` evaluates those steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from jaxgan.errors import ConfigError

MODES = ("max", "min")


@dataclasses.dataclass(frozen=True)
class Selection:
  """Which scalar selects the best checkpoint, and whether larger is better."""

  metric: str
  mode: str = "max"

  def key(self, member: int | None = None) -> str:
    """The metrics key of ``member`` (``jaxgan.core.population.summarize``); the mean if None."""
    return self.metric if member is None else f"{self.metric}:{member}"

  def better(self, a: float, b: float) -> bool:
    return a > b if self.mode == "max" else a < b

  def best_step(
    self, metrics_by_step: dict[int, dict[str, float] | None], member: int | None = None
  ) -> int | None:
    """The step whose ``key(member)`` is best (the earliest on a tie); None if no step has it."""
    best = None
    for step in sorted(metrics_by_step):
      value = (metrics_by_step[step] or {}).get(self.key(member))
      if value is None or value != value:  # absent or NaN never wins
        continue
      if best is None or self.better(value, best[1]):
        best = (step, value)
    return None if best is None else best[0]


def parse(spec: str) -> Selection | None:
  """``"parzen_valid:max"`` -> Selection; "" -> None. Whether an evaluator gives the scalar
  is known at the first evaluation (``checkpoint_metrics``)."""
  spec = spec.strip()
  if not spec:
    return None
  metric, _, mode = spec.rpartition(":")
  if not metric or mode not in MODES:
    raise ConfigError(
      f"config.eval.select={spec!r} must be '<scalar>:max' or '<scalar>:min', "
      f"e.g. 'parzen_valid:max'."
    )
  return Selection(metric, mode)


def metric_keys(selection: Selection, members: int) -> list[str]:
  """The scalars saved with a checkpoint: the selection metric, and each member's."""
  return [selection.key()] + ([selection.key(m) for m in range(members)] if members > 1 else [])


def checkpoint_metrics(
  selection: Selection, scalars: dict[str, float], members: int
) -> dict[str, float]:
  """This evaluation's ``metric_keys``; ConfigError (naming what the evaluators did give)
  if one is missing."""
  keys = metric_keys(selection, members)
  missing = [k for k in keys if k not in scalars]
  if missing:
    raise ConfigError(
      f"config.eval.select names {selection.metric!r} but the evaluation gave "
      f"{', '.join(sorted(scalars)) or 'nothing'}; fix config.eval.select."
    )
  return {k: float(scalars[k]) for k in keys}


def shared_metrics(
  selection: Selection, scalars: dict[str, float] | None, members: int
) -> tuple[dict[str, float] | None, str | None]:
  """(metrics, error) the same on every process: process 0 evaluated (``scalars``; None on
  the others) and every process must save the step with the same metrics, or none (then
  ``error`` says why) so that no process waits alone in orbax's save."""
  keys = metric_keys(selection, members)
  values, error = np.full(len(keys) + 1, np.nan), None
  if scalars is not None:
    try:
      values[1:] = [checkpoint_metrics(selection, scalars, members)[k] for k in keys]
      values[0] = 1.0
    except ConfigError as e:
      error = str(e)
  if jax.process_count() > 1:
    values = np.asarray(multihost_utils.broadcast_one_to_all(values.astype(np.float32)), np.float64)
  if values[0] != 1.0:
    return None, error or (
      f"config.eval.select names {selection.metric!r}, which process 0's "
      f"evaluation did not give (see its message)."
    )
  return dict(zip(keys, values[1:].tolist())), None


class KeepBest:
  """orbax preservation policy: keep each member's best checkpoint by ``selection``.

  Implements orbax's ``PreservationPolicy`` protocol; combined with ``LatestN``
  (``jaxgan.run.checkpointing.store.preservation_policy``) so that resuming always finds
  the newest step.
  """

  def __init__(self, selection: Selection, members: int):
    self.selection, self.members = selection, members

  def should_preserve(self, checkpoints: Sequence[Any], *, context: Any = None) -> list[bool]:
    by_step = {info.step: info.metrics for info in checkpoints}
    keep = {
      self.selection.best_step(by_step, m)
      for m in ([None] if self.members == 1 else range(self.members))
    }
    return [info.step in keep for info in checkpoints]


def best_steps(
  metrics_of: Callable[[int], dict[str, float] | None],
  steps: Sequence[int],
  selection: Selection,
  members: int,
) -> list[int | None]:
  """Each member's best step (one entry for a single run)."""
  by_step = {s: metrics_of(s) for s in steps}
  return [selection.best_step(by_step, m) for m in ([None] if members == 1 else range(members))]
