"""Drawing samples from a trained state, in fixed-size compiled chunks."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.core.gan import GAN, apply_net
from jaxgan.core.state import GANState


def to_unit_range(x: np.ndarray, value_range: tuple[float, float] | None) -> np.ndarray:
  """Model outputs in ``value_range`` -> float32 in [0, 1] (images); unchanged if None."""
  x = np.asarray(x, np.float32)
  if value_range is None:
    return x
  lo, hi = value_range
  return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


class Sampler:
  """Compiles G once per chunk size and returns numpy samples.

  Samples depend only on (key, n, labels), not on the chunk size.
  """

  def __init__(self, gan: GAN, chunk: int = 1000):
    self.gan = gan
    self.chunk = chunk
    self._generate = jax.jit(
      lambda params, cols, z, y: apply_net(gan.nets.generator, params, cols, z, y, train=False)[0]
    )

  def noise(self, key: jax.Array, n: int) -> jax.Array:
    return self.gan.noise.sample(key, n)

  def from_noise(
    self,
    state: GANState,
    z: jax.Array,
    labels: jax.Array | None = None,
    *,
    use_ema: bool = True,
    progress: Callable[[int, int], None] | None = None,
  ) -> np.ndarray:
    """G(z) for given noise (and labels); ``progress(done, n)`` after each chunk."""
    params = state.sampling_params() if use_ema else state.g.params
    n = z.shape[0]
    if self.gan.conditional and labels is None:
      raise ValueError("this GAN is conditional: pass labels (int array of shape [n])")
    out = []
    for i in range(0, n, self.chunk):
      zc = z[i : i + self.chunk]
      yc = None if labels is None else jnp.asarray(labels[i : i + self.chunk], jnp.int32)
      pad = self.chunk - zc.shape[0]
      if pad and n > self.chunk:  # keep one compiled shape
        zc = jnp.concatenate([zc, jnp.zeros((pad, *zc.shape[1:]), zc.dtype)])
        yc = None if yc is None else jnp.concatenate([yc, jnp.zeros((pad,), jnp.int32)])
      x = np.asarray(self._generate(params, state.g.collections, zc, yc))
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
    x = self.from_noise(state, self.noise(noise_key, n), labels, progress=progress)
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
    x = self.from_noise(state, self.noise(z_key, n), labels, use_ema=use_ema)
    return x, None if labels is None else np.asarray(labels)
