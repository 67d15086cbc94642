"""SNGAN's ResNet for 32x32 images (Miyato et al. 2018) as PyTorch-StudioGAN builds it.

``model.name=sngan_resnet`` is StudioGAN's ``resnet`` backbone at ``img_size`` 32
(``src/models/resnet.py``), checked against it with golden fixtures
(``tests/test_sngan.py``, ``docs/sngan.md``). With ``g_conv_dim = d_conv_dim = c``:

* G: z -> linear -> 4x4x4c; three up-blocks 4c -> 4c (batch norm, ReLU, nearest x2, 3x3
  conv, batch norm, ReLU, 3x3 conv; shortcut: nearest x2, 1x1 conv); batch norm, ReLU, 3x3
  conv to the image channels, tanh. Conditional G (StudioGAN's ``cBN``) replaces the blocks'
  batch norms by class-conditional ones: no affine of their own, ``x * (1 + gain(y)) +
  bias(y)`` with bias-free linear maps of the one-hot label; the last batch norm stays plain.
* D: an optimized first block 3 -> 2c (3x3 conv, ReLU, 3x3 conv, 2x2 average pooling;
  shortcut: pooling, 1x1 conv), then three pre-activation blocks 2c -> 2c (ReLU, 3x3 conv,
  ReLU, 3x3 conv, pooling in the first only; shortcut: 1x1 conv then pooling in the first,
  identity in the others); ReLU, a SUM over positions, a linear map to one logit, plus the
  projection ``<embed(y), h>`` when conditional (StudioGAN's ``PD``), or instead a class
  head on h (``model.d_cond``: ACGAN, TACGAN, ADCGAN, ReACGAN; ``jaxgan.core.conditioning``).

Batch norm is torch's ``BatchNorm2d`` (eps 1e-4, momentum 0.1): batch statistics with the
biased variance in training, running averages that take the *unbiased* variance (flax's own
``BatchNorm`` takes the biased one), running statistics in evaluation.

Spectral norm is not part of the modules: StudioGAN's SNGAN normalises every D weight (convs,
linear, embedding) and no G weight, which is ``model.d_spectral_norm=True`` with
``model.spectral_norm_order='legacy'`` (StudioGAN wraps layers in the legacy
``torch.nn.utils.spectral_norm``). The projection's embedding is stored as ``[features,
classes]`` so that its power iteration runs over the same axes as torch's (torch treats an
embedding's classes as its output axis). StudioGAN leaves batch norm out of D exactly when it
normalises D: ``d_batch_norm=True`` is its D without spectral norm (ProjGAN, LGAN).

A fact of the reference kept here: its ReLU is in place, so in a pre-activation block without
batch norm the shortcut's input is rectified too (``x0 = x; x = relu_(x)``): the shortcut sees
``relu(x)``, not ``x``.

Layout NHWC, kernels HWIO; G's first linear emits (h, w, c) where torch reshapes (c, h, w)
(``variables_from_studiogan`` permutes). Weights start orthogonal and biases at zero, as
StudioGAN's ``ortho`` init.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxgan.core import conditioning
from jaxgan.data.spec import DataSpec
from jaxgan.models import Nets

ORTHO = nn.initializers.orthogonal()
BOTTOM = 4  # G's first feature map is 4x4
BN_EPS, BN_MOMENTUM = 1e-4, 0.1  # StudioGAN's batchnorm_2d (torch's momentum convention)


class BatchNorm(nn.Module):
  """torch's ``BatchNorm2d`` over the channel axis: training normalises by the batch's mean
  and biased variance and moves the running averages by ``momentum`` toward the mean and the
  unbiased variance; evaluation uses the running averages. ``axis_name``: the device axis the
  statistics are averaged over (None: this device's batch)."""

  affine: bool = True
  epsilon: float = BN_EPS
  momentum: float = BN_MOMENTUM
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    c = x.shape[-1]
    ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (c,), jnp.float32)
    ra_var = self.variable("batch_stats", "var", jnp.ones, (c,), jnp.float32)
    if train:
      axes = tuple(range(x.ndim - 1))
      axis_name = None if self.is_initializing() else self.axis_name
      count = x.size // c
      mean = jnp.mean(x, axes)
      if axis_name is not None:
        mean = lax.pmean(mean, axis_name)
        count = count * lax.psum(1, axis_name)
      var = jnp.mean(jnp.square(x - mean), axes)  # two passes: no E[x^2] - E[x]^2 cancellation
      if axis_name is not None:
        var = lax.pmean(var, axis_name)
      if not self.is_initializing():
        m = self.momentum
        ra_mean.value = (1 - m) * ra_mean.value + m * mean
        ra_var.value = (1 - m) * ra_var.value + m * var * (count / (count - 1))
    else:
      mean, var = ra_mean.value, ra_var.value
    y = (x - mean) * lax.rsqrt(var + self.epsilon)
    if self.affine:
      y = y * self.param("scale", nn.initializers.ones, (c,), jnp.float32)
      y = y + self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
    return y


class ConditionalBatchNorm(nn.Module):
  """StudioGAN's ``ConditionalBatchNorm2d``: batch norm without affine, then ``x * (1 +
  gain(y)) + bias(y)``, gain and bias bias-free linear maps of the one-hot label."""

  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, onehot: jax.Array, *, train: bool) -> jax.Array:
    c = x.shape[-1]
    h = BatchNorm(affine=False, axis_name=self.axis_name, name="bn")(x, train=train)
    gain = nn.Dense(c, use_bias=False, kernel_init=ORTHO, name="gain")(onehot)
    bias = nn.Dense(c, use_bias=False, kernel_init=ORTHO, name="bias")(onehot)
    return h * (1 + gain[:, None, None, :]) + bias[:, None, None, :]


def _conv(features: int, kernel: int, name: str) -> nn.Conv:
  pad = kernel // 2
  return nn.Conv(
    features, (kernel, kernel), padding=((pad, pad), (pad, pad)), kernel_init=ORTHO, name=name
  )


def upsample2x(x: jax.Array) -> jax.Array:
  """Nearest-neighbour x2 (torch's ``interpolate(scale_factor=2, mode='nearest')``)."""
  b, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c))
  return x.reshape(b, 2 * h, 2 * w, c)


def avg_pool2x(x: jax.Array) -> jax.Array:
  """2x2 average pooling with stride 2 (torch's ``AvgPool2d(2)``)."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


class GenBlock(nn.Module):
  """G's up-block: norm, ReLU, x2, 3x3 conv, norm, ReLU, 3x3 conv; shortcut x2, 1x1 conv."""

  features: int
  conditional: bool
  bn_axis_name: str | None = None

  def _norm(self, name: str, x: jax.Array, onehot: jax.Array | None, train: bool) -> jax.Array:
    if self.conditional:
      return ConditionalBatchNorm(self.bn_axis_name, name=name)(x, onehot, train=train)
    return BatchNorm(axis_name=self.bn_axis_name, name=name)(x, train=train)

  @nn.compact
  def __call__(self, x: jax.Array, onehot: jax.Array | None, *, train: bool) -> jax.Array:
    h = nn.relu(self._norm("bn1", x, onehot, train))
    h = _conv(self.features, 3, "conv2d1")(upsample2x(h))
    h = nn.relu(self._norm("bn2", h, onehot, train))
    h = _conv(self.features, 3, "conv2d2")(h)
    return h + _conv(self.features, 1, "conv2d0")(upsample2x(x))


class SNGANGenerator(nn.Module):
  """z (and integer labels when ``num_classes``) -> tanh images of ``out_shape``."""

  out_shape: tuple[int, int, int]
  conv_dim: int = 64
  num_classes: int = 0
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, z: jax.Array, y: jax.Array | None = None, *, train: bool = False) -> jax.Array:
    ch = 4 * self.conv_dim
    onehot = jax.nn.one_hot(y, self.num_classes, dtype=z.dtype) if self.num_classes else None
    h = nn.Dense(BOTTOM * BOTTOM * ch, kernel_init=ORTHO, name="linear0")(z)
    h = h.reshape(-1, BOTTOM, BOTTOM, ch)
    for i in range(3):
      h = GenBlock(ch, bool(self.num_classes), self.bn_axis_name, name=f"blocks_{i}")(
        h, onehot, train=train
      )
    h = nn.relu(BatchNorm(axis_name=self.bn_axis_name, name="bn4")(h, train=train))
    return jnp.tanh(_conv(self.out_shape[-1], 3, "conv2d5")(h))


class DiscOptBlock(nn.Module):
  """D's first block: 3x3 conv, ReLU, 3x3 conv, pool; shortcut pool, 1x1 conv."""

  features: int
  batch_norm: bool = False
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    bn = lambda name, v: BatchNorm(axis_name=self.bn_axis_name, name=name)(v, train=train)
    h = _conv(self.features, 3, "conv2d1")(x)
    h = nn.relu(bn("bn1", h) if self.batch_norm else h)
    h = avg_pool2x(_conv(self.features, 3, "conv2d2")(h))
    s = avg_pool2x(x)
    s = bn("bn0", s) if self.batch_norm else s
    return h + _conv(self.features, 1, "conv2d0")(s)


class DiscBlock(nn.Module):
  """D's pre-activation block: (norm), ReLU, 3x3 conv, (norm), ReLU, 3x3 conv, (pool);
  shortcut (norm), 1x1 conv, (pool) when it downsamples or changes channels, else identity.
  Without batch norm the shortcut takes the rectified input (the module docstring)."""

  features: int
  downsample: bool
  batch_norm: bool = False
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    bn = lambda name, v: BatchNorm(axis_name=self.bn_axis_name, name=name)(v, train=train)
    h = nn.relu(bn("bn1", x) if self.batch_norm else x)
    s = x if self.batch_norm else h
    h = _conv(self.features, 3, "conv2d1")(h)
    h = nn.relu(bn("bn2", h) if self.batch_norm else h)
    h = _conv(self.features, 3, "conv2d2")(h)
    if self.downsample:
      h = avg_pool2x(h)
    if self.downsample or x.shape[-1] != self.features:
      s = bn("bn0", s) if self.batch_norm else s
      s = _conv(self.features, 1, "conv2d0")(s)
      if self.downsample:
        s = avg_pool2x(s)
    return h + s


class Projection(nn.Module):
  """The projection term ``<embed(y), h>`` (Miyato & Koyama 2018); the embedding is stored
  ``[features, classes]`` (the module docstring says why)."""

  num_classes: int

  @nn.compact
  def __call__(self, h: jax.Array, y: jax.Array) -> jax.Array:
    kernel = self.param("kernel", ORTHO, (h.shape[-1], self.num_classes), jnp.float32)
    return jnp.sum(jnp.take(kernel, y, axis=1).T * h, axis=-1)


class SNGANDiscriminator(nn.Module):
  """Images (and integer labels when ``num_classes``) -> one logit per image."""

  conv_dim: int = 64
  num_classes: int = 0
  batch_norm: bool = False
  bn_axis_name: str | None = None
  d_cond: str = "projection"
  d_embed_dim: int = 512

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array | None = None, *, train: bool = False) -> jax.Array:
    ch = 2 * self.conv_dim
    kw = dict(batch_norm=self.batch_norm, bn_axis_name=self.bn_axis_name)
    h = DiscOptBlock(ch, **kw, name="blocks_0")(x, train=train)
    for i, down in enumerate((True, False, False), start=1):
      h = DiscBlock(ch, down, **kw, name=f"blocks_{i}")(h, train=train)
    h = jnp.sum(nn.relu(h), axis=(1, 2))
    out = nn.Dense(1, kernel_init=ORTHO, name="linear1")(h)[:, 0]
    if self.num_classes and self.d_cond == "projection":
      out = out + Projection(self.num_classes, name="embedding")(h, y)
    else:  # a class head (jaxgan.core.conditioning): its outputs are sown, the logit stays
      conditioning.apply_head(self, self.d_cond, h, y, self.num_classes, self.d_embed_dim)
    return out


def sngan_resnet(
  data: DataSpec,
  num_classes: int,
  bn_axis_name: str | None,
  *,
  g_conv_dim: int = 64,
  d_conv_dim: int = 64,
  d_batch_norm: bool = False,
  d_cond: str = "projection",
  d_embed_dim: int = 512,
) -> Nets:
  """StudioGAN's ``resnet`` G and D for 32x32 images (the module docstring).

  ``g_conv_dim``/``d_conv_dim``: StudioGAN's (G has 4x, D 2x as many channels). With
  spectral norm on D (``model.d_spectral_norm=True``, ``spectral_norm_order='legacy'``) this
  is its SNGAN; ``d_batch_norm=True`` puts batch norm in D, its layout without spectral norm.
  ``d_cond``: D's class conditioning, projection or a class head (``jaxgan.core.conditioning``:
  ac, tac, adc, d2dce; ``d_embed_dim`` is d2dce's embedding width).
  """
  conditioning.check_d_cond(d_cond, num_classes)
  if tuple(data.shape[:2]) != (32, 32) or len(data.shape) != 3:
    raise ValueError(
      f"sngan_resnet makes 32x32 images; {data.name!r} has shape {tuple(data.shape)} "
      "(pad 28x28 images with data.pad=2)."
    )
  g = SNGANGenerator(tuple(data.shape), g_conv_dim, num_classes, bn_axis_name)
  d = SNGANDiscriminator(d_conv_dim, num_classes, d_batch_norm, bn_axis_name, d_cond, d_embed_dim)
  return Nets(
    g,
    d,
    (-1.0, 1.0),
    convolutional=True,
    g_output_bias=("conv2d5", "bias"),
    g_output_bias_per_channel=True,
  )


# --- StudioGAN weights -------------------------------------------------------------------------

_STATS = {"running_mean": "mean", "running_var": "var"}


def _hwc_rows(a: Any) -> Any:
  """Reorders the leading axis of G's first linear output from torch's (c, h, w) to (h, w, c)."""
  lead, rest = a.shape[0], a.shape[1:]
  a = a.reshape(lead // (BOTTOM * BOTTOM), BOTTOM, BOTTOM, *rest)
  return a.transpose(1, 2, 0, *range(3, a.ndim)).reshape(lead, *rest)


def put_variable(out: dict[str, dict], collection: str, path: list[str], value: Any) -> None:
  """``out[collection][path[0]]...[path[-1]] = value`` as float32, making the nodes on the way
  (the converters of official ``state_dict``s build jaxgan's variables this way)."""
  node = out.setdefault(collection, {})
  for part in path[:-1]:
    node = node.setdefault(part, {})
  node[path[-1]] = value.astype(np.float32)


def variables_from_studiogan(state: Mapping[str, Any]) -> dict[str, dict]:
  """jaxgan variables ``{'params', 'batch_stats', 'spectral_norm'}`` (those present) for
  ``SNGANGenerator``/``SNGANDiscriminator`` from the ``state_dict`` of StudioGAN's
  ``Generator``/``Discriminator`` (``resnet``, 32x32) as numpy or jax arrays.

  Pure reshuffling, so it can be differentiated through: conv weights OIHW -> HWIO, linear
  and embedding weights transposed, G's first linear reordered from (c, h, w) to (h, w, c)
  outputs, spectral norm's ``weight_u``/``weight_v`` to the ``spectral_norm`` collection
  (``v`` over a conv's inputs reordered as the kernel's rows), batch norm's running stats to
  ``batch_stats``; ``num_batches_tracked`` is dropped."""
  out: dict[str, dict] = {}
  put = functools.partial(put_variable, out)
  for key, value in state.items():
    parts = key.split(".")
    if parts[0] == "blocks":  # blocks.<i>.0.<layer>: a ModuleList of one-module lists
      parts = [f"blocks_{parts[1]}", *parts[3:]]
    *module, name = parts
    first = module == ["linear0"]
    if name == "num_batches_tracked":
      continue
    if name in _STATS:
      put("batch_stats", [*module, _STATS[name]], value)
    elif name in ("weight", "weight_orig") and value.ndim == 4:
      put("params", [*module, "kernel"], value.transpose(2, 3, 1, 0))
    elif name in ("weight", "weight_orig") and value.ndim == 2:
      put("params", [*module, "kernel"], (_hwc_rows(value) if first else value).T)
    elif name == "weight":  # a batch norm's affine scale
      put("params", [*module, "scale"], value)
    elif name == "bias":
      put("params", [*module, "bias"], _hwc_rows(value) if first else value)
    elif name == "weight_u":
      put("spectral_norm", [*module, "kernel", "u"], _hwc_rows(value) if first else value)
    elif name == "weight_v":
      w = state[key[: -len("weight_v")] + "weight_orig"]
      if w.ndim == 4:  # over (in, kh, kw) in torch, over (kh, kw, in) as HWIO rows
        value = value.reshape(w.shape[1:]).transpose(1, 2, 0).reshape(-1)
      put("spectral_norm", [*module, "kernel", "v"], value)
    else:
      raise ValueError(f"{key}: not a StudioGAN resnet entry jaxgan knows.")
  return out
