"""R3GAN's generator and discriminator (Huang et al. 2024, "The GAN is dead; long live the GAN!").

``model.name=r3gan`` is the network of brownvc/R3GAN (``R3GAN/Networks.py``, with the
wrappers and presets of ``training/networks.py`` and ``train.py``), checked against it with
golden fixtures (``tests/test_r3gan.py``, ``docs/r3gan.md``). A modernized ResNet:

* Residual block at C channels: ``x + conv1x1(C2 -> C)(act(gconv3x3(C2 -> C2)(act(conv1x1(C
  -> C2)(x)))))`` with ``C2 = C * expansion`` and the 3x3 convolution grouped into
  ``cardinality`` groups. No normalization, no convolution biases; ``act`` is a learned
  per-channel bias then leaky ReLU (slope 0.2), gain 1.
* Fix-up initialization: weights ``N(0, gain / sqrt(fan_in))`` (plain weights, no equalized
  learning rate); the first two convolutions of a block take ``gain = sqrt(2 / (1 + 0.2^2)) *
  L^(-1/4)``, L the number of blocks of the net, and the last one starts at zero, so every
  block starts as the identity.
* Resampling by the [1, 3, 3, 1] filter (StyleGAN2's ``upsample2d``/``downsample2d``: up
  pads (2, 1) and multiplies by 4, down pads (1, 1)). G's transition to a stage is a 1x1
  convolution when the width changes, then the upsampling; D's is the downsampling, then the
  1x1 convolution.
* G: ``[z, embed(y)]`` -> a bias-free linear map to C scales a learned 4x4xC basis per
  channel; stages of blocks, doubling the resolution from the second; a 1x1 convolution to
  the image channels, no tanh. ``embed`` is a bias-free linear map of the one-hot label.
* D: a 1x1 convolution from the image channels; stages of blocks then a downsampling; at
  4x4, blocks then the discriminative basis (a depthwise 4x4 valid convolution and a
  bias-free linear map to 1, or to the label embedding's width when conditional, where the
  logit is ``<basis(x), embed(y)>`` with ``embed`` initialized at gain ``1/sqrt(width)``).

``widths``, ``blocks`` and ``cardinality`` are listed in G's order (4x4 first); D takes them
reversed, as ``train.py`` builds it. Layout NHWC, kernels HWIO;
``variables_from_official`` converts the official ``state_dict``. The official run
computes three stages of each net in bfloat16: ``low_precision_stages=3`` (float32 by
default). The grouped 3x3
convolutions run as XLA's grouped convolution on accelerators and as one einsum per kernel tap
on CPU, where XLA's grouped convolutions are 5-30x slower (``conv2d``, ``model.grouped_conv``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError
from jaxgan.models import Nets
from jaxgan.models.stylegan2.ops import downsample2d, setup_filter, upsample2d

SLOPE = 0.2  # leaky ReLU's negative slope
ACT_GAIN = math.sqrt(2 / (1 + SLOPE**2))  # for initialization only; the runtime gain is 1
BASIS = 4  # G's first and D's last resolution
FILTER = setup_filter((1, 3, 3, 1))  # the official CreateLowpassKernel([1, 2, 1])


def msr_init(gain: float = 1.0) -> nn.initializers.Initializer:
  """``N(0, gain / sqrt(fan_in))`` (the official ``MSRInitializer``); zeros for gain 0."""
  if gain == 0:
    return nn.initializers.zeros
  return nn.initializers.variance_scaling(gain**2, "fan_in", "normal")


def leaky(x: jax.Array) -> jax.Array:
  return jnp.where(x > 0, x, x * SLOPE)


class BiasedActivation(nn.Module):
  """A learned per-channel bias (starting at 0), then leaky ReLU with gain 1; in float32 and
  rounded once for low-precision ``x``, as the official ``bias_act`` CUDA kernel."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],), jnp.float32)
    return leaky(x.astype(jnp.float32) + bias).astype(x.dtype)


GROUPED_CONV = ("auto", "xla", "shifts")


def conv2d(x: jax.Array, w: jax.Array, groups: int = 1, impl: str = "auto") -> jax.Array:
  """A stride-1 convolution of NHWC ``x`` by HWIO ``w`` (``[k, k, C / groups, out]``, groups of
  contiguous channels as torch's) with ``(k - 1) // 2`` zero padding. ``impl``: "xla" is XLA's
  grouped convolution; "shifts" sums one batched matrix product per kernel tap over the
  groups (k^2 einsums of shifted inputs), the same numbers up to float32 rounding and 5-30x
  faster on XLA:CPU, whose grouped convolutions are slow; "auto" takes "shifts" on CPU for
  grouped convolutions, else "xla"."""
  k = w.shape[0]
  pad = (k - 1) // 2
  w = w.astype(x.dtype)
  if impl == "auto":
    impl = "shifts" if jax.default_backend() == "cpu" else "xla"
  if impl == "xla" or groups == 1 or k == 1:
    return lax.conv_general_dilated(
      x, w, (1, 1), ((pad, pad), (pad, pad)), dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=groups,
    )  # fmt: skip
  b, h, width, c = x.shape
  out = w.shape[-1]
  xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0))).reshape(
    b, h + 2 * pad, width + 2 * pad, groups, c // groups
  )
  wg = w.reshape(k, k, c // groups, groups, out // groups)
  y = None
  for i in range(k):
    for j in range(k):
      term = jnp.einsum("bhwgi,igo->bhwgo", xp[:, i : i + h, j : j + width], wg[i, j])
      y = term if y is None else y + term
  return y.reshape(b, h, width, out)


class Convolution(nn.Module):
  """A bias-free convolution, ``(kernel - 1) // 2`` zero padding, MSR-initialized; ``impl``
  as ``conv2d``'s."""

  features: int
  kernel: int = 1
  groups: int = 1
  gain: float = 1.0
  impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    shape = (self.kernel, self.kernel, x.shape[-1] // self.groups, self.features)
    w = self.param("kernel", msr_init(self.gain), shape, jnp.float32)
    return conv2d(x, w, self.groups, self.impl)


class ResidualBlock(nn.Module):
  """The module docstring's block; ``num_blocks``: L of the fix-up gain."""

  cardinality: int
  expansion: int
  kernel: int
  num_blocks: int
  grouped_conv: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    wide = c * self.expansion
    gain = ACT_GAIN * self.num_blocks ** (-1 / 4)  # L^(-1/(2 * 3 - 2)) for 3 linear layers
    y = Convolution(wide, 1, gain=gain, name="LinearLayer1")(x)
    y = BiasedActivation(name="NonLinearity1")(y)
    y = Convolution(
      wide, self.kernel, self.cardinality, gain, self.grouped_conv, name="LinearLayer2"
    )(y)
    y = BiasedActivation(name="NonLinearity2")(y)
    return x + Convolution(c, 1, gain=0.0, name="LinearLayer3")(y)


class GenerativeBasis(nn.Module):
  """A learned ``[4, 4, C]`` basis (``N(0, 1)``) scaled per channel by a linear map of z."""

  features: int

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    basis = self.param(
      "Basis", nn.initializers.normal(1.0), (BASIS, BASIS, self.features), jnp.float32
    )
    scale = nn.Dense(self.features, use_bias=False, kernel_init=msr_init(), name="LinearLayer")(z)
    return basis[None] * scale[:, None, None, :]


class DiscriminativeBasis(nn.Module):
  """A depthwise 4x4 valid convolution of the 4x4 features (a per-channel weighted sum over
  the positions), then a bias-free linear map to ``features``."""

  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    if x.shape[1:3] != (BASIS, BASIS):
      raise ValueError(f"the discriminative basis takes 4x4 features; got {x.shape[1:3]}.")
    kernel = self.param("Basis", msr_init(), (BASIS, BASIS, 1, c), jnp.float32)
    h = jnp.einsum("bhwc,hwc->bc", x, kernel[:, :, 0, :].astype(x.dtype))
    return nn.Dense(self.features, use_bias=False, kernel_init=msr_init(), name="LinearLayer")(h)


class Resample(nn.Module):
  """G's ``UpsampleLayer`` (1x1 convolution when the width changes, then up) or D's
  ``DownsampleLayer`` (down, then the 1x1 convolution)."""

  features: int
  up: bool

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = lambda v: (
      Convolution(self.features, name="LinearLayer")(v) if v.shape[-1] != self.features else v
    )
    if self.up:
      return upsample2d(conv(x), FILTER)
    return conv(downsample2d(x, FILTER))


class Stage(nn.Module):
  """One stage, named as the official ``Layers`` list: G's transition (``kind`` "basis" or
  "up") then the blocks, or D's blocks then its transition ("down" or "basis_d");
  ``features``: the transition's output width."""

  kind: str
  features: int
  num_blocks: int
  block: dict
  dtype: str = "float32"  # the stage casts its input to it, as the official ``DataType``

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.astype(self.dtype)
    g = self.kind in ("basis", "up")
    offset = 1 if g else 0
    blocks = [
      ResidualBlock(**self.block, name=f"Layers_{i + offset}") for i in range(self.num_blocks)
    ]
    name = "Layers_0" if g else f"Layers_{self.num_blocks}"
    transition = {
      "basis": lambda: GenerativeBasis(self.features, name=name),
      "up": lambda: Resample(self.features, up=True, name=name),
      "down": lambda: Resample(self.features, up=False, name=name),
      "basis_d": lambda: DiscriminativeBasis(self.features, name=name),
    }[self.kind]()
    if g:
      x = transition(x)
    for block in blocks:
      x = block(x)
    return x if g else transition(x)


def _onehot(y: jax.Array | None, num_classes: int, dtype) -> jax.Array:
  if y is None:
    raise ValueError(f"this R3GAN is conditional ({num_classes} classes): pass labels y.")
  return jax.nn.one_hot(y, num_classes, dtype=dtype)


class R3GANGenerator(nn.Module):
  """z (and integer labels when ``num_classes``) -> unbounded images of ``out_shape``."""

  out_shape: tuple[int, int, int]
  widths: tuple[int, ...]
  blocks: tuple[int, ...]
  cardinality: tuple[int, ...]
  expansion: int = 2
  kernel: int = 3
  num_classes: int = 0
  embed_dim: int = 64
  grouped_conv: str = "auto"
  low_precision_stages: int = 0  # the last ones, in compute_dtype
  compute_dtype: str = "bfloat16"

  @nn.compact
  def __call__(self, z: jax.Array, y: jax.Array | None = None, *, train: bool = False) -> jax.Array:
    del train  # no batch statistics, no dropout
    if self.num_classes:
      onehot = _onehot(y, self.num_classes, z.dtype)
      embed = nn.Dense(
        self.embed_dim, use_bias=False, kernel_init=msr_init(), name="EmbeddingLayer"
      )
      z = jnp.concatenate([z, embed(onehot)], axis=-1)
    h = z
    block = dict(expansion=self.expansion, kernel=self.kernel, num_blocks=sum(self.blocks))
    block.update(grouped_conv=self.grouped_conv)
    low = len(self.widths) - self.low_precision_stages
    for i, (width, n, card) in enumerate(zip(self.widths, self.blocks, self.cardinality)):
      kind = "basis" if i == 0 else "up"
      dtype = self.compute_dtype if i >= low else "float32"
      stage = Stage(kind, width, n, dict(block, cardinality=card), dtype, name=f"MainLayers_{i}")
      h = stage(h)
    return Convolution(self.out_shape[-1], name="AggregationLayer")(h).astype(jnp.float32)


class R3GANDiscriminator(nn.Module):
  """Images (and integer labels when ``num_classes``) -> one logit per image. ``widths``,
  ``blocks``, ``cardinality`` in G's order (4x4 first); D runs them reversed."""

  widths: tuple[int, ...]
  blocks: tuple[int, ...]
  cardinality: tuple[int, ...]
  expansion: int = 2
  kernel: int = 3
  num_classes: int = 0
  embed_dim: int = 0  # 0: the 4x4 width
  grouped_conv: str = "auto"
  low_precision_stages: int = 0  # the first ones, in compute_dtype
  compute_dtype: str = "bfloat16"

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array | None = None, *, train: bool = False) -> jax.Array:
    del train
    widths, blocks, cards = (
      tuple(reversed(v)) for v in (self.widths, self.blocks, self.cardinality)
    )
    embed_dim = self.embed_dim or widths[-1]
    block = dict(expansion=self.expansion, kernel=self.kernel, num_blocks=sum(blocks))
    block.update(grouped_conv=self.grouped_conv)
    dtypes = [
      self.compute_dtype if i < self.low_precision_stages else "float32" for i in range(len(blocks))
    ]
    h = Convolution(widths[0], name="ExtractionLayer")(x.astype(dtypes[0]))
    last = len(widths) - 1
    for i, (n, card) in enumerate(zip(blocks, cards)):
      if i < last:
        kind, out = "down", widths[i + 1]
      else:
        kind, out = "basis_d", embed_dim if self.num_classes else 1
      stage = Stage(kind, out, n, dict(block, cardinality=card), dtypes[i], name=f"MainLayers_{i}")
      h = stage(h)
    h = h.astype(jnp.float32)
    if not self.num_classes:
      return h[:, 0]
    onehot = _onehot(y, self.num_classes, h.dtype)
    gain = 1 / math.sqrt(embed_dim)
    embed = nn.Dense(embed_dim, use_bias=False, kernel_init=msr_init(gain), name="EmbeddingLayer")
    return jnp.sum(h * embed(onehot), axis=-1)


def _per_stage(values: Sequence[int], n: int, what: str) -> tuple[int, ...]:
  values = tuple(int(v) for v in values)
  if len(values) == 1:
    values = values * n
  if len(values) != n or min(values) < 1:
    raise ConfigError(
      f"config.model.{what}={values}: give one positive value per stage ({n}, as widths) or one "
      "for all."
    )
  return values


def r3gan(
  data: DataSpec,
  num_classes: int,
  bn_axis_name: str | None,
  *,
  widths: Sequence[int] = (768, 768, 768, 768),
  blocks: Sequence[int] = (2,),
  cardinality: Sequence[int] = (),
  group_width: int = 16,
  expansion: int = 2,
  kernel: int = 3,
  g_embed_dim: int = 64,
  d_embed_dim: int = 0,
  grouped_conv: str = "auto",
  low_precision_stages: int = 0,
  compute_dtype: str = "bfloat16",
) -> Nets:
  """R3GAN's G and D (the module docstring) for square images of 4 * 2^(stages - 1) pixels.

  The defaults are the official ``CIFAR10`` preset: four stages of 768 channels (4x4 to
  32x32), 2 blocks each, expansion 2, cardinality 96 (``cardinality=()`` takes ``width *
  expansion / group_width`` per stage, groups of 16 channels), G's label embedding 64 wide
  (the preset's noise dimension; ``noise.dim`` is z's), D's ``d_embed_dim`` 0 = its 4x4
  width (768). ``widths``, ``blocks`` and ``cardinality`` are in G's order, 4x4 first; one
  value stands for every stage. D takes the image's channels where the official hard-codes
  3, and so does G's output. ``grouped_conv``: how the grouped 3x3 convolutions run
  (``conv2d``: "auto" is XLA's grouped convolution on accelerators, one einsum per tap on CPU).

  Precision: float32 by default. ``low_precision_stages=k`` computes G's last k stages and D's
  first k (those at the highest resolutions; D's extraction layer too) in ``compute_dtype``
  with float32 parameters, as the official ``FP16Stages`` (bfloat16 in its CIFAR10 run, k = 3);
  G's output and D's logits are float32. The resampling filters accumulate in float32 and round
  once (the official CUDA kernel's way; its CPU path filters in bfloat16).

  G has no output nonlinearity: ``output_range`` (-1, 1) is where the pipeline puts real
  images and where samples are clipped for figures and metrics, not a bound on G.
  """
  del bn_axis_name  # no normalization
  if len(data.shape) != 3:
    raise ConfigError(f"r3gan needs image data (H, W, C); {data.name!r} has shape {data.shape}.")
  widths = tuple(int(w) for w in widths)
  n = len(widths)
  if n < 1 or min(widths) < 1:
    raise ConfigError(f"config.model.widths={widths}: give one positive width per stage.")
  blocks = _per_stage(blocks, n, "blocks")
  size = BASIS * 2 ** (n - 1)
  if tuple(data.shape[:2]) != (size, size):
    raise ConfigError(
      f"r3gan with {n} stages makes {size}x{size} images; {data.name!r} images are "
      f"{data.shape[0]}x{data.shape[1]} (one stage per doubling from 4x4: set "
      "config.model.widths, or pad 28x28 images with data.pad=2)."
    )
  if not cardinality:
    bad = [w for w in widths if (w * expansion) % group_width]
    if bad:
      raise ConfigError(
        f"config.model.group_width={group_width} does not divide width x expansion "
        f"({bad[0]} x {expansion}); set group_width or cardinality."
      )
    cardinality = tuple(w * expansion // group_width for w in widths)
  cardinality = _per_stage(cardinality, n, "cardinality")
  for w, card in zip(widths, cardinality):
    if (w * expansion) % card:
      raise ConfigError(
        f"config.model.cardinality {card} does not divide width x expansion ({w} x {expansion})."
      )
  if grouped_conv not in GROUPED_CONV:
    raise ConfigError(
      f"config.model.grouped_conv={grouped_conv!r}; valid: {', '.join(GROUPED_CONV)}."
    )
  if not 0 <= low_precision_stages < n:
    raise ConfigError(
      f"config.model.low_precision_stages={low_precision_stages}: use 0 (float32) to "
      f"{n - 1}; G's first stage and D's last stay float32 (the official CIFAR10 run: 3)."
    )
  if compute_dtype not in ("bfloat16", "float16"):
    raise ConfigError(f"config.model.compute_dtype={compute_dtype!r}; valid: bfloat16, float16.")
  if kernel < 1 or kernel % 2 == 0:
    raise ConfigError(f"config.model.kernel={kernel}: use an odd size (the official 3).")
  arch = dict(widths=widths, blocks=blocks, cardinality=cardinality, expansion=expansion)
  arch.update(kernel=kernel, num_classes=num_classes, grouped_conv=grouped_conv)
  arch.update(low_precision_stages=low_precision_stages, compute_dtype=compute_dtype)
  g = R3GANGenerator(tuple(data.shape), embed_dim=g_embed_dim, **arch)
  d = R3GANDiscriminator(embed_dim=d_embed_dim, **arch)
  return Nets(g, d, (-1.0, 1.0), convolutional=True)


# --- official weights ------------------------------------------------------------------------


def variables_from_official(state: Mapping[str, Any]) -> dict[str, dict]:
  """jaxgan variables ``{'params': ...}`` for ``R3GANGenerator``/``R3GANDiscriminator`` from
  the ``state_dict`` of the official ``R3GAN.Networks.Generator``/``Discriminator`` (or of
  ``training.networks``' wrappers, whose keys start with ``Model.``) as numpy or jax arrays.

  Pure reshuffling, so it can be differentiated through: ``MainLayers.i.Layers.j`` become
  ``MainLayers_i/Layers_j``, a ``Convolution``'s inner ``Layer`` is dropped, conv
  weights OIHW -> HWIO, linear weights transposed, G's basis ``[C, 4, 4]`` -> ``[4, 4, C]``,
  D's depthwise basis ``[C, 1, 4, 4]`` -> ``[4, 4, 1, C]``, ``Bias`` -> ``bias``; the
  resampling filters (buffers ``Kernel``) are dropped: they are constants here."""
  params: dict = {}
  for key, value in state.items():
    parts = key.split(".")
    if parts[0] == "Model":
      parts = parts[1:]
    *path, leaf = parts
    if leaf == "Kernel":
      continue
    names, i = [], 0
    while i < len(path):
      if path[i] in ("MainLayers", "Layers"):
        names.append(f"{path[i]}_{path[i + 1]}")
        i += 2
      else:
        if path[i] != "Layer":  # a Convolution's inner nn.Conv2d: its kernel is the module's
          names.append(path[i])
        i += 1
    if leaf == "weight" and value.ndim == 4:
      names, value = [*names, "kernel"], value.transpose(2, 3, 1, 0)
    elif leaf == "weight" and value.ndim == 2:
      names, value = [*names, "kernel"], value.T
    elif leaf == "Basis" and value.ndim == 3:
      names, value = [*names, "Basis"], value.transpose(1, 2, 0)
    elif leaf == "Bias":
      names = [*names, "bias"]
    else:
      raise ValueError(f"{key}: not an R3GAN entry jaxgan knows.")
    if names[-2:] == ["Basis", "kernel"]:  # D's depthwise basis is a param of its own
      names = [*names[:-2], "Basis"]
    node = params
    for part in names[:-1]:
      node = node.setdefault(part, {})
    node[names[-1]] = value.astype(np.float32)
  return {"params": params}
