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

Switches of ``biggan()`` (``VARIANTS``) turn the same net into BigGAN-PyTorch's at resolution
32 (``arch[32]``, as its ``launch_cifar_ema.sh`` runs it; ``tests/fixtures/biggan_pytorch/``):
no attention, no shared embedding (each conditional batch norm then has per-class gain and bias
tables, stored flat like the shared embedding: BigGAN-PyTorch leaves them plain
``nn.Embedding``), no hierarchical z (all of z to the first linear map), batch-norm eps 1e-5,
D's pre-activation shortcuts on the unrectified input, N(0, 0.02) weights with torch's default
biases; spectral norm in the ``biggan`` order. ``variables_from_biggan_pytorch`` loads its
weights.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.core import conditioning
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError
from jaxgan.models import Nets, sngan
from jaxgan.models.sngan import (
  BN_EPS,
  BOTTOM,
  ORTHO,
  BatchNorm,
  _hwc_rows,
  avg_pool2x,
  upsample2x,
)

NUM_BLOCKS = 3  # G's up-blocks at 32x32; a hierarchical z is split into NUM_BLOCKS + 1 chunks
INITS = ("ortho", "n02")
D_SHORTCUTS = ("rectified", "raw")
G_BLOCKS = ("blocks_0", "blocks_1", "blocks_3")  # blocks_2: G's attention (when on)
D_BLOCKS = ("blocks_0", "blocks_2", "blocks_3", "blocks_4")  # blocks_1: D's attention


# Switches of ``biggan()`` (model config keys) that make each reference's 32x32 net: the
# defaults are StudioGAN's ``big_resnet``; BigGAN-PyTorch's ``arch[32]`` as its
# ``launch_cifar_ema.sh`` runs it (channel widths apart: g_conv_dim 64, d_conv_dim 128 give its
# 256 and 256) with ``model.spectral_norm_order='biggan'``.
VARIANTS = {
  "studiogan": dict(
    g_shared_dim=128, g_hierarchical_z=True, g_attention=True, d_attention=True,
    g_bn_eps=BN_EPS, d_shortcut="rectified", weights_init="ortho",
  ),
  "biggan_pytorch": dict(
    g_shared_dim=0, g_hierarchical_z=False, g_attention=False, d_attention=False,
    g_bn_eps=1e-5, d_shortcut="raw", weights_init="n02",
  ),
}  # fmt: skip


def _weight_init(init: str) -> nn.initializers.Initializer:
  return ORTHO if init == "ortho" else nn.initializers.normal(0.02)


def _bias_init(init: str, fan_in: int) -> nn.initializers.Initializer:
  """``ortho`` (StudioGAN): zeros. ``n02`` (BigGAN-PyTorch, which never touches biases):
  torch's default, uniform in +-1/sqrt(fan_in)."""
  if init == "ortho":
    return nn.initializers.zeros
  bound = 1.0 / np.sqrt(fan_in)
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


def _conv(x: jax.Array, features: int, kernel: int, name: str, init: str) -> jax.Array:
  pad = kernel // 2
  return nn.Conv(
    features,
    (kernel, kernel),
    padding=((pad, pad), (pad, pad)),
    kernel_init=_weight_init(init),
    bias_init=_bias_init(init, kernel * kernel * x.shape[-1]),
    name=name,
  )(x)


def _dense(x: jax.Array, features: int, name: str, init: str) -> jax.Array:
  return nn.Dense(
    features,
    kernel_init=_weight_init(init),
    bias_init=_bias_init(init, x.shape[-1]),
    name=name,
  )(x)


def max_pool2x(x: jax.Array) -> jax.Array:
  """2x2 max pooling with stride 2 (torch's ``MaxPool2d(2, stride=2)``)."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class SelfAttention(nn.Module):
  """SAGAN's self-attention as StudioGAN's ``ops.SelfAttention`` (the module docstring);
  ``sigma`` is its gamma, initialised to 0 so a fresh block is the identity."""

  weights_init: str = "ortho"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    conv = lambda features, name: nn.Conv(
      features, (1, 1), use_bias=False, kernel_init=_weight_init(self.weights_init), name=name
    )
    theta = conv(c // 8, "conv1x1_theta")(x).reshape(b, h * w, c // 8)
    phi = max_pool2x(conv(c // 8, "conv1x1_phi")(x)).reshape(b, h * w // 4, c // 8)
    attn = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", theta, phi), axis=-1)
    g = max_pool2x(conv(c // 2, "conv1x1_g")(x)).reshape(b, h * w // 4, c // 2)
    attn_g = jnp.einsum("bqk,bkc->bqc", attn, g).reshape(b, h, w, c // 2)
    sigma = self.param("sigma", nn.initializers.zeros, (1,), jnp.float32)
    return x + sigma * conv(c, "conv1x1_attn")(attn_g)


class FlatEmbedding(nn.Module):
  """A ``[num_classes, features]`` table stored flat (``embedding``), so spectral norm leaves
  it alone (module docstring); G's shared class embedding and, without one, the per-class
  gains and biases of its batch norms."""

  num_classes: int
  features: int
  weights_init: str = "ortho"

  @nn.compact
  def __call__(self, y: jax.Array) -> jax.Array:
    shape = (self.num_classes, self.features)
    weight_init = _weight_init(self.weights_init)
    init = lambda key, _, dtype=jnp.float32: weight_init(key, shape, dtype).reshape(-1)
    table = self.param("embedding", init, (self.num_classes * self.features,), jnp.float32)
    return jnp.take(table.reshape(shape), y, axis=0)


SharedEmbedding = FlatEmbedding  # G's ``shared``


class ConditionalBatchNorm(nn.Module):
  """Batch norm without affine, then ``x * (1 + gain(a)) + bias(a)``. ``num_classes == 0``:
  ``a`` is dense (StudioGAN's ``ConditionalBatchNorm2d`` on ``[shared(y), z chunk]``; gain and
  bias are bias-free linear maps). ``num_classes > 0``: ``a`` is the integer label and gain and
  bias are per-class tables (BigGAN-PyTorch's ``ccbn`` without ``G_shared``, whose
  ``which_linear`` is then a plain ``nn.Embedding``: no spectral norm)."""

  axis_name: str | None = None
  epsilon: float = BN_EPS
  num_classes: int = 0
  weights_init: str = "ortho"

  @nn.compact
  def __call__(self, x: jax.Array, a: jax.Array, *, train: bool) -> jax.Array:
    c = x.shape[-1]
    h = BatchNorm(affine=False, epsilon=self.epsilon, axis_name=self.axis_name, name="bn")(
      x, train=train
    )
    if self.num_classes:
      gain = FlatEmbedding(self.num_classes, c, self.weights_init, name="gain")(a)
      bias = FlatEmbedding(self.num_classes, c, self.weights_init, name="bias")(a)
    else:
      kernel_init = _weight_init(self.weights_init)
      gain = nn.Dense(c, use_bias=False, kernel_init=kernel_init, name="gain")(a)
      bias = nn.Dense(c, use_bias=False, kernel_init=kernel_init, name="bias")(a)
    return h * (1 + gain[:, None, None, :]) + bias[:, None, None, :]


class GenBlock(nn.Module):
  """G's up-block (SNGAN's: norm, ReLU, nearest x2, 3x3 conv, norm, ReLU, 3x3 conv; shortcut
  nearest x2, 1x1 conv) with batch norms conditioned on ``a`` (``a is None``: plain batch norm
  with its own affine, an unconditional G without hierarchical z)."""

  features: int
  bn_axis_name: str | None = None
  bn_eps: float = BN_EPS
  num_classes: int = 0  # > 0: ``a`` is the label (ConditionalBatchNorm)
  weights_init: str = "ortho"

  @nn.compact
  def __call__(self, x: jax.Array, a: jax.Array | None, *, train: bool) -> jax.Array:
    def norm(name: str, v: jax.Array) -> jax.Array:
      if a is None:
        return BatchNorm(epsilon=self.bn_eps, axis_name=self.bn_axis_name, name=name)(
          v, train=train
        )
      return ConditionalBatchNorm(
        self.bn_axis_name, self.bn_eps, self.num_classes, self.weights_init, name=name
      )(v, a, train=train)

    h = nn.relu(norm("bn1", x))
    h = _conv(upsample2x(h), self.features, 3, "conv2d1", self.weights_init)
    h = nn.relu(norm("bn2", h))
    h = _conv(h, self.features, 3, "conv2d2", self.weights_init)
    return h + _conv(upsample2x(x), self.features, 1, "conv2d0", self.weights_init)


class DiscBlock(nn.Module):
  """D's residual block. ``optimized`` (the first): 3x3 conv, ReLU, 3x3 conv, 2x2 average
  pooling; shortcut pooling, 1x1 conv. Else pre-activation: ReLU, 3x3 conv, ReLU, 3x3 conv,
  (pooling); shortcut 1x1 conv, (pooling) when it downsamples or changes channels, else the
  identity. ``rectified_shortcut``: the shortcut takes ``relu(x)`` (StudioGAN's in-place
  ReLU, ``jaxgan.models.sngan``), else ``x`` (BigGAN-PyTorch's ``DBlock``)."""

  features: int
  downsample: bool = True
  optimized: bool = False
  rectified_shortcut: bool = True
  weights_init: str = "ortho"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = lambda v, k, name: _conv(v, self.features, k, name, self.weights_init)
    if self.optimized:
      h = avg_pool2x(conv(nn.relu(conv(x, 3, "conv2d1")), 3, "conv2d2"))
      return h + conv(avg_pool2x(x), 1, "conv2d0")
    h = nn.relu(x)
    s = h if self.rectified_shortcut else x
    h = conv(nn.relu(conv(h, 3, "conv2d1")), 3, "conv2d2")
    if self.downsample:
      h = avg_pool2x(h)
    if self.downsample or x.shape[-1] != self.features:
      s = conv(s, 1, "conv2d0")
      if self.downsample:
        s = avg_pool2x(s)
    return h + s


class Projection(nn.Module):
  """The projection term ``<embed(y), h>``; the embedding stored ``[features, classes]`` so
  its power iteration runs over torch's axes (``jaxgan.models.sngan.Projection``)."""

  num_classes: int
  weights_init: str = "ortho"

  @nn.compact
  def __call__(self, h: jax.Array, y: jax.Array) -> jax.Array:
    shape = (h.shape[-1], self.num_classes)
    kernel = self.param("kernel", _weight_init(self.weights_init), shape, jnp.float32)
    return jnp.sum(jnp.take(kernel, y, axis=1).T * h, axis=-1)


class BigGANGenerator(nn.Module):
  """z (and integer labels when ``num_classes``) -> tanh images of ``out_shape``. Block
  names follow StudioGAN's ``blocks`` list: ``blocks_2`` is the attention (absent when
  ``attention`` is off; the other names stay)."""

  out_shape: tuple[int, int, int]
  conv_dim: int = 96
  num_classes: int = 0
  shared_dim: int = 128
  bn_axis_name: str | None = None
  hierarchical_z: bool = True
  attention: bool = True
  bn_eps: float = BN_EPS
  weights_init: str = "ortho"

  @nn.compact
  def __call__(self, z: jax.Array, y: jax.Array | None = None, *, train: bool = False) -> jax.Array:
    table_classes = 0  # > 0: class-conditional batch norm from per-class tables
    if self.hierarchical_z:
      if z.shape[-1] % (NUM_BLOCKS + 1):
        raise ValueError(f"BigGAN splits z into {NUM_BLOCKS + 1} chunks; z has {z.shape[-1]}.")
      z, *chunks = jnp.split(z, NUM_BLOCKS + 1, axis=-1)
    else:
      chunks = [None] * NUM_BLOCKS
    if self.num_classes and self.shared_dim:
      shared = FlatEmbedding(self.num_classes, self.shared_dim, self.weights_init, name="shared")(y)
      affines = [shared if c is None else jnp.concatenate([shared, c], axis=-1) for c in chunks]
    elif self.num_classes:  # hierarchical_z needs the shared embedding (biggan() checks)
      affines, table_classes = [y] * NUM_BLOCKS, self.num_classes
    else:
      affines = chunks
    ch = 4 * self.conv_dim
    h = _dense(z, BOTTOM * BOTTOM * ch, "linear0", self.weights_init)
    h = h.reshape(-1, BOTTOM, BOTTOM, ch)
    kw = dict(bn_eps=self.bn_eps, num_classes=table_classes, weights_init=self.weights_init)
    for i, (name, a) in enumerate(zip(G_BLOCKS, affines)):
      h = GenBlock(ch, self.bn_axis_name, name=name, **kw)(h, a, train=train)
      if i == 1 and self.attention:
        h = SelfAttention(self.weights_init, name="blocks_2")(h)
    h = BatchNorm(epsilon=self.bn_eps, axis_name=self.bn_axis_name, name="bn4")(h, train=train)
    return jnp.tanh(_conv(nn.relu(h), self.out_shape[-1], 3, "conv2d5", self.weights_init))


class BigGANDiscriminator(nn.Module):
  """Images (and integer labels when ``num_classes``) -> one logit per image. Block names
  follow StudioGAN's ``blocks`` list: ``blocks_1`` is the attention (absent when
  ``attention`` is off; the other names stay)."""

  conv_dim: int = 96
  num_classes: int = 0
  d_cond: str = "projection"
  d_embed_dim: int = 512
  attention: bool = True
  rectified_shortcut: bool = True
  weights_init: str = "ortho"

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array | None = None, *, train: bool = False) -> jax.Array:
    ch = 2 * self.conv_dim
    h = DiscBlock(ch, optimized=True, weights_init=self.weights_init, name="blocks_0")(x)
    if self.attention:
      h = SelfAttention(self.weights_init, name="blocks_1")(h)
    for name, down in zip(D_BLOCKS[1:], (True, False, False)):
      h = DiscBlock(ch, down, False, self.rectified_shortcut, self.weights_init, name=name)(h)
    h = jnp.sum(nn.relu(h), axis=(1, 2))
    out = _dense(h, 1, "linear1", self.weights_init)[:, 0]
    if self.num_classes and self.d_cond == "projection":
      out = out + Projection(self.num_classes, self.weights_init, name="embedding")(h, y)
    else:  # a class head (jaxgan.core.conditioning): its outputs are sown, the logit stays
      conditioning.apply_head(self, self.d_cond, h, y, self.num_classes, self.d_embed_dim)
    return out


def _check_choice(value: str, choices: tuple[str, ...], key: str) -> None:
  if value not in choices:
    raise ConfigError(f"config.model.{key} must be one of {', '.join(choices)}; got {value!r}.")


def biggan(
  data: DataSpec,
  num_classes: int,
  bn_axis_name: str | None,
  *,
  g_conv_dim: int = 96,
  d_conv_dim: int = 96,
  g_shared_dim: int = 128,
  g_hierarchical_z: bool = True,
  g_attention: bool = True,
  d_attention: bool = True,
  g_bn_eps: float = BN_EPS,
  d_shortcut: str = "rectified",
  weights_init: str = "ortho",
  d_cond: str = "projection",
  d_embed_dim: int = 512,
) -> Nets:
  """BigGAN's G and D for 32x32 images (the module docstring); the defaults are StudioGAN's
  ``big_resnet``, the switches compose to BigGAN-PyTorch's 32x32 net (``docs/biggan.md``).

  ``g_conv_dim``/``d_conv_dim``: StudioGAN's (G has 4x, D 2x as many channels; with attention
  4x and 2x must be at least 8 for its c/8). ``g_shared_dim``: the width of G's shared class
  embedding; 0: none, the class-conditional batch norms take per-class gains and biases
  (BigGAN-PyTorch without ``G_shared``). ``g_hierarchical_z``: z split into 4 chunks, one for
  the first linear map and one per block's batch norms (BigGAN-PyTorch's ``hier``); off: all of
  z goes to the linear map. ``g_attention``/``d_attention``: self-attention after G's second and
  D's first block. ``g_bn_eps``: G's batch-norm eps (StudioGAN 1e-4, BigGAN-PyTorch 1e-5).
  ``d_shortcut``: ``rectified`` (StudioGAN: D's pre-activation shortcuts take relu(x)) or
  ``raw`` (BigGAN-PyTorch: x). ``weights_init``: ``ortho`` (orthogonal weights, zero biases,
  StudioGAN) or ``n02`` (N(0, 0.02) weights, torch's default biases, BigGAN-PyTorch's ``N02``).
  Spectral norm is set apart (``model.g_spectral_norm``, ``d_spectral_norm``,
  ``spectral_norm_order``: ``legacy`` for StudioGAN, ``biggan`` for BigGAN-PyTorch).
  ``d_cond``: D's class conditioning, projection or a class head (``jaxgan.core.conditioning``:
  ac, tac, adc, d2dce; ``d_embed_dim`` is d2dce's embedding width).
  """
  conditioning.check_d_cond(d_cond, num_classes)
  _check_choice(weights_init, INITS, "weights_init")
  _check_choice(d_shortcut, D_SHORTCUTS, "d_shortcut")
  if tuple(data.shape[:2]) != (32, 32) or len(data.shape) != 3:
    raise ValueError(
      f"biggan makes 32x32 images; {data.name!r} has shape {tuple(data.shape)} "
      "(pad 28x28 images with data.pad=2)."
    )
  if min(4 * g_conv_dim if g_attention else 8, 2 * d_conv_dim if d_attention else 8) < 8:
    raise ValueError("biggan's self-attention needs 4 * g_conv_dim and 2 * d_conv_dim >= 8.")
  if num_classes and g_hierarchical_z and not g_shared_dim:
    raise ConfigError(
      "config.model.g_hierarchical_z feeds z chunks to the batch norms beside a shared class "
      "embedding: set model.g_shared_dim > 0 or model.g_hierarchical_z=False."
    )
  if g_bn_eps <= 0:
    raise ConfigError(f"config.model.g_bn_eps must be > 0; got {g_bn_eps}.")
  g = BigGANGenerator(
    tuple(data.shape), g_conv_dim, num_classes, g_shared_dim, bn_axis_name,
    g_hierarchical_z, g_attention, g_bn_eps, weights_init,
  )  # fmt: skip
  rectified = d_shortcut == "rectified"
  d = BigGANDiscriminator(
    d_conv_dim, num_classes, d_cond, d_embed_dim, d_attention, rectified, weights_init
  )
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


# --- BigGAN-PyTorch weights --------------------------------------------------------------------


def variables_from_biggan_pytorch(state: Mapping[str, Any]) -> dict[str, dict]:
  """jaxgan variables ``{'params', 'batch_stats', 'spectral_norm'}`` for ``BigGANGenerator``/
  ``BigGANDiscriminator`` built as ``biggan_pytorch`` (no attention, no shared embedding, no
  hierarchical z; ``spectral_norm_order='biggan'``) from the ``state_dict`` of BigGAN-PyTorch's
  ``Generator``/``Discriminator`` at resolution 32, as numpy or jax arrays.

  Pure reshuffling, so it can be differentiated through: conv weights OIHW -> HWIO, linear
  weights transposed, G's first linear from (c, h, w) to (h, w, c) outputs, the batch norms'
  per-class gain and bias tables flattened, D's projection embedding transposed to
  ``[features, classes]``; ``u0`` (over a layer's outputs, for the embedding its classes) to
  ``spectral_norm``, ``stored_mean``/``stored_var`` to ``batch_stats``; ``sv0`` (a log) is
  dropped. G is told from D by its ``output_layer``."""
  is_g = any(k.startswith("output_layer.") for k in state)
  names = G_BLOCKS if is_g else D_BLOCKS
  layers = {"conv1": "conv2d1", "conv2": "conv2d2", "conv_sc": "conv2d0"}
  out: dict[str, dict] = {}
  put = functools.partial(sngan.put_variable, out)
  for key, value in state.items():
    *module, name = key.split(".")
    if name == "sv0":
      continue
    if module[0] == "blocks":  # blocks.<i>.0.<layer>[.gain|.bias]
      if module[2] != "0":
        raise ValueError(f"{key}: attention; only BigGAN-PyTorch's net without it converts.")
      module = [names[int(module[1])], layers.get(module[3], module[3]), *module[4:]]
    elif module == ["output_layer", "0"]:
      module = ["bn4"]
    elif module == ["output_layer", "2"]:
      module = ["conv2d5"]
    elif module == ["linear"]:
      module = ["linear0" if is_g else "linear1"]
    elif module == ["embed"]:
      module = ["embedding"]
    first = module == ["linear0"]
    if name in ("stored_mean", "stored_var"):
      bn = module if module == ["bn4"] else [*module, "bn"]
      put("batch_stats", [*bn, name[len("stored_") :]], value)
    elif module[-1] in ("gain", "bias") and len(module) == 3:  # a per-class table
      put("params", [*module, "embedding"], value.reshape(-1))
    elif module == ["bn4"]:
      put("params", ["bn4", "scale" if name == "gain" else "bias"], value)
    elif module == ["embedding"] and name == "weight":
      put("params", ["embedding", "kernel"], value.T)
    elif name == "weight" and value.ndim == 4:
      put("params", [*module, "kernel"], value.transpose(2, 3, 1, 0))
    elif name == "weight":
      put("params", [*module, "kernel"], (_hwc_rows(value) if first else value).T)
    elif name == "bias":
      put("params", [*module, "bias"], _hwc_rows(value) if first else value)
    elif name == "u0":
      put("spectral_norm", [*module, "kernel"], _hwc_rows(value[0]) if first else value[0])
    else:
      raise ValueError(f"{key}: not a BigGAN-PyTorch 32x32 entry jaxgan knows.")
  return out
