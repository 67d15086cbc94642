"""BigGAN for 32x32 images (Brock et al. 2019) as PyTorch-StudioGAN builds it.

``model.name=biggan`` is StudioGAN's ``big_resnet`` backbone at ``img_size`` 32
(``src/models/big_resnet.py``, its ``CIFAR10/BigGAN.yaml``), checked against it with golden
fixtures (``tests/test_biggan.py``, ``docs/biggan.md``). With ``g_conv_dim = c_g`` and
``d_conv_dim = c_d``:

* G: z is split into 4 equal chunks (z of 80: chunks of 20). The first goes through a linear
  map to 4x4x4c_g; each of the three up-blocks (4c_g -> 4c_g, SNGAN's: batch norm, ReLU,
  nearest x2, 3x3 conv, batch norm, ReLU, 3x3 conv; shortcut x2, 1x1 conv) gets
  ``[shared(y), chunk]`` (the shared class embedding, 128 wide, then its own chunk), from which
  its class-conditional batch norms take ``x * (1 + gain(a)) + bias(a)`` with bias-free linear
  maps ``gain``, ``bias``. Self-attention (SAGAN) after the second block; plain batch norm,
  ReLU, 3x3 conv to the image channels, tanh.
* D: SNGAN's ResNet D (``jaxgan.models.sngan``: an optimized block 3 -> 2c_d, then three
  pre-activation blocks, pooling in the first), self-attention after the first block, ReLU,
  sum over positions, linear to one logit plus the projection ``<embed(y), h>`` (or instead a
  class head on h, ``model.d_cond``: ``jaxgan.core.conditioning``).
* Self-attention: 1x1 convs without bias to theta (c/8), phi (c/8) and g (c/2); phi and g
  max-pooled 2x2; ``softmax(theta phi^T)`` over the pooled positions weights g; a 1x1 conv
  back to c, scaled by a learned ``gamma`` (StudioGAN's ``sigma``) that starts at 0 and
  added to the input.

Spectral norm is not part of the modules: StudioGAN normalises every weight of both nets
except G's shared embedding, in the legacy order (``model.g_spectral_norm=True``,
``d_spectral_norm=True``, ``spectral_norm_order='legacy'``). jaxgan's spectral norm takes
every parameter with two or more axes, so the shared embedding is stored flat
(``[classes * dim]``) and reshaped in the forward: it stays out of spectral norm (and out
of the orthogonal regularizer, which BigGAN also keeps off it).

Batch norm is torch's (``jaxgan.models.sngan.BatchNorm``: eps 1e-4, momentum 0.1, unbiased
running variance). Layout NHWC, kernels HWIO; G's first linear emits (h, w, c) where torch
reshapes (c, h, w) (``variables_from_studiogan`` permutes). Weights start orthogonal and
biases at zero, as StudioGAN's ``ortho`` init.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.core import conditioning
from jaxgan.data.spec import DataSpec
from jaxgan.models import Nets, sngan
from jaxgan.models.sngan import (
  BN_EPS,
  BOTTOM,
  ORTHO,
  BatchNorm,
  DiscBlock,
  DiscOptBlock,
  Projection,
  _conv,
  upsample2x,
)

NUM_BLOCKS = 3  # G's up-blocks at 32x32; z is split into NUM_BLOCKS + 1 chunks


def max_pool2x(x: jax.Array) -> jax.Array:
  """2x2 max pooling with stride 2 (torch's ``MaxPool2d(2, stride=2)``)."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class SelfAttention(nn.Module):
  """SAGAN's self-attention as StudioGAN's ``ops.SelfAttention`` (the module docstring);
  ``sigma`` is its gamma, initialised to 0 so a fresh block is the identity."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    conv = lambda features, name: nn.Conv(
      features, (1, 1), use_bias=False, kernel_init=ORTHO, name=name
    )
    theta = conv(c // 8, "conv1x1_theta")(x).reshape(b, h * w, c // 8)
    phi = max_pool2x(conv(c // 8, "conv1x1_phi")(x)).reshape(b, h * w // 4, c // 8)
    attn = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", theta, phi), axis=-1)
    g = max_pool2x(conv(c // 2, "conv1x1_g")(x)).reshape(b, h * w // 4, c // 2)
    attn_g = jnp.einsum("bqk,bkc->bqc", attn, g).reshape(b, h, w, c // 2)
    sigma = self.param("sigma", nn.initializers.zeros, (1,), jnp.float32)
    return x + sigma * conv(c, "conv1x1_attn")(attn_g)


class ConditionalBatchNorm(nn.Module):
  """StudioGAN's ``ConditionalBatchNorm2d`` on a dense input ``a`` (BigGAN's ``[shared(y),
  z chunk]``): batch norm without affine, then ``x * (1 + gain(a)) + bias(a)``."""

  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, a: jax.Array, *, train: bool) -> jax.Array:
    c = x.shape[-1]
    h = BatchNorm(affine=False, epsilon=BN_EPS, axis_name=self.axis_name, name="bn")(x, train=train)
    gain = nn.Dense(c, use_bias=False, kernel_init=ORTHO, name="gain")(a)
    bias = nn.Dense(c, use_bias=False, kernel_init=ORTHO, name="bias")(a)
    return h * (1 + gain[:, None, None, :]) + bias[:, None, None, :]


class GenBlock(nn.Module):
  """G's up-block (SNGAN's) with batch norms conditioned on ``a``."""

  features: int
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, a: jax.Array, *, train: bool) -> jax.Array:
    norm = lambda name, v: ConditionalBatchNorm(self.bn_axis_name, name=name)(v, a, train=train)
    h = nn.relu(norm("bn1", x))
    h = _conv(self.features, 3, "conv2d1")(upsample2x(h))
    h = nn.relu(norm("bn2", h))
    h = _conv(self.features, 3, "conv2d2")(h)
    return h + _conv(self.features, 1, "conv2d0")(upsample2x(x))


class SharedEmbedding(nn.Module):
  """G's shared class embedding, stored flat so spectral norm leaves it alone (module
  docstring)."""

  num_classes: int
  features: int

  @nn.compact
  def __call__(self, y: jax.Array) -> jax.Array:
    shape = (self.num_classes, self.features)
    init = lambda key, _, dtype=jnp.float32: ORTHO(key, shape, dtype).reshape(-1)
    table = self.param("embedding", init, (self.num_classes * self.features,), jnp.float32)
    return jnp.take(table.reshape(shape), y, axis=0)


class BigGANGenerator(nn.Module):
  """z (and integer labels when ``num_classes``) -> tanh images of ``out_shape``. Block
  names follow StudioGAN's ``blocks`` list: ``blocks_2`` is the attention."""

  out_shape: tuple[int, int, int]
  conv_dim: int = 96
  num_classes: int = 0
  shared_dim: int = 128
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, z: jax.Array, y: jax.Array | None = None, *, train: bool = False) -> jax.Array:
    if z.shape[-1] % (NUM_BLOCKS + 1):
      raise ValueError(f"BigGAN splits z into {NUM_BLOCKS + 1} chunks; z has {z.shape[-1]}.")
    zs = jnp.split(z, NUM_BLOCKS + 1, axis=-1)
    if self.num_classes:
      shared = SharedEmbedding(self.num_classes, self.shared_dim, name="shared")(y)
      affines = [jnp.concatenate([shared, chunk], axis=-1) for chunk in zs[1:]]
    else:
      affines = list(zs[1:])
    ch = 4 * self.conv_dim
    h = nn.Dense(BOTTOM * BOTTOM * ch, kernel_init=ORTHO, name="linear0")(zs[0])
    h = h.reshape(-1, BOTTOM, BOTTOM, ch)
    h = GenBlock(ch, self.bn_axis_name, name="blocks_0")(h, affines[0], train=train)
    h = GenBlock(ch, self.bn_axis_name, name="blocks_1")(h, affines[1], train=train)
    h = SelfAttention(name="blocks_2")(h)
    h = GenBlock(ch, self.bn_axis_name, name="blocks_3")(h, affines[2], train=train)
    h = nn.relu(BatchNorm(axis_name=self.bn_axis_name, name="bn4")(h, train=train))
    return jnp.tanh(_conv(self.out_shape[-1], 3, "conv2d5")(h))


class BigGANDiscriminator(nn.Module):
  """Images (and integer labels when ``num_classes``) -> one logit per image. Block names
  follow StudioGAN's ``blocks`` list: ``blocks_1`` is the attention."""

  conv_dim: int = 96
  num_classes: int = 0
  d_cond: str = "projection"
  d_embed_dim: int = 512

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array | None = None, *, train: bool = False) -> jax.Array:
    ch = 2 * self.conv_dim
    h = DiscOptBlock(ch, name="blocks_0")(x, train=train)
    h = SelfAttention(name="blocks_1")(h)
    for i, down in enumerate((True, False, False), start=2):
      h = DiscBlock(ch, down, name=f"blocks_{i}")(h, train=train)
    h = jnp.sum(nn.relu(h), axis=(1, 2))
    out = nn.Dense(1, kernel_init=ORTHO, name="linear1")(h)[:, 0]
    if self.num_classes and self.d_cond == "projection":
      out = out + Projection(self.num_classes, name="embedding")(h, y)
    else:  # a class head (jaxgan.core.conditioning): its outputs are sown, the logit stays
      conditioning.apply_head(self, self.d_cond, h, y, self.num_classes, self.d_embed_dim)
    return out


def biggan(
  data: DataSpec,
  num_classes: int,
  bn_axis_name: str | None,
  *,
  g_conv_dim: int = 96,
  d_conv_dim: int = 96,
  g_shared_dim: int = 128,
  d_cond: str = "projection",
  d_embed_dim: int = 512,
) -> Nets:
  """StudioGAN's ``big_resnet`` G and D for 32x32 images (the module docstring).

  ``g_conv_dim``/``d_conv_dim``: StudioGAN's (G has 4x, D 2x as many channels; 4x and 2x
  must be at least 8 for the attention's c/8); ``g_shared_dim``: the width of G's shared class
  embedding. StudioGAN's BigGAN puts spectral norm on both nets
  (``model.g_spectral_norm=True``, ``d_spectral_norm=True``, ``spectral_norm_order='legacy'``).
  ``d_cond``: D's class conditioning, projection or a class head (``jaxgan.core.conditioning``:
  ac, tac, adc, d2dce; ``d_embed_dim`` is d2dce's embedding width).
  """
  conditioning.check_d_cond(d_cond, num_classes)
  if tuple(data.shape[:2]) != (32, 32) or len(data.shape) != 3:
    raise ValueError(
      f"biggan makes 32x32 images; {data.name!r} has shape {tuple(data.shape)} "
      "(pad 28x28 images with data.pad=2)."
    )
  if min(4 * g_conv_dim, 2 * d_conv_dim) < 8:
    raise ValueError("biggan's self-attention needs 4 * g_conv_dim and 2 * d_conv_dim >= 8.")
  g = BigGANGenerator(tuple(data.shape), g_conv_dim, num_classes, g_shared_dim, bn_axis_name)
  d = BigGANDiscriminator(d_conv_dim, num_classes, d_cond, d_embed_dim)
  return Nets(
    g,
    d,
    (-1.0, 1.0),
    convolutional=True,
    g_output_bias=("conv2d5", "bias"),
    g_output_bias_per_channel=True,
  )


# --- StudioGAN weights -------------------------------------------------------------------------


def _merge(into: dict, tree: Mapping) -> dict:
  for k, v in tree.items():
    if isinstance(v, Mapping):
      _merge(into.setdefault(k, {}), v)
    else:
      into[k] = v
  return into


def variables_from_studiogan(state: Mapping[str, Any]) -> dict[str, dict]:
  """jaxgan variables ``{'params', 'batch_stats', 'spectral_norm'}`` (those present) for
  ``BigGANGenerator``/``BigGANDiscriminator`` from the ``state_dict`` of StudioGAN's
  ``big_resnet`` ``Generator``/``Discriminator`` (32x32) as numpy or jax arrays.

  Pure reshuffling, so it can be differentiated through: SNGAN's conversion
  (``jaxgan.models.sngan.variables_from_studiogan``: OIHW -> HWIO, linear and embedding
  weights transposed, G's first linear from (c, h, w) to (h, w, c) outputs, ``weight_u``/
  ``weight_v`` to ``spectral_norm``, running statistics to ``batch_stats``), plus the
  attention's ``sigma`` and G's shared embedding, flattened."""
  rest, extra = {}, {}
  for key, value in state.items():
    parts = key.split(".")
    if key == "shared.weight":
      _merge(extra, {"shared": {"embedding": value.reshape(-1).astype(np.float32)}})
    elif parts[0] == "blocks" and parts[-1] == "sigma":
      _merge(extra, {f"blocks_{parts[1]}": {"sigma": value.astype(np.float32)}})
    else:
      rest[key] = value
  out = sngan.variables_from_studiogan(rest)
  if extra:
    _merge(out.setdefault("params", {}), extra)
  return out
