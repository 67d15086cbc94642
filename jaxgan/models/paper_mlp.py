"""The MNIST nets of Goodfellow et al. (2014), as in the authors' released pylearn2 config.

G: 100-d noise -> ReLU 1200 -> ReLU 1200 -> sigmoid 784.
D: dropout(keep 0.8) -> maxout 240x5 -> dropout(keep 0.5) -> maxout 240x5 ->
   dropout(keep 0.5) -> one logit. Weights start uniform in +-irange (0.05 in G,
   0.005 in D), biases at 0. Dropout is in D only.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.models.layers import LabelProjection


def uniform_init(irange: float):
  """pylearn2's ``irange``: U(-irange, irange)."""

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -irange, irange)

  return init


class Maxout(nn.Module):
  """Dense to units * pieces, then the max over each unit's pieces (Goodfellow et al. 2013)."""

  units: int
  pieces: int
  irange: float

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h = nn.Dense(self.units * self.pieces, kernel_init=uniform_init(self.irange))(x)
    return h.reshape(*h.shape[:-1], self.units, self.pieces).max(axis=-1)


class PaperMLPGenerator(nn.Module):
  out_shape: tuple[int, ...]
  hidden: Sequence[int] = (1200, 1200)
  irange: float = 0.05
  num_classes: int = 0

  @nn.compact
  def __call__(self, z: jax.Array, y: jax.Array | None = None, *, train: bool = False) -> jax.Array:
    h = z
    if self.num_classes:
      h = jnp.concatenate([h, jax.nn.one_hot(y, self.num_classes, dtype=h.dtype)], axis=-1)
    for width in self.hidden:
      h = nn.relu(nn.Dense(width, kernel_init=uniform_init(self.irange))(h))
    h = nn.Dense(int(np.prod(self.out_shape)), kernel_init=uniform_init(self.irange))(h)
    return nn.sigmoid(h).reshape((z.shape[0], *self.out_shape))


class PaperMaxoutDiscriminator(nn.Module):
  units: Sequence[int] = (240, 240)
  pieces: int = 5
  input_dropout: float = 0.2
  hidden_dropout: float = 0.5
  irange: float = 0.005
  num_classes: int = 0

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array | None = None, *, train: bool = False) -> jax.Array:
    h = x.reshape(x.shape[0], -1)
    rate = self.input_dropout
    for units in self.units:
      h = nn.Dropout(rate, deterministic=not train)(h)
      h = Maxout(units, self.pieces, self.irange)(h)
      rate = self.hidden_dropout
    h = nn.Dropout(rate, deterministic=not train)(h)
    logit = nn.Dense(1, kernel_init=uniform_init(self.irange))(h)[:, 0]
    if self.num_classes:
      logit = logit + LabelProjection(self.num_classes)(h, y)
    return logit
