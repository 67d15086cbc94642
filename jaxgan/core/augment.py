"""DiffAugment (Zhao et al., 2020): differentiable augmentation of everything D sees.

The same random policy is applied to real and generated images, in D's updates
and in G's (so G's gradient flows through the augmentation), with ``strength``
scaling every op (0 = identity; 1 = the paper's settings). Ops, on NHWC images:

  color        brightness + U[-0.5, 0.5), saturation x U[0, 2), contrast x U[0.5, 1.5)
  translation  shift by up to 1/8 of the image size, filling with zeros
  cutout       zero a square of half the image size at a random centre

as in the authors' ``DiffAugment_pytorch.py``. Each example's random parameters
are drawn for the whole global batch and sliced per device, so a data-parallel
run augments exactly as a one-device run does.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxgan.core import streams
from jaxgan.core.collectives import shard_of_global
from jaxgan.registry import Registry

Array = jax.Array
Draw = Callable[
  [Callable[[Array, int], Array], Array], Array
]  # (sample(key, n), key) -> local slice

AUGMENTATIONS: Registry[Callable[[Array, Array, float, Draw], Array]] = Registry("augmentation")


def _uniform(shape_tail=()):
  return lambda key, n: jax.random.uniform(key, (n, *shape_tail))


def _scaled_sizes(x: Array, ratio: float, strength: float) -> tuple[int, int, int, int]:
  """(H, W, round(H * ratio * strength), round(W * ratio * strength)) of NHWC images."""
  _, h, w, _ = x.shape
  return h, w, int(h * ratio * strength + 0.5), int(w * ratio * strength + 0.5)


def _ints(draw: Draw, key: Array, name: str, low: int, high: int) -> Array:
  """One integer in [low, high) per example, from the named sub-stream of ``key``."""
  return draw(lambda k, n: jax.random.randint(k, (n,), low, high), streams.sub(key, name))


@AUGMENTATIONS.register("color")
def color(x: Array, key: Array, strength: float, draw: Draw) -> Array:
  kb, ks, kc = (streams.sub(key, n) for n in ("brightness", "saturation", "contrast"))
  b = (draw(_uniform((1, 1, 1)), kb) - 0.5) * strength
  x = x + b
  mean = x.mean(axis=-1, keepdims=True)
  x = (x - mean) * (1.0 + (2.0 * draw(_uniform((1, 1, 1)), ks) - 1.0) * strength) + mean
  mean = x.mean(axis=(1, 2, 3), keepdims=True)
  return (x - mean) * (1.0 + (draw(_uniform((1, 1, 1)), kc) - 0.5) * strength) + mean


@AUGMENTATIONS.register("translation")
def translation(x: Array, key: Array, strength: float, draw: Draw, ratio: float = 0.125) -> Array:
  h, w, sh, sw = _scaled_sizes(x, ratio, strength)
  if sh == 0 and sw == 0:
    return x
  th, tw = _ints(draw, key, "rows", -sh, sh + 1), _ints(draw, key, "cols", -sw, sw + 1)
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))  # out-of-image reads land on zeros
  rows = jnp.clip(jnp.arange(h)[None, :] + th[:, None] + 1, 0, h + 1)
  cols = jnp.clip(jnp.arange(w)[None, :] + tw[:, None] + 1, 0, w + 1)
  x = jnp.take_along_axis(padded, rows[:, :, None, None], axis=1)
  return jnp.take_along_axis(x, cols[:, None, :, None], axis=2)


@AUGMENTATIONS.register("cutout")
def cutout(x: Array, key: Array, strength: float, draw: Draw, ratio: float = 0.5) -> Array:
  h, w, ch, cw = _scaled_sizes(x, ratio, strength)
  if ch == 0 or cw == 0:
    return x
  oh, ow = (
    _ints(draw, key, "rows", 0, h + (1 - ch % 2)),
    _ints(draw, key, "cols", 0, w + (1 - cw % 2)),
  )
  r = jnp.arange(h)[None, :] - (oh[:, None] - ch // 2)
  c = jnp.arange(w)[None, :] - (ow[:, None] - cw // 2)
  inside = ((r >= 0) & (r < ch))[:, :, None] & ((c >= 0) & (c < cw))[:, None, :]
  return x * (1.0 - inside[..., None].astype(x.dtype))


def parse(spec: str) -> tuple[str, ...]:
  """``"translation,cutout"`` -> the ops in order; unknown names raise with the choices."""
  names = tuple(n.strip() for n in spec.split(",") if n.strip())
  for n in names:
    AUGMENTATIONS.get(n)
  return names


def augment(
  x: Array, key: Array, ops: tuple[str, ...], strength: float, axis_name: str | None = None
) -> Array:
  """Applies ``ops`` in order to this device's images ``x`` [B_local, H, W, C]."""
  local_n = x.shape[0]

  def draw(sample, k):
    return shard_of_global(sample, k, local_n, axis_name)

  for name in ops:
    x = AUGMENTATIONS.get(name)(x, streams.sub(key, name), strength, draw)
  return x
