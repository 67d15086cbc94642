"""Drawing samples from a trained state, in fixed-size compiled chunks.

Which batch-norm statistics G samples with (``BNStats``, ``config.eval.bn_stats``):

* ``running``: the running averages G kept while training (of the EMA's buffers when
  ``train.ema_buffers=average``, else G's own): eval mode, as always.
* ``standing``: before sampling, G runs in training mode, its weights as stored, on
  ``steps`` batches of ``batch`` fresh z and uniformly random labels; each batch norm's
  statistics are then the plain average of those batches' statistics (each batch counts
  once), and G samples in eval mode with them. This is BigGAN-PyTorch's
  ``accumulate_standing_stats`` with ``--mybn``; the variance averaged is the kind G's
  running statistics hold (torch-style unbiased in ``sngan``/``biggan``, flax's biased in
  ``dcgan``).
* ``batch``: G samples in training mode, each batch of ``batch`` examples normalised by
  its own statistics (StudioGAN's ``batch_statistics``); a short last batch is filled up
  with extra draws that are thrown away, so every statistic is over ``batch`` examples.

A training-mode pass runs on one device over all its examples, which is what a
cross-device batch norm computes whatever the run's device count.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.core import streams
from jaxgan.core.collectives import AXIS
from jaxgan.core.gan import GAN, apply_net, check_truncation, g_forward, g_rngs, player_weights
from jaxgan.core.state import GANState, PyTree
from jaxgan.errors import ConfigError
from jaxgan.models import spectral_norm

BN_STATS = ("running", "standing", "batch")
BN_COLLECTION = "batch_stats"  # where jaxgan's batch norms (flax's and torch-style) keep them
_SENTINEL = 2.0**64  # running statistics no batch statistic can move in float32


@dataclasses.dataclass(frozen=True)
class BNStats:
  """The batch-norm statistics G samples with: ``mode`` one of ``BN_STATS``; ``batch``
  examples per training-mode pass; ``steps`` passes for ``standing``, drawn from ``seed``'s
  ``bn_standing`` stream."""

  mode: str = "running"
  batch: int = 64
  steps: int = 16
  seed: int = 0

  def describe(self) -> dict[str, Any]:
    """What an evaluation record says about it."""
    if self.mode == "running":
      return {"mode": "running"}
    if self.mode == "batch":
      return {"mode": "batch", "batch": self.batch}
    return {"mode": "standing", "batch": self.batch, "steps": self.steps, "seed": self.seed}


def bn_stats_of(config: Any, mode: str | None = None) -> BNStats:
  """``config.eval``'s choice (``mode`` overrides it); runs saved before these keys sample
  with running statistics."""
  e = config.eval
  return BNStats(
    e.get("bn_stats", "running") if mode is None else mode,
    e.get("bn_batch", 64),
    e.get("standing_steps", 16),
    e.get("seed", 0),
  )


@functools.cache
def _generator_collections(generator: Any, z_dim: int, num_classes: int) -> frozenset[str]:
  z = jnp.zeros((2, z_dim), jnp.float32)
  y = jnp.zeros((2,), jnp.int32) if num_classes else None
  key = jax.random.PRNGKey(0)
  variables = jax.eval_shape(
    lambda: generator.init({"params": key, **g_rngs(key)}, z, y, train=False)
  )
  return frozenset(k for k, v in variables.items() if jax.tree.leaves(v))


def has_batch_norm(gan: GAN) -> bool:
  """Whether G keeps batch-norm statistics (read off one abstract ``init``)."""
  return BN_COLLECTION in _generator_collections(gan.nets.generator, gan.noise.dim, gan.num_classes)


def check_bn_stats(gan: GAN, bn: BNStats, where: str = "config.eval.") -> None:
  """Statistics that cannot be replaced: one line, before anything compiles."""
  if bn.mode not in BN_STATS:
    raise ConfigError(f"{where}bn_stats={bn.mode!r}: choose {', '.join(BN_STATS)}.")
  if bn.mode == "running":
    return
  if not has_batch_norm(gan):
    raise ConfigError(
      f"{where}bn_stats={bn.mode!r}: this generator ({type(gan.nets.generator).__name__}) has "
      f"no batch norm, so there are no statistics to replace; use running."
    )
  if bn.batch < 2 or bn.steps < 1:
    raise ConfigError(
      f"{where}bn_batch must be >= 2 and {where}standing_steps >= 1, got {bn.batch} and {bn.steps}."
    )


def train_pass(
  gan: GAN,
  params: PyTree,
  collections: dict,
  z: jax.Array,
  y: jax.Array | None,
  key: jax.Array,
  **options,
) -> tuple[jax.Array, PyTree]:
  """G in training mode with its weights as stored (spectral norm not iterated): (G(z),
  the batch-norm statistics as this pass moved them). The device axis a cross-device batch
  norm reduces over is bound to this one device."""
  params, collections = player_weights(gan, "g", params, collections, update=False)
  module_cols = {k: v for k, v in collections.items() if k != spectral_norm.COLLECTION}
  rngs = g_rngs(key)

  def apply(z, y):
    out, cols = apply_net(
      gan.nets.generator, params, module_cols, z, y, train=True, rngs=rngs, **options
    )
    return out, cols[BN_COLLECTION]

  out, stats = jax.vmap(apply, in_axes=(0, None if y is None else 0), axis_name=AXIS)(
    z[None], None if y is None else y[None]
  )
  return out[0], jax.tree.map(lambda a: a[0], stats)


def to_unit_range(x: np.ndarray, value_range: tuple[float, float] | None) -> np.ndarray:
  """Model outputs in ``value_range`` -> float32 in [0, 1] (images); unchanged if None."""
  x = np.asarray(x, np.float32)
  if value_range is None:
    return x
  lo, hi = value_range
  return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


class Sampler:
  """Compiles G once per chunk size and returns numpy samples.

  Batch-norm statistics as ``bn_stats`` (module docstring; default: running).

  G's own random inputs (per-layer noise, ...) come from a key's ``g`` sub-stream,
  folded with each chunk's first index. For a G without random inputs, samples depend
  only on (key, n, labels), not on the chunk size.

  Truncation, at sampling time only: ``truncation_psi`` < 1 pulls G's intermediate
  latents toward their tracked average (StyleGAN's ψ; G must track ``w_avg``,
  ``jaxgan.core.gan.check_truncation``), and ``truncation_z`` > 0 draws the normal
  prior truncated to [-t, t] (BigGAN's trick).
  """

  def __init__(
    self,
    gan: GAN,
    chunk: int = 1000,
    *,
    truncation_psi: float = 1.0,
    truncation_z: float = 0.0,
    bn_stats: BNStats | None = None,
  ):
    check_truncation(gan, truncation_psi, truncation_z)
    self.bn_stats = BNStats() if bn_stats is None else bn_stats
    check_bn_stats(gan, self.bn_stats)
    self.gan, self.chunk = gan, chunk
    self.truncation_psi, self.truncation_z = truncation_psi, truncation_z
    options = {} if truncation_psi == 1.0 else {"truncation_psi": truncation_psi}
    self._generate = jax.jit(
      lambda params, cols, z, y, key: g_forward(
        gan, params, cols, z, y, train=False, key=key, **options
      )[0]
    )
    self._train_pass = jax.jit(functools.partial(train_pass, gan, **options))
    self._train_stats = jax.jit(lambda *args: train_pass(gan, *args, **options)[1])
    self._momentum = None  # each batch norm's, per channel: G's architecture, not its weights
    self._standing = None  # (params, collections, their standing statistics)

  def bn_record(self) -> dict[str, Any] | None:
    """The batch-norm statistics an evaluation record names (None: G has no batch norm)."""
    return self.bn_stats.describe() if has_batch_norm(self.gan) else None

  def standing_statistics(
    self,
    params: PyTree,
    collections: dict,
    batches: Sequence[tuple[jax.Array, jax.Array | None]] | None = None,
  ) -> PyTree:
    """Each batch norm's average of ``bn_stats.steps`` training-mode batch statistics (on
    ``batches`` of (z, labels) when given, else on draws from the ``bn_standing`` stream).

    A pass from running statistics of zeros leaves ``m * b`` (``m``: the layer's momentum,
    ``b``: this batch's statistic); ``m`` is read off one pass from statistics too large for
    any batch to move (``(1 - m) * S`` exactly), so any batch norm whose statistics move as
    ``(1 - m) * old + m * b`` works. The sum runs in float64.
    """
    bn = self.bn_stats
    stats = collections[BN_COLLECTION]
    base = streams.sub(jax.random.PRNGKey(bn.seed), "bn_standing")
    count = bn.steps if batches is None else len(batches)

    def run(i: int, fill: float) -> PyTree:
      k = jax.random.fold_in(base, i)
      if batches is None:
        z = self.gan.noise.sample(streams.sub(k, "z"), bn.batch)
        y = self.gan.sample_labels(streams.sub(k, "y"), bn.batch)
      else:
        z, y = batches[i]
      start = jax.tree.map(lambda a: jnp.full_like(a, fill), stats)
      moved = self._train_stats(
        params, {**collections, BN_COLLECTION: start}, z, y, streams.sub(k, "g")
      )
      return jax.tree.map(lambda a: np.asarray(a, np.float64), moved)

    if self._momentum is None:
      self._momentum = jax.tree.map(lambda a: 1.0 - a / _SENTINEL, run(0, _SENTINEL))
      if any(float(np.min(m)) <= 0.0 for m in jax.tree.leaves(self._momentum)):
        raise ConfigError(
          "config.eval.bn_stats='standing': a training-mode pass leaves some of G's "
          "batch-norm statistics where they were (momentum 0); use running or batch."
        )
    momentum = self._momentum
    total = run(0, 0.0)
    for i in range(1, count):
      total = jax.tree.map(np.add, total, run(i, 0.0))
    return jax.tree.map(lambda t, m: jnp.asarray(t / (count * m), jnp.float32), total, momentum)

  def _with_bn_stats(self, params: PyTree, collections: dict) -> dict:
    """G's collections with standing statistics in place of its running ones (computed
    once per set of weights)."""
    if self.bn_stats.mode != "standing":
      return collections
    cached = self._standing
    if cached is None or cached[0] is not params or cached[1] is not collections:
      cached = (params, collections, self.standing_statistics(params, collections))
      self._standing = cached
    return {**collections, BN_COLLECTION: cached[2]}

  def _from_noise_batch(self, params, collections, z, labels, key, g_key, progress):
    """``from_noise`` with batch statistics: passes of exactly ``bn_stats.batch`` examples."""
    n, size = z.shape[0], self.bn_stats.batch
    fill_key = streams.sub(key, "bn_fill")
    out = []
    for i in range(0, n, size):
      zc = z[i : i + size]
      yc = None if labels is None else jnp.asarray(labels[i : i + size], jnp.int32)
      pad = size - zc.shape[0]
      if pad:
        k = jax.random.fold_in(fill_key, i)
        zc = jnp.concatenate([zc, self.noise(streams.sub(k, "z"), pad).astype(zc.dtype)])
        if yc is not None:
          yc = jnp.concatenate([yc, self.gan.sample_labels(streams.sub(k, "y"), pad)])
      x, _ = self._train_pass(params, collections, zc, yc, jax.random.fold_in(g_key, i))
      out.append(np.asarray(x)[: size - pad])
      if progress:
        progress(min(i + size, n), n)
    return np.concatenate(out)

  def noise(self, key: jax.Array, n: int) -> jax.Array:
    return self.gan.noise.sample(key, n, truncation=self.truncation_z)

  def from_noise(
    self,
    state: GANState,
    z: jax.Array,
    labels: jax.Array | None = None,
    *,
    key: jax.Array | None = None,
    use_ema: bool = True,
    progress: Callable[[int, int], None] | None = None,
  ) -> np.ndarray:
    """G(z) for given noise (and labels); G's random inputs from ``key`` (default: a fixed
    key); ``progress(done, n)`` after each chunk."""
    params, collections = state.sampling_variables() if use_ema else (state.g.params, None)
    collections = state.g.collections if collections is None else collections
    key = jax.random.PRNGKey(0) if key is None else key
    g_key = streams.sub(key, "g")
    n = z.shape[0]
    if self.gan.conditional and labels is None:
      raise ValueError("this GAN is conditional: pass labels (int array of shape [n])")
    if self.bn_stats.mode == "batch":
      return self._from_noise_batch(params, collections, z, labels, key, g_key, progress)
    collections = self._with_bn_stats(params, collections)
    out = []
    for i in range(0, n, self.chunk):
      zc = z[i : i + self.chunk]
      yc = None if labels is None else jnp.asarray(labels[i : i + self.chunk], jnp.int32)
      pad = self.chunk - zc.shape[0]
      if pad and n > self.chunk:  # keep one compiled shape
        zc = jnp.concatenate([zc, jnp.zeros((pad, *zc.shape[1:]), zc.dtype)])
        yc = None if yc is None else jnp.concatenate([yc, jnp.zeros((pad,), jnp.int32)])
      x = np.asarray(self._generate(params, collections, zc, yc, jax.random.fold_in(g_key, i)))
      out.append(x[: x.shape[0] - pad] if pad and n > self.chunk else x)
      if progress:
        progress(min(i + self.chunk, n), n)
    return np.concatenate(out)

  def balanced(
    self,
    state: GANState,
    n: int,
    *,
    noise_key: jax.Array,
    label_seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
  ) -> tuple[np.ndarray, np.ndarray | None]:
    """n samples for metrics and export: images as float32 in [0, 1] (raw values for toy
    data) and, if conditional, int32 labels balanced over the classes in a seeded order."""
    labels = None
    if self.gan.conditional:
      labels = (
        np.random.default_rng(label_seed)
        .permutation(np.arange(n) % self.gan.num_classes)
        .astype(np.int32)
      )
    z = self.noise(noise_key, n)
    x = self.from_noise(state, z, labels, key=noise_key, progress=progress)
    if self.gan.data.is_image:
      x = to_unit_range(x, self.gan.nets.output_range)
    return x, labels

  def sample(
    self,
    state: GANState,
    key: jax.Array,
    n: int,
    labels: jax.Array | None = None,
    *,
    use_ema: bool = True,
  ) -> tuple[np.ndarray, np.ndarray | None]:
    """n samples and their labels (None for unconditional models)."""
    z_key, y_key = jax.random.split(key)
    if self.gan.conditional and labels is None:
      labels = self.gan.sample_labels(y_key, n)
    x = self.from_noise(state, self.noise(z_key, n), labels, key=key, use_ema=use_ema)
    return x, None if labels is None else np.asarray(labels)
