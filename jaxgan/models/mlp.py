"""Fully connected G and D for toy (1-D, 2-D) data, including the textbook's variant."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.models.layers import ACTIVATIONS, LabelProjection


class MLPGenerator(nn.Module):
  """z -> MLP -> x.

  With ``pointwise=True`` the same scalar MLP maps each noise value to one output
  value (the textbook's generator, which turns a vector of uniform noise into a
  vector of independent samples).
  """

  out_shape: tuple[int, ...]
  hidden: Sequence[int]
  activations: Sequence[str]
  output_activation: str = "linear"
  pointwise: bool = False
  num_classes: int = 0

  @nn.compact
  def __call__(self, z: jax.Array, y: jax.Array | None = None, *, train: bool = False) -> jax.Array:
    batch = z.shape[0]
    h = z.reshape(-1, 1) if self.pointwise else z
    if self.num_classes:
      h = jnp.concatenate([h, jax.nn.one_hot(y, self.num_classes, dtype=h.dtype)], axis=-1)
    for width, act in zip(self.hidden, self.activations):
      h = ACTIVATIONS.get(act)(nn.Dense(width)(h))
    out_dim = 1 if self.pointwise else int(np.prod(self.out_shape))
    h = ACTIVATIONS.get(self.output_activation)(nn.Dense(out_dim)(h))
    return h.reshape((batch, *self.out_shape))


class MLPDiscriminator(nn.Module):
  """x -> MLP -> one logit per example.

  ``decorate`` appends (x - mean(x))**2 over each example's values, the
  textbook's trick that lets D see the spread of a vector of samples.
  """

  hidden: Sequence[int]
  activations: Sequence[str]
  decorate: bool = False
  dropout: float = 0.0
  num_classes: int = 0

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array | None = None, *, train: bool = False) -> jax.Array:
    h = x.reshape(x.shape[0], -1)
    if self.decorate:
      h = jnp.concatenate([h, (h - h.mean(axis=1, keepdims=True)) ** 2], axis=-1)
    for width, act in zip(self.hidden, self.activations):
      h = ACTIVATIONS.get(act)(nn.Dense(width)(h))
      if self.dropout:
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
    logit = nn.Dense(1)(h)[:, 0]
    if self.num_classes:
      logit = logit + LabelProjection(self.num_classes)(h, y)
    return logit
