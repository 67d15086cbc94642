"""Schedules for any scalar hyperparameter, written the same way for every key.

A scheduled key takes a string instead of a number (a number is a constant):

  constant(v)                          v throughout (the same as writing v)
  linear(a, b, kimg=T)                 a to b linearly over T thousand images, then b
  cosine(a, b, kimg=T)                 a to b along half a cosine, then b (R3GAN's
                                       cosine_decay_with_warmup: b + (a - b)(1 + cos(pi t/T))/2)
  step(a, b@t1, c@t2, unit=kimg)       a, then b from t1 on, c from t2 on
  ... warmup=W                         (linear, cosine) 0 to a linearly over the first W,
                                       then the schedule over the rest of T (R3GAN's warmup_nimg)

Time is counted in ``steps=`` (the key's own counter: training steps, or a player's
optimizer updates for ``optim.*``) or in ``kimg=`` (thousands of images: counter x
batch_size / 1000, StyleGAN's cur_nimg). Values are computed inside the compiled step
from that counter, in float32, so a run resumes on the same curve.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxgan.errors import ConfigError

KINDS = ("constant", "linear", "cosine", "step")
UNITS = ("steps", "kimg")
_CALL = re.compile(r"^\s*([A-Za-z_]\w*)\s*\((.*)\)\s*$", re.S)

Fn = Callable[[jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class Schedule:
  """A parsed schedule: ``values`` (constant: (v,); linear, cosine: (a, b); step: one per
  piece), ``times`` (linear, cosine: (T,); step: each later piece's start), their ``unit``,
  the ``warmup`` length, and what is applied to each value: ``value ** power * scale``
  (StyleGAN2's lazy-regularization correction of lr and Adam's betas)."""

  kind: str
  values: tuple[float, ...]
  times: tuple[float, ...] = ()
  unit: str = "steps"
  warmup: float = 0.0
  scale: float = 1.0
  power: float = 1.0
  text: str = ""

  @property
  def bounds(self) -> tuple[float, float]:
    """The least and greatest value the schedule takes (every kind is monotone per piece)."""
    vs = list(self.values) + ([0.0] if self.warmup > 0 else [])
    vs = [v**self.power * self.scale for v in vs]
    return min(vs), max(vs)

  @property
  def varies(self) -> bool:
    lo, hi = self.bounds
    return lo != hi

  def bind(self, batch_size: int | None) -> Fn:
    """The schedule as a function of its counter (an int array) -> float32."""
    per = 1.0
    if self.unit == "kimg":
      if not batch_size:
        raise ConfigError(f"schedule {self.text!r} counts kimg, which needs the batch size here.")
      per = 1000.0 / batch_size  # counts per kimg
    times = tuple(t * per for t in self.times)
    warmup = self.warmup * per
    raw = _RAW[self.kind](self.values, times, warmup)
    if self.scale == 1.0 and self.power == 1.0:
      return raw
    return lambda n: raw(n) ** jnp.float32(self.power) * jnp.float32(self.scale)

  def __call__(self, count: jax.Array, batch_size: int | None = None) -> jax.Array:
    return self.bind(batch_size)(count)


def _constant(values, times, warmup):
  return lambda n: jnp.full((), values[0], jnp.float32)


def _ramped(shape: Callable[[jax.Array], jax.Array]):
  """linear/cosine: ``shape`` maps t in [0, 1] to the fraction of the way from a to b."""

  def make(values, times, warmup):
    a, b = (jnp.float32(v) for v in values)
    (total,) = times

    def fn(n):
      n = jnp.asarray(n).astype(jnp.float32)
      t = jnp.clip((n - warmup) / jnp.float32(total - warmup), 0.0, 1.0)
      v = a + shape(t) * (b - a)
      if warmup > 0:
        v = jnp.where(n < warmup, a * n / jnp.float32(warmup), v)
      return v

    return fn

  return make


def _step(values, times, warmup):
  vals = jnp.asarray(values, jnp.float32)
  starts = jnp.asarray(times, jnp.float32)

  def fn(n):
    n = jnp.asarray(n).astype(jnp.float32)
    return vals[jnp.sum(n[..., None] >= starts, axis=-1)]

  return fn


_RAW = {
  "constant": _constant,
  "linear": _ramped(lambda t: t),
  "cosine": _ramped(lambda t: 1.0 - 0.5 * (1.0 + jnp.cos(jnp.pi * t))),
  "step": _step,
}

_USAGE = {
  "constant": "constant(v)",
  "linear": "linear(a,b,kimg=T) or linear(a,b,steps=T)",
  "cosine": "cosine(a,b,kimg=T) or cosine(a,b,steps=T)",
  "step": "step(a,b@t1,c@t2,unit=kimg)",
}


def _number(text: str, where: str, what: str) -> float:
  try:
    v = float(text)
  except ValueError:
    raise ConfigError(f"{where}: {what} {text.strip()!r} is not a number.") from None
  if not math.isfinite(v):
    raise ConfigError(f"{where}: {what} must be finite, got {text.strip()}.")
  return v


def parse(text: str, where: str) -> Schedule:
  """A schedule string (or a plain number) -> Schedule; a one-line ConfigError otherwise."""
  text = text.strip()
  m = _CALL.match(text)
  if not m:
    try:
      return Schedule("constant", (float(text),), text=text)
    except ValueError:
      raise ConfigError(
        f"{where}={text!r} is neither a number nor a schedule; write e.g. "
        f"cosine(2e-4,5e-5,kimg=20000) ({', '.join(KINDS)})."
      ) from None
  kind, body = m.group(1), m.group(2)
  if kind not in KINDS:
    raise ConfigError(f"{where}: unknown schedule {kind!r}; valid: {', '.join(KINDS)}.")
  usage = f"write {_USAGE[kind]}"
  args = [a.strip() for a in body.split(",")] if body.strip() else []
  pos = [a for a in args if "=" not in a]
  kw: dict[str, str] = {}
  for a in args:
    if "=" in a:
      k, _, v = a.partition("=")
      if k.strip() in kw:
        raise ConfigError(f"{where}: {k.strip()!r} given twice in {text!r}; {usage}.")
      kw[k.strip()] = v.strip()
  first_kw = next((i for i, a in enumerate(args) if "=" in a), len(args))
  if any("=" not in a for a in args[first_kw:]):
    raise ConfigError(f"{where}: {text!r} has a value after a key=value; {usage}.")
  allowed = {"constant": (), "linear": ("steps", "kimg", "warmup"), "step": ("unit",)}
  allowed["cosine"] = allowed["linear"]
  bad = [k for k in kw if k not in allowed[kind]]
  if bad:
    raise ConfigError(f"{where}: {kind} takes no {bad[0]!r} (in {text!r}); {usage}.")
  if kind == "constant":
    if len(pos) != 1:
      raise ConfigError(f"{where}: {text!r} needs one value; {usage}.")
    return Schedule(kind, (_number(pos[0], where, "value"),), text=text)
  if kind == "step":
    return _parse_step(text, pos, kw, where, usage)
  if len(pos) != 2:
    raise ConfigError(f"{where}: {text!r} needs a start and an end value; {usage}.")
  units = [u for u in UNITS if u in kw]
  if len(units) != 1:
    raise ConfigError(f"{where}: {text!r} needs its length as steps=T or kimg=T (one); {usage}.")
  total = _number(kw[units[0]], where, units[0])
  warmup = _number(kw.get("warmup", "0"), where, "warmup")
  if total <= 0 or not 0 <= warmup < total:
    raise ConfigError(
      f"{where}: {text!r} needs {units[0]} > 0 and 0 <= warmup < {units[0]}; {usage}."
    )
  values = tuple(_number(p, where, "value") for p in pos)
  return Schedule(kind, values, (total,), units[0], warmup, text=text)


def _parse_step(text: str, pos: list[str], kw: dict[str, str], where: str, usage: str):
  unit = kw.get("unit", "steps")
  if unit not in UNITS:
    raise ConfigError(f"{where}: unit={unit!r} in {text!r} is not one of {', '.join(UNITS)}.")
  if not pos or "@" in pos[0]:
    raise ConfigError(f"{where}: {text!r} needs a first value without @; {usage}.")
  values, times = [_number(pos[0], where, "value")], []
  for p in pos[1:]:
    v, at, t = p.partition("@")
    if not at:
      raise ConfigError(f"{where}: {p!r} in {text!r} needs value@start; {usage}.")
    values.append(_number(v, where, "value"))
    times.append(_number(t, where, "start"))
  if any(b <= a for a, b in zip([0.0, *times], times)):
    raise ConfigError(f"{where}: the starts in {text!r} must increase from above 0; {usage}.")
  return Schedule("step", tuple(values), tuple(times), unit, text=text)


def is_schedule(value: Any) -> bool:
  return isinstance(value, (str, Schedule))


def of(value: Any, where: str) -> Schedule | None:
  """A config value -> its Schedule, or None for a number (kept as is, bit for bit)."""
  if isinstance(value, Schedule):
    return value
  if isinstance(value, str):
    return parse(value, where)
  return None


def bounds(value: Any, where: str) -> tuple[float, float]:
  """(least, greatest) value of a number or a schedule, for range checks."""
  s = of(value, where)
  return (value, value) if s is None else s.bounds


def check_range(value: Any, where: str, lo: float, hi: float, *, hi_open: bool = False) -> None:
  """A one-line ConfigError when a number or any value of a schedule leaves [lo, hi]."""
  least, most = bounds(value, where)
  bad_hi = most >= hi if hi_open else most > hi
  if least < lo or bad_hi:
    interval = f"[{lo:g}, {hi:g}{')' if hi_open else ']'}"
    shown = f"{value!r}" if isinstance(value, str) else f"{value:g}"
    raise ConfigError(f"{where}={shown} must stay in {interval}.")
