"""Drawing samples from a trained state, in fixed-size compiled chunks."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.core import streams
from jaxgan.core.gan import GAN, check_truncation, g_forward
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

  G's own random inputs (per-layer noise, ...) come from a key's ``g`` sub-stream,
  folded with each chunk's first index. For a G without random inputs, samples depend
  only on (key, n, labels), not on the chunk size.

  Truncation, at sampling time only: ``truncation_psi`` < 1 pulls G's intermediate
  latents toward their tracked average (StyleGAN's ψ; G must track ``w_avg``,
  ``jaxgan.core.gan.check_truncation``), and ``truncation_z`` > 0 draws the normal
  prior truncated to [-t, t] (BigGAN's trick).
  """

  def __init__(
    self, gan: GAN, chunk: int = 1000, *, truncation_psi: float = 1.0, truncation_z: float = 0.0
  ):
    check_truncation(gan, truncation_psi, truncation_z)
    self.gan, self.chunk = gan, chunk
    self.truncation_psi, self.truncation_z = truncation_psi, truncation_z
    options = {} if truncation_psi == 1.0 else {"truncation_psi": truncation_psi}
    self._generate = jax.jit(
      lambda params, cols, z, y, key: g_forward(
        gan, params, cols, z, y, train=False, key=key, **options
      )[0]
    )

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
    g_key = streams.sub(jax.random.PRNGKey(0) if key is None else key, "g")
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
