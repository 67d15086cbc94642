"""Many runs in one program: seeds and hyperparameter sweeps as a vmapped axis.

``config.train.num_seeds = S`` and ``config.sweep.<key> = (v1, v2, ...)`` make a
*population* of members, one per (swept value, seed) pair, value-major:
member ``m`` = value combination ``m // S``, seed ``config.seed + m % S``. All
members train in one compiled program: every leaf of ``GANState`` gains a
leading member axis except ``step``, which stays a shared scalar so that lazy
terms keep their ``lax.cond`` (a batched predicate would turn it into a select
that computes both branches).

The member axis is ``jax.vmap``-ed *inside* the per-device function that
``jaxgan.core.parallel.Runner`` runs under ``shard_map``/``pmap``: every device holds
all members and its slice of each member's batch, gradients are averaged over
devices per member, and nothing about data parallelism changes.

Member m is the run you would get by launching ``config.seed = seed_m`` with
its swept values, because each member is initialised from ``PRNGKey(seed_m)``,
draws its randomness from its own state, and (``train.data_order='per_seed'``,
the default) reads the example order of seed_m; ``'shared'`` gives every member
``config.seed``'s order, so members differ only in initialisation and noise.

Swept hyperparameters live in the state (``GANState.hparams``), so a checkpoint
holds them; inside the step each member rebuilds the GAN's numeric parts
(optimizers, penalty weights, EMA half-life) from its traced values. Only
float keys that leave the program's shapes and structure alone can be swept
(``SWEEPABLE``); anything else fails in ``refuse_unsweepable`` with what to do.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgan.core import optim
from jaxgan.core.objectives import parse_spec
from jaxgan.core.penalties import PENALTIES
from jaxgan.core.state import GANState, PyTree
from jaxgan.errors import ConfigError

PENALTY_KEYS = {f"loss.{who}_penalties": who for who in PENALTIES}  # swept specs -> player
OPTIM_KEYS = ("lr", "b1", "b2", "eps", "weight_decay", "momentum", "decay", "decay_rate", "min_lr")
SWEEPABLE = tuple(f"optim.{who}.{k}" for who in ("g", "d") for k in OPTIM_KEYS) + (
  "loss.d_penalties",
  "loss.g_penalties",
  "train.ema_decay",
  "train.ema_kimg",
  "train.ema_rampup",
)
DATA_ORDERS = ("per_seed", "shared")


def sweep_schema() -> ml_collections.ConfigDict:
  """``config.sweep``: every sweepable key, ``()`` meaning not swept."""
  root: dict = {}
  for key in SWEEPABLE:
    node = root
    *parents, leaf = key.split(".")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = ()
  return ml_collections.ConfigDict(root)


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(node, (ml_collections.ConfigDict, dict)):
    out = {}
    for k, v in node.items():
      out.update(_flat(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: node}


def _get(config: ml_collections.ConfigDict, key: str) -> Any:
  node = config
  for part in key.split("."):
    node = node[part]
  return node


def _set(config: ml_collections.ConfigDict, key: str, value: Any) -> None:
  *parents, leaf = key.split(".")
  node = config
  for p in parents:
    node = node[p]
  node[leaf] = value


def refuse_unsweepable(sweep: Any, config: ml_collections.ConfigDict) -> None:
  """A ``config.sweep`` key outside ``SWEEPABLE`` -> ConfigError saying why and what to do."""
  for key in _flat(sweep):
    if key in SWEEPABLE:
      continue
    try:
      _get(config, key)
      exists = True
    except (KeyError, AttributeError):
      exists = False
    what = (
      f"config.{key} cannot be swept in one program: it changes shapes, data or the "
      f"compiled program, not just numbers"
      if exists
      else f"config.sweep.{key} names no config key"
    )
    raise ConfigError(
      f"{what}. Launch one run per value instead; sweepable keys: {', '.join(SWEEPABLE)}."
    )


@dataclasses.dataclass(frozen=True)
class Member:
  index: int
  seed: int
  values: dict[str, Any]  # swept key -> this member's value

  @property
  def label(self) -> str:
    return " ".join([f"{k}={v}" for k, v in self.values.items()] + [f"seed={self.seed}"])


@dataclasses.dataclass(frozen=True)
class Population:
  """The members of one program; ``size == 1`` is an ordinary single run."""

  members: tuple[Member, ...]
  swept: tuple[str, ...]
  num_seeds: int
  data_order: str = "per_seed"

  @property
  def size(self) -> int:
    return len(self.members)

  @property
  def batched(self) -> bool:
    """Whether the state carries a member axis: several members, or any sweep (a sweep
    of one value still keeps its value in ``GANState.hparams``)."""
    return self.size > 1 or bool(self.swept)

  @property
  def stacked_data(self) -> bool:
    """Whether members read different example orders (so inputs gain a member axis)."""
    return self.data_order == "per_seed" and len({m.seed for m in self.members}) > 1

  def member_config(self, config: ml_collections.ConfigDict, i: int) -> ml_collections.ConfigDict:
    """Member i as a plain single run: its seed and values, no sweep, one seed."""
    member = self.members[i]
    c = ml_collections.ConfigDict(config.to_dict())
    c.seed = member.seed
    c.train.num_seeds = 1
    for k, v in member.values.items():
      _set(c, k, v)
    c.sweep = sweep_schema()
    return c

  def hparams(self) -> dict:
    """The swept numbers as nested dicts of float32 [size] arrays (``GANState.hparams``);
    a swept ``loss.d_penalties`` or ``loss.g_penalties`` contributes one weight per penalty."""
    out: dict = {}
    for key in self.swept:
      values = [m.values[key] for m in self.members]
      if key in PENALTY_KEYS:
        registry = PENALTIES[PENALTY_KEYS[key]]
        specs = [parse_spec(v, registry, f"config.sweep.{key}") for v in values]
        for j, (name, _, _) in enumerate(specs[0]):
          out.setdefault("loss", {}).setdefault(key.split(".")[1], {})[name] = np.asarray(
            [s[j][1] for s in specs], np.float32
          )
        continue
      node = out
      *parents, leaf = key.split(".")
      for p in parents:
        node = node.setdefault(p, {})
      node[leaf] = np.asarray(values, np.float32)
    return out

  def summarize(
    self, scalars: dict[str, Any], indices: Sequence[int] | None = None
  ) -> dict[str, float]:
    """Per-member values -> ``name`` (mean over members), ``name:std`` and ``name:<m>``.

    ``indices``: the members the values belong to, in order (default: all).
    """
    if not self.batched:
      return {k: float(v) for k, v in scalars.items()}
    indices = list(range(self.size)) if indices is None else list(indices)
    out = {}
    for k, v in scalars.items():
      v = np.asarray(v, np.float64)
      if v.shape != (len(indices),):
        out[k] = float(np.mean(v))
        continue
      with np.errstate(invalid="ignore"):  # inf in a member (e.g. a KL with no samples) -> nan std
        out[k] = float(np.mean(v))
        out[f"{k}:std"] = float(np.std(v))
      out.update({f"{k}:{i}": float(x) for i, x in zip(indices, v)})
    return out

  def layout_changes(self, config_changes: Sequence[str]) -> list[str]:
    """The config changes (``config.diff`` lines) that would change what each member is."""
    keys = ("sweep.", "train.num_seeds:", "train.data_order:", "seed:")
    return [c for c in config_changes if c.startswith(keys)]

  def describe(self) -> list[dict[str, Any]]:
    return [
      {"index": m.index, "seed": m.seed, "values": m.values, "label": m.label} for m in self.members
    ]


def from_config(config: ml_collections.ConfigDict) -> Population:
  """Reads ``train.num_seeds``, ``train.data_order`` and ``config.sweep``; checks them."""
  t = config.train
  if t.num_seeds < 1:
    raise ConfigError(f"config.train.num_seeds must be >= 1, got {t.num_seeds}.")
  if t.data_order not in DATA_ORDERS:
    raise ConfigError(
      f"config.train.data_order={t.data_order!r} is not valid. Valid choices: "
      f"{', '.join(DATA_ORDERS)}."
    )
  refuse_unsweepable(config.sweep, config)
  sweep = {k: tuple(v) for k, v in _flat(config.sweep).items() if v not in ((), None)}
  for key, values in sweep.items():
    where = f"config.sweep.{key}"
    if key in PENALTY_KEYS:
      if not all(isinstance(v, str) for v in values):
        raise ConfigError(f'{where} takes penalty specs, e.g. ("r1:1", "r1:10"); got {values!r}.')
      registry = PENALTIES[PENALTY_KEYS[key]]
      shapes = {tuple((n, e) for n, _, e in parse_spec(v, registry, where)) for v in values}
      if len(shapes) > 1:
        raise ConfigError(
          f"{where}: the specs must name the same penalties with the same intervals "
          f"and differ only in weights; got {values!r}. Launch one run per spec instead."
        )
      continue
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
      raise ConfigError(f"{where} takes numbers, e.g. (1e-4, 2e-4); got {values!r}.")
    if any(v == 0 for v in values) and any(v != 0 for v in values):
      raise ConfigError(
        f"{where}={values!r} mixes 0 with non-zero values; 0 switches the feature "
        f"off, which changes the program. Sweep non-zero values, or launch the 0 run "
        f"separately."
      )
  combos = list(itertools.product(*sweep.values())) if sweep else [()]
  members = []
  for combo in combos:
    for s in range(t.num_seeds):
      members.append(Member(len(members), config.seed + s, dict(zip(sweep, combo))))
  return Population(tuple(members), tuple(sweep), t.num_seeds, t.data_order)


def member_gan(gan: Any, config: ml_collections.ConfigDict, hparams: dict | None) -> Any:
  """The GAN with its swept numbers replaced by this member's (traced) values."""
  if not hparams:
    return gan
  flat = _flat(hparams)
  changes: dict[str, Any] = {}
  for who in ("g", "d"):
    mine = {k.rsplit(".", 1)[1]: v for k, v in flat.items() if k.startswith(f"optim.{who}.")}
    if mine:
      cfg = ml_collections.ConfigDict(config.optim[who].to_dict(), type_safe=False)
      for k, v in mine.items():
        cfg[k] = v
      changes[f"{who}_tx"] = optim.build_optimizer(optim.lazy_corrected(cfg, gan.reg_interval(who)))
  for key, who in PENALTY_KEYS.items():
    weights = {k.rsplit(".", 1)[1]: v for k, v in flat.items() if k.startswith(f"{key}.")}
    if weights:
      changes[f"{who}_terms"] = tuple(
        dataclasses.replace(t, weight=weights[t.name]) if t.name in weights else t
        for t in gan.terms(who)
      )
  ema = {
    f: flat[k]
    for k, f in (
      ("train.ema_decay", "decay"),
      ("train.ema_kimg", "half_life_kimg"),
      ("train.ema_rampup", "rampup"),
    )
    if k in flat
  }
  if ema:
    changes["ema"] = dataclasses.replace(gan.ema, **ema)
  return dataclasses.replace(gan, **changes)


def state_axes(state: GANState) -> GANState:
  """vmap axes of a population state: 0 everywhere but the shared ``step``."""
  return jax.tree.map(lambda _: 0, state).replace(step=None)


def _as_config_error(population: Population, fn: Callable) -> Callable:
  """Traced swept values that the GAN's construction branches on -> a ConfigError."""

  def wrapped(*args):
    try:
      return fn(*args)
    except (
      jax.errors.ConcretizationTypeError,
      jax.errors.TracerBoolConversionError,
      jax.errors.TracerIntegerConversionError,
    ) as e:
      raise ConfigError(
        f"config.sweep: {', '.join(population.swept)} decide(s) the program's structure here "
        f"({type(e).__name__}), so they cannot be swept in one program with these settings; "
        f"launch one run per value instead."
      ) from None

  return wrapped


def init_population(
  population: Population,
  gan: Any,
  config: ml_collections.ConfigDict,
  init_one: Callable[[Any, jax.Array], GANState],
) -> GANState:
  """Every member's initial state, stacked; member m starts from ``PRNGKey(seed_m)``."""
  keys = jnp.stack([jax.random.PRNGKey(m.seed) for m in population.members])
  hparams = population.hparams()

  def one(key, hp):
    return init_one(member_gan(gan, config, hp), key).replace(hparams=hp)

  state = jax.jit(_as_config_error(population, jax.vmap(one)))(keys, hparams)
  return state.replace(step=jnp.zeros((), jnp.int32))


MEMBER_LOOPS = ("auto", "vmap", "unroll")


def choose_member_loop(member_loop: str) -> bool:
  """``train.member_loop`` -> whether members run one after another inside the program.

  ``vmap`` batches the members' ops; ``unroll`` inlines one copy of the step per
  member (compile time grows with S, run time is S single steps). ``auto`` unrolls
  on CPU and vmaps on accelerators. On XLA:CPU vmap buys little (the small GANs
  are compute-bound there: 1.0-1.2x over sequential runs), turns convolutions into
  grouped ones that run ~4x slower per member (dcgan28), and, from S = 4 members
  of the 2-D ring on, rounds batched matmuls differently from single runs (4e-8
  after one step, which GAN training amplifies), while unrolled members equal
  their single runs bit for bit (docs/populations.md).
  """
  if member_loop == "auto":
    return jax.default_backend() == "cpu"
  return member_loop == "unroll"


def over_members(
  fn: Callable, example_state: GANState, inputs_axis: int | None, size: int, *, unroll: bool = False
) -> Callable:
  """``fn(state, inputs, device_data)`` of one member -> the same over all members.

  The state (all but ``step``) and, with ``inputs_axis=0``, the inputs carry the
  member axis; metrics gain it. ``unroll`` runs the members in turn instead of vmap.
  """
  axes = state_axes(example_state)
  if not unroll:
    return jax.vmap(fn, in_axes=(axes, inputs_axis, None), out_axes=(axes, 0))

  def looped(state, inputs, device_data):
    outs = [
      fn(
        member_state(state, i),
        inputs if inputs_axis is None else jax.tree.map(lambda x: x[i], inputs),
        device_data,
      )
      for i in range(size)
    ]
    states, metrics = zip(*outs)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[s.replace(step=None) for s in states])
    return stacked.replace(step=states[0].step), jax.tree.map(lambda *xs: jnp.stack(xs), *metrics)

  return looped


def vmap_step(
  population: Population,
  gan: Any,
  config: ml_collections.ConfigDict,
  fused_for: Callable[[Any], Callable],
  example_state: GANState,
  *,
  unroll: bool = False,
) -> Callable:
  """The per-device ``fn(state, inputs, device_data)`` over all members.

  ``fused_for(gan)`` builds one member's fused step; it is rebuilt inside the
  trace from the member's swept values. Inputs carry a member axis when members
  read different example orders (``Population.stacked_data``). ``unroll``: see
  ``choose_member_loop``.
  """

  def one(state, inputs, device_data):
    return fused_for(member_gan(gan, config, state.hparams))(state, inputs, device_data)

  in_inputs = 0 if population.stacked_data else None
  return _as_config_error(
    population, over_members(one, example_state, in_inputs, population.size, unroll=unroll)
  )


def member_state(state: GANState, i: int) -> GANState:
  """Member i of a population state, as a single run's state (plus its ``hparams``)."""
  step = state.step
  return jax.tree.map(lambda x: x[i], state.replace(step=None)).replace(step=step)


def check_member_index(
  population: Population, index: int | None, flag: str = "--seed_index"
) -> None:
  if index is not None and not 0 <= index < population.size:
    raise ConfigError(
      f"{flag}={index}: this run has {population.size} member(s); use 0..{population.size - 1}."
    )


class MemberPipeline:
  """Stacks members' pipelines: inputs gain a leading member axis.

  Members with the same seed share one pipeline; device data (a whole dataset
  kept on device) is the same for all and comes from the first.
  """

  def __init__(self, pipelines: Sequence[Any]):
    self.pipelines = list(pipelines)
    first = self.pipelines[0]
    self.spec, self.global_batch = first.spec, first.global_batch
    self.minibatches = first.minibatches

  def host_inputs(self, start: int, num_steps: int) -> PyTree:
    cache: dict[int, PyTree] = {}
    outs = []
    for p in self.pipelines:
      if id(p) not in cache:
        cache[id(p)] = p.host_inputs(start, num_steps)
      outs.append(cache[id(p)])
    return jax.tree.map(lambda *xs: np.stack(xs), *outs)

  def inputs_batch_axes(self) -> PyTree:
    return jax.tree.map(
      lambda a: None if a is None else a + 1,
      self.pipelines[0].inputs_batch_axes(),
      is_leaf=lambda a: a is None or isinstance(a, int),
    )

  def device_data(self) -> PyTree | None:
    return self.pipelines[0].device_data()

  def materialize(self, step_inputs, device_data, axis_name):
    return self.pipelines[0].materialize(step_inputs, device_data, axis_name)

  def close(self) -> None:
    for p in {id(p): p for p in self.pipelines}.values():
      p.close()
