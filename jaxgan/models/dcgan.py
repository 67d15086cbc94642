"""DCGAN (Radford et al., 2015) for 28x28, 32x32 and 64x64 images, optionally class-conditional.

Following the paper: fractionally strided convolutions in G and strided
convolutions in D (no pooling); batch norm in both except D's input layer and
G's output layer; ReLU in G with a tanh output; LeakyReLU(0.2) in D; weights
from N(0, 0.02) (batch-norm scales from N(1, 0.02)). The conditional variant
feeds a one-hot label to G with the noise and adds a projection term to D.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models.fast_conv import Conv, ConvTranspose
from jaxgan.models.layers import ACTIVATIONS, LabelProjection

normal_002 = nn.initializers.normal(0.02)


def scale_init(key, shape, dtype=jnp.float32):
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


class DCGANGenerator(nn.Module):
  """z -> Dense to (base, base, channels[0]) -> ConvT ... -> tanh image.

  ``strides[i]`` is the stride of the i-th transposed convolution; the last one
  outputs the image channels, so ``len(strides) == len(channels)``.
  """

  out_shape: tuple[int, int, int]
  base: int
  channels: Sequence[int]
  strides: Sequence[int]
  kernel: int = 5
  activation: str = "relu"
  batch_norm: bool = True
  num_classes: int = 0
  bn_axis_name: str | None = None
  conv_impl: str = "xla"

  def _norm(self, h, train):
    if not self.batch_norm:
      return h
    return nn.BatchNorm(
      use_running_average=not train,
      momentum=0.9,
      epsilon=1e-5,
      scale_init=scale_init,
      axis_name=self.bn_axis_name,
    )(h)

  @nn.compact
  def __call__(self, z: jax.Array, y: jax.Array | None = None, *, train: bool = False) -> jax.Array:
    act = ACTIVATIONS.get(self.activation)
    h = z
    if self.num_classes:
      h = jnp.concatenate([h, jax.nn.one_hot(y, self.num_classes, dtype=h.dtype)], axis=-1)
    h = nn.Dense(
      self.base * self.base * self.channels[0], use_bias=not self.batch_norm, kernel_init=normal_002
    )(h)
    h = act(self._norm(h.reshape(-1, self.base, self.base, self.channels[0]), train))
    outs = list(self.channels[1:]) + [self.out_shape[-1]]
    for i, (features, stride) in enumerate(zip(outs, self.strides)):
      last = i == len(outs) - 1
      h = ConvTranspose(
        features,
        (self.kernel, self.kernel),
        (stride, stride),
        use_bias=last or not self.batch_norm,
        kernel_init=normal_002,
        impl=self.conv_impl,
      )(h)
      h = jnp.tanh(h) if last else act(self._norm(h, train))
    return h


class DCGANDiscriminator(nn.Module):
  """Strided convolutions (no batch norm on the first), then one logit."""

  channels: Sequence[int]
  kernel: int = 5
  activation: str = "leaky_relu"
  batch_norm: bool = True
  dropout: float = 0.0
  num_classes: int = 0
  bn_axis_name: str | None = None
  conv_impl: str = "xla"

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array | None = None, *, train: bool = False) -> jax.Array:
    act = ACTIVATIONS.get(self.activation)
    h = x
    for i, features in enumerate(self.channels):
      norm = self.batch_norm and i > 0
      h = Conv(
        features,
        (self.kernel, self.kernel),
        (2, 2),
        use_bias=not norm,
        kernel_init=normal_002,
        impl=self.conv_impl,
      )(h)
      if norm:
        h = nn.BatchNorm(
          use_running_average=not train,
          momentum=0.9,
          epsilon=1e-5,
          scale_init=scale_init,
          axis_name=self.bn_axis_name,
        )(h)
      h = act(h)
      if self.dropout:
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
    h = h.reshape(h.shape[0], -1)
    logit = nn.Dense(1, kernel_init=normal_002)(h)[:, 0]
    if self.num_classes:
      logit = logit + LabelProjection(self.num_classes)(h, y)
    return logit
