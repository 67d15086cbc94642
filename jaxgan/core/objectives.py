"""Objectives as sums of terms that see D itself, not just its logits.

A *term* is ``fn(ctx: TermContext) -> (loss, metrics)``. The context carries a
callable that applies D (with the right weights, collections, dropout and
augmentation), the real and fake batches, D's outputs on them from the
adversarial pass, the term's own named random stream and the step. The
adversarial loss is the term ``adv``; each regularizer is another term with a
weight and an optional interval: ``every = N`` computes it on every N-th update
only, scaled by N (StyleGAN2's lazy regularization), behind ``lax.cond`` so the
other updates do not pay for it. A term may keep state in the ``GANState``
(LeCam's moving averages): ``init_state`` makes it and ``next_state`` updates
it after each update.

Config: ``loss.d_penalties = "r1:10,gp:10@16"``, i.e. comma-separated
``name:weight[@every]``; see ``jaxgan.core.penalties`` for the names. A weight may be a
schedule over training steps (``jaxgan.core.schedules``), e.g.
``"r1:cosine(0.05,0.005,kimg=20000),r2:cosine(0.05,0.005,kimg=20000)"``. With
``loss.lazy=separate`` the lazy terms leave the main update for a regularization step of
their own (StyleGAN2's ``Dreg``/``Greg`` phases; ``jaxgan.core.train_step``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxgan.core import schedules
from jaxgan.core.collectives import shard_of_global
from jaxgan.errors import ConfigError
from jaxgan.registry import Registry, UnknownNameError

Array = jax.Array
PyTree = Any
Metrics = dict[str, Array]
ApplyD = Callable[[Array, Array | None, Array], Array]  # d(x, y, key) -> raw outputs
ApplyG = Callable[..., Array]  # g(z, y, key=..., method=None, **kwargs) -> G's output


@dataclasses.dataclass(frozen=True)
class TermContext:
  """What an objective term may look at (this device's share of the batch).

  Attributes:
    d: ``d(x, y, key) -> raw outputs``: D in training mode, with this update's
      weights (spectrally normalised if configured) and collections (not
      updated), dropout and augmentation drawn from ``key``. Differentiable in x.
    g: ``g(*inputs, key=..., method=None, **kwargs) -> output``: G in training mode with
      this update's weights (differentiated in G's update, fixed in D's), its random
      inputs from ``key``; ``method`` calls a part (``mapping``, ``synthesis``).
    params: the updating player's own parameters (differentiated), for terms on weights.
    z: the update's noise (this device's share), the fake batch's input.
    real_x, real_y, fake_x, fake_y: the batches (labels None if unconditional).
    real_out, fake_out: D's raw outputs of the adversarial pass (None where that
      pass did not look at the batch, e.g. real in G's update for most losses).
    real_heads, fake_heads: the outputs of D's class head in that pass, by name
      (``jaxgan.core.conditioning``; None for a D without one or a batch it did not score).
    step: the training step; update: this player's update count (k per step for D).
    key: the term's own random stream, and state: the term's persistent state
      (None if it keeps none); both set per term by ``evaluate``.
    axis_name: the device axis, for terms that need global batch statistics.
    group: examples per D output (PacGAN's m; 1 otherwise).
  """

  d: ApplyD
  real_x: Array
  real_y: Array | None
  fake_x: Array
  fake_y: Array | None
  real_out: Array | None
  fake_out: Array
  step: Array
  update: Array
  g: ApplyG | None = None
  params: PyTree = None
  z: Array | None = None
  axis_name: str | None = None
  group: int = 1
  key: Array | None = None
  state: PyTree = None
  real_heads: dict[str, Array] | None = None
  fake_heads: dict[str, Array] | None = None

  def draw(self, sample: Callable[[Array, int], PyTree], key: Array) -> PyTree:
    """This device's slice of ``sample(key, global_batch)``: per-example random values that
    a one-device run would draw identically (noise, interpolation weights)."""
    return shard_of_global(sample, key, self.real_x.shape[0], self.axis_name)

  def global_mean(self, x: Array) -> Array:
    """Mean over the global batch (all devices)."""
    m = jnp.mean(x)
    return m if self.axis_name is None else lax.pmean(m, self.axis_name)


@dataclasses.dataclass(frozen=True)
class Penalty:
  """A registered regularizer.

  Attributes:
    fn: ``fn(ctx) -> (loss, metrics)``, or ``(loss, metrics, next state)`` with
      ``updates_state`` (a term whose state comes out of the same computation as its
      loss, e.g. path length's running mean; a lazy one keeps its state on skipped updates).
    per_example: it differentiates D's output of one example with respect to that
      example, which batch statistics in D would mix.
    init_state, next_state: the term's persistent state, and (without
      ``updates_state``) its update after every update of the player.
    needs_g_parts: it calls G's ``mapping`` and ``synthesis`` apart (``ctx.g(...,
      method=...)``); refused for a generator without them.
    reads_outputs: it reads D's outputs of the adversarial pass (``real_out``,
      ``fake_out``), which a separate regularization step does not make.
  """

  fn: Callable[[TermContext], tuple]
  per_example: bool = False
  init_state: Callable[[], PyTree] | None = None
  next_state: Callable[[TermContext], PyTree] | None = None
  updates_state: bool = False
  needs_g_parts: bool = False
  reads_outputs: bool = False


@dataclasses.dataclass(frozen=True)
class Term:
  """A penalty (or the adversarial loss) with its weight and interval."""

  name: str
  fn: Callable[[TermContext], tuple]
  weight: float | schedules.Schedule = 1.0  # a Schedule counts training steps
  every: int = 1
  init_state: Callable[[], PyTree] | None = None
  next_state: Callable[[TermContext], PyTree] | None = None
  per_example: bool = False
  updates_state: bool = False
  needs_g_parts: bool = False
  reads_outputs: bool = False

  batch_size: int | None = None  # for a weight scheduled in kimg

  @property
  def lazy(self) -> bool:
    return self.every > 1

  @property
  def weighted(self) -> bool:
    """Whether the term has a non-zero weight at some step."""
    if isinstance(self.weight, schedules.Schedule):
      return self.weight.bounds[1] > 0
    return self.weight > 0

  def weight_at(self, step: Array) -> Array | float:
    """The weight at training step ``step`` (a number as is)."""
    if isinstance(self.weight, schedules.Schedule):
      return self.weight(step, self.batch_size)
    return self.weight


def split_top(text: str, sep: str) -> list[str]:
  """``text`` split at every ``sep`` outside parentheses (schedules hold commas and @)."""
  out, depth, start = [], 0, 0
  for i, ch in enumerate(text):
    depth += (ch == "(") - (ch == ")")
    if ch == sep and depth == 0:
      out.append(text[start:i])
      start = i + 1
  return [*out, text[start:]]


def parse_spec(
  spec: str, registry: Registry[Penalty], where: str
) -> list[tuple[str, float | schedules.Schedule, int]]:
  """``"r1:10,gp:10@16"`` -> [(name, weight, every)]; raises ConfigError with the choices.
  A weight written as a schedule (``r1:cosine(1,0.1,kimg=100)@16``) is a Schedule."""
  out = []
  for item in (s.strip() for s in split_top(spec, ",")):
    if not item:
      continue
    name, _, rest = item.partition(":")
    name = name.strip()
    try:
      registry.get(name)
    except UnknownNameError as e:
      raise ConfigError(f"{where}: {e}") from None
    parts = split_top(rest, "@")
    weight_s, every_s = (parts[0], "") if len(parts) == 1 else ("@".join(parts[:-1]), parts[-1])
    if not weight_s.strip():
      raise ConfigError(
        f"{where}: {item!r} has no weight; write name:weight[@every], "
        f"e.g. {name}:10 or {name}:10@16."
      )
    if "(" in weight_s:  # a schedule
      scheduled = schedules.parse(weight_s, f"{where}: weight of {name!r}")
      if scheduled.bounds[0] < 0:
        raise ConfigError(f"{where}: weight of {name!r} must stay >= 0, got {scheduled.text}.")
      if any(name == n for n, _, _ in out):
        raise ConfigError(f"{where}: {name!r} appears twice.")
      out.append((name, scheduled, _interval(every_s, name, where)))
      continue
    try:
      weight = float(weight_s)
    except ValueError:
      raise ConfigError(
        f"{where}: weight {weight_s.strip()!r} of {name!r} is not a number; "
        f"write name:weight[@every], e.g. {name}:10@16."
      ) from None
    every = _interval(every_s, name, where, weight)
    if not weight >= 0 or weight == float("inf"):
      raise ConfigError(
        f"{where}: weight of {name!r} must be a finite number >= 0, got {weight_s.strip()}."
      )
    if any(name == n for n, _, _ in out):
      raise ConfigError(f"{where}: {name!r} appears twice.")
    out.append((name, weight, every))
  return out


def _interval(every_s: str, name: str, where: str, weight: float = 10.0) -> int:
  try:
    every = int(every_s) if every_s.strip() else 1
  except ValueError:
    raise ConfigError(
      f"{where}: interval {every_s.strip()!r} of {name!r} is not an integer; "
      f"write name:weight@every, e.g. {name}:{weight:g}@16."
    ) from None
  if every < 1:
    raise ConfigError(f"{where}: interval of {name!r} must be >= 1, got {every}.")
  return every


def build_terms(
  adversarial: Callable[[TermContext], tuple[Array, Metrics]],
  spec: str,
  registry: Registry[Penalty],
  where: str,
  batch_size: int | None = None,
) -> tuple[Term, ...]:
  """The adversarial term ``adv`` followed by the configured penalties (``batch_size``
  counts the images of a weight scheduled in kimg)."""
  terms = [Term("adv", adversarial)]
  for name, weight, every in parse_spec(spec, registry, where):
    p = registry.get(name)
    if isinstance(weight, schedules.Schedule):
      weight.bind(batch_size)  # a kimg schedule without a batch size: one line, now
    terms.append(
      Term(
        name, p.fn, weight, every, p.init_state, p.next_state, p.per_example, p.updates_state,
        p.needs_g_parts, p.reads_outputs, batch_size,
      )
    )  # fmt: skip
  return tuple(terms)


def init_states(terms: Sequence[Term]) -> dict[str, PyTree]:
  return {t.name: t.init_state() for t in terms if t.init_state is not None}


def evaluate(
  terms: Sequence[Term],
  ctx: TermContext,
  keys: dict[str, Array],
  states: dict[str, PyTree],
  player: str,
  *,
  skip_lazy: bool = True,
) -> tuple[Array, Metrics, dict[str, PyTree]]:
  """(total loss, metrics, next term states) of ``player``'s ('d' or 'g') objective.

  Metrics: ``{player}_loss`` (the total), ``{player}_loss/{term}`` (each term's weighted
  contribution; 0 on updates a lazy term skips, N x on the others, so the logged mean is
  its average contribution) and each term's own metrics as ``{player}/{term}/{name}``
  (for a lazy term also 0 or N x, so that their mean over a log interval of whole
  multiples of N is the value). ``skip_lazy=False``: every term runs (a separate
  regularization step, which is itself taken on every N-th update only), still N x.
  """
  total = jnp.zeros((), jnp.float32)
  metrics: Metrics = {}
  next_states = {}
  for term in terms:
    tctx = dataclasses.replace(ctx, key=keys[term.name], state=states.get(term.name))
    if isinstance(term.weight, schedules.Schedule):
      weight = term.weight_at(ctx.step)
      scale = weight * term.every
      if term.weight.varies:
        metrics[f"weight/{player}/{term.name}"] = weight
    else:
      scale = term.weight * term.every

    def run(tctx=tctx, term=term, scale=scale):
      out = term.fn(tctx)  # a lazy term's metrics x N too: their mean over updates is the value
      new = out[2] if term.updates_state else None
      return scale * out[0], jax.tree.map(lambda v: term.every * v, out[1]), new

    if term.lazy and skip_lazy:
      shapes = jax.eval_shape(run)

      def skip(shapes=shapes, tctx=tctx):
        contribution, m, _ = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        return contribution, m, tctx.state if shapes[2] is not None else None

      contribution, m, new = lax.cond(ctx.update % term.every == 0, run, skip)
    else:
      contribution, m, new = run()
    total = total + contribution
    metrics[f"{player}_loss/{term.name}"] = contribution
    metrics.update({f"{player}/{term.name}/{k}": v for k, v in m.items()})
    if term.updates_state:
      next_states[term.name] = jax.lax.stop_gradient(new)
    elif term.next_state is not None:
      next_states[term.name] = jax.lax.stop_gradient(term.next_state(tctx))
  metrics[f"{player}_loss"] = total
  return total, metrics, next_states
