"""StyleGAN2's generator and discriminator as Flax modules (NHWC, float32 or mixed precision).

The structure, constants and order of operations are those of NVlabs/stylegan2-ada-pytorch
``training/networks.py``; ``tests/test_stylegan2.py`` checks the modules against it. Every
module and parameter has the official name, so an official ``state_dict`` maps onto these
variables by name (``convert.variables_from_official``).

Equalized learning rate: parameters are stored as the official ones (N(0, 1) weights, divided
by the learning-rate multiplier for fully connected layers) and scaled at run time by
``weight_gain = lr_multiplier / sqrt(fan_in)`` and ``bias_gain = lr_multiplier``. Layouts are
Flax's: convolution weights HWIO, fully connected weights [in, out], the learned constant
[4, 4, C].

Non-trainable state lives in the ``"buffers"`` collection: the mapping network's ``w_avg``
(updated, with β = ``w_avg_beta``, only by a training-mode call, which must then let
``"buffers"`` be mutable) and each synthesis layer's ``noise_const``. The [1, 3, 3, 1]
resampling filter is a constant, not stored. Per-layer random noise is drawn from the
``"noise"`` rng stream (``noise_mode="random"``).

Mixed precision (``num_fp16_res`` > 0), as the official float16 blocks, in ``compute_dtype``
(bfloat16, or float16 as the official) instead of float16. The blocks at resolutions of at
least ``fp16_resolution`` = max(2^(log2(img_resolution) + 1 - num_fp16_res), 8), i.e. the
``num_fp16_res`` highest ones but never 4×4, compute in the low dtype, in G and in D; the rest
is float32. Parameters stay float32; only computation is low. The casts:

* G: ws are float32, so the mapping network and every affine (styles), the noise and the
  demodulation coefficients are float32. A low block casts its input ``x`` (or the learned
  constant) to the low dtype; each convolution casts its weights (per-sample weights when
  fused), styles, noise and demodulation coefficients to it; the demodulated convolutions of a
  low block pre-normalise weight and styles by their max (against float16 overflow). As in
  PyTorch's half arithmetic, the per-sample scalings and the noise add are computed in float32
  and rounded once (so their gradients' sums accumulate in float32), and bias_act adds the
  bias rounded to the low dtype, then the activation, gain and clamp in float32, rounded once
  (the official CUDA kernel). ToRGB computes in the block's dtype and its output
  is cast to float32 before it is added to ``img``: ``img`` (and its upsampling) is float32.
  With ``fused_modconv`` None a low block uses the fused convolution only in evaluation with a
  batch of 1 (float32 blocks: in evaluation), as the official, except on XLA:CPU (never).
* D: a low block casts its input ``x`` and, before FromRGB, ``img`` to the low dtype; its
  convolutions compute there and its ``x`` (and, for ``skip``, the downsampled ``img``) leave
  it in the low dtype. The 4×4 epilogue casts ``x`` and ``img`` to float32: minibatch std,
  conv, fc, out and the projection are float32, and so is D's output.

``conv_clamp`` (256 in the official runs) keeps float16 activations in range; the builder
requires it with ``num_fp16_res`` > 0. ``force_fp32=True`` (G's synthesis, D) computes every
block in float32 on the same parameters (the official PPL metric's choice).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.models.stylegan2 import ops
from jaxgan.models.traits import mark_mixes_examples

BUFFERS = "buffers"
MIXING_RNG = "mixing"  # style mixing's draws (the step's G stream "mixing")
NOISE_RNG = "noise"
ARCHITECTURES = ("orig", "skip", "resnet")
NOISE_MODES = ("random", "const", "none")
COMPUTE_DTYPES = ("bfloat16", "float16")


def _normal(key, shape, dtype=jnp.float32):
  return jax.random.normal(key, shape, dtype)


def _check_architecture(architecture: str) -> None:
  if architecture not in ARCHITECTURES:
    raise ValueError(f"architecture {architecture!r}; valid: {', '.join(ARCHITECTURES)}.")


def check_precision(num_fp16_res: int, compute_dtype: str) -> None:
  """Refuses a negative ``num_fp16_res`` or a ``compute_dtype`` other than bfloat16, float16."""
  if compute_dtype not in COMPUTE_DTYPES:
    raise ValueError(f"compute_dtype {compute_dtype!r}; valid: {', '.join(COMPUTE_DTYPES)}.")
  if num_fp16_res < 0:
    raise ValueError(f"num_fp16_res={num_fp16_res}: the number of low-precision resolutions.")


def fp16_resolution(img_resolution: int, num_fp16_res: int) -> int:
  """The lowest resolution computed in low precision (the official rule; never 4×4)."""
  return max(2 ** (int(np.log2(img_resolution)) + 1 - num_fp16_res), 8)


def block_dtype(resolution: int, img_resolution: int, num_fp16_res: int, compute_dtype: str) -> str:
  """The dtype the block at ``resolution`` computes in: ``compute_dtype`` from
  ``fp16_resolution`` up, float32 below (and everywhere for ``num_fp16_res`` 0)."""
  low = num_fp16_res > 0 and resolution >= fp16_resolution(img_resolution, num_fp16_res)
  return compute_dtype if low else "float32"


def block_channels(resolution: int, channel_base: int, channel_max: int) -> int:
  """Feature maps of the blocks at ``resolution``: min(channel_base // resolution, max)."""
  return min(channel_base // resolution, channel_max)


def labels_matrix(y: jax.Array | None, num_classes: int) -> jax.Array | None:
  """Integer labels [N] as one-hot rows, or float label vectors [N, num_classes] as given."""
  if not num_classes:
    return None
  if y is None:
    raise ValueError(f"this StyleGAN2 is conditional ({num_classes} classes): pass labels y.")
  if jnp.issubdtype(y.dtype, jnp.integer):
    return jax.nn.one_hot(y, num_classes, dtype=jnp.float32)
  if y.ndim != 2 or y.shape[-1] != num_classes:
    raise ValueError(f"labels of shape {y.shape}: give int classes [N] or [N, {num_classes}].")
  return y.astype(jnp.float32)


class FullyConnectedLayer(nn.Module):
  """y = act(x · W·weight_gain + b·bias_gain): weight [in, out] ~ N(0, 1)/lr_multiplier,
  weight_gain = lr_multiplier/sqrt(in), bias_gain = lr_multiplier, bias initialised to
  ``bias_init``."""

  features: int
  use_bias: bool = True
  activation: str = "linear"
  lr_multiplier: float = 1.0
  bias_init: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    in_features = x.shape[-1]
    lr = self.lr_multiplier
    weight = self.param("weight", lambda k, s: _normal(k, s) / lr, (in_features, self.features))
    x = x @ (weight * (lr / np.sqrt(in_features))).astype(x.dtype)
    b = None
    if self.use_bias:
      b = self.param(
        "bias", lambda k, s: jnp.full(s, self.bias_init, jnp.float32), (self.features,)
      )
      if lr != 1:
        b = b * lr
    return ops.bias_act(x, b, act=self.activation)


class Conv2dLayer(nn.Module):
  """A convolution with runtime weight gain 1/sqrt(in·k²), optional up/downsampling through
  the resampling filter, then bias, activation (times its gain × ``gain``) and clamp."""

  features: int
  kernel_size: int
  use_bias: bool = True
  activation: str = "linear"
  up: int = 1
  down: int = 1
  resample_filter: Sequence[float] = (1, 3, 3, 1)
  conv_clamp: float | None = None

  @nn.compact
  def __call__(self, x: jax.Array, gain: float = 1.0) -> jax.Array:
    in_channels = x.shape[-1]
    k = self.kernel_size
    weight = self.param("weight", _normal, (k, k, in_channels, self.features))
    w = weight * (1 / np.sqrt(in_channels * k * k))
    x = ops.conv2d_resample(
      x,
      w,
      ops.setup_filter(self.resample_filter),
      up=self.up,
      down=self.down,
      padding=k // 2,
      flip_weight=self.up == 1,
    )
    b = self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else None
    clamp = None if self.conv_clamp is None else self.conv_clamp * gain
    return ops.bias_act(
      x, b, act=self.activation, gain=ops.activation_gain(self.activation) * gain, clamp=clamp
    )


class MappingNetwork(nn.Module):
  """z (and labels) -> w: 2nd-moment normalised z, concatenated with the normalised label
  embedding, through ``num_layers`` fully connected layers (lr multiplier 0.01); tracks
  ``w_avg`` in training; broadcast to ``num_ws`` copies and truncated toward ``w_avg``."""

  z_dim: int
  c_dim: int
  w_dim: int
  num_ws: int | None
  num_layers: int = 8
  embed_features: int | None = None
  layer_features: int | None = None
  activation: str = "lrelu"
  lr_multiplier: float = 0.01
  w_avg_beta: float | None = 0.995

  @nn.compact
  def __call__(
    self,
    z: jax.Array | None,
    c: jax.Array | None,
    *,
    train: bool = False,
    truncation_psi=1.0,
    truncation_cutoff: int | None = None,
    skip_w_avg_update: bool = False,
  ) -> jax.Array:
    embed_features = self.w_dim if self.embed_features is None else self.embed_features
    layer_features = self.w_dim if self.layer_features is None else self.layer_features
    x = None
    if self.z_dim > 0:
      if z.shape[-1] != self.z_dim:
        raise ValueError(
          f"the mapping network takes z of {self.z_dim} features, got {z.shape[-1]} "
          "(config.noise.dim must equal config.model.z_dim)."
        )
      x = ops.normalize_2nd_moment(z.astype(jnp.float32))
    if self.c_dim > 0:
      y = FullyConnectedLayer(embed_features, name="embed")(c.astype(jnp.float32))
      y = ops.normalize_2nd_moment(y)
      x = y if x is None else jnp.concatenate([x, y], axis=1)
    for idx in range(self.num_layers):
      features = self.w_dim if idx == self.num_layers - 1 else layer_features
      x = FullyConnectedLayer(
        features, activation=self.activation, lr_multiplier=self.lr_multiplier, name=f"fc{idx}"
      )(x)

    track = self.num_ws is not None and self.w_avg_beta is not None
    if track:
      w_avg = self.variable(BUFFERS, "w_avg", jnp.zeros, (self.w_dim,), jnp.float32)
      if train and not skip_w_avg_update and not self.is_initializing():
        w_avg.value = ops.lerp(
          jnp.mean(jax.lax.stop_gradient(x), axis=0), w_avg.value, self.w_avg_beta
        )
    if self.num_ws is not None:
      x = jnp.broadcast_to(x[:, None, :], (x.shape[0], self.num_ws, x.shape[-1]))

    if not (isinstance(truncation_psi, int | float) and truncation_psi == 1):
      if not track:
        raise ValueError("truncation needs a mapping network that tracks w_avg.")
      avg = w_avg.value
      if self.num_ws is None or truncation_cutoff is None:
        x = ops.lerp(avg, x, truncation_psi)
      else:
        head = ops.lerp(avg, x[:, :truncation_cutoff], truncation_psi)
        x = jnp.concatenate([head, x[:, truncation_cutoff:]], axis=1)
    return x


class SynthesisLayer(nn.Module):
  """Modulated 3×3 convolution (upsampling by 2 when ``up``), per-pixel noise times a learned
  strength, bias and lrelu."""

  features: int
  resolution: int
  kernel_size: int = 3
  up: int = 1
  use_noise: bool = True
  activation: str = "lrelu"
  resample_filter: Sequence[float] = (1, 3, 3, 1)
  conv_clamp: float | None = None

  @nn.compact
  def __call__(
    self,
    x: jax.Array,
    w: jax.Array,
    noise_mode: str = "random",
    fused_modconv: bool = True,
    gain: float = 1.0,
  ) -> jax.Array:
    if noise_mode not in NOISE_MODES:
      raise ValueError(f"noise_mode {noise_mode!r}; valid: {', '.join(NOISE_MODES)}.")
    in_channels = x.shape[-1]
    k = self.kernel_size
    styles = FullyConnectedLayer(in_channels, bias_init=1.0, name="affine")(w)
    weight = self.param("weight", _normal, (k, k, in_channels, self.features))
    noise = None
    if self.use_noise:
      res = self.resolution
      noise_const = self.variable(
        BUFFERS, "noise_const", lambda: _normal(self.make_rng("params"), (res, res))
      )
      strength = self.param("noise_strength", nn.initializers.zeros, ())
      if noise_mode == "random":
        noise = _normal(self.make_rng(NOISE_RNG), (x.shape[0], res, res, 1)) * strength
      elif noise_mode == "const":
        noise = (noise_const.value * strength)[None, :, :, None]
    x = ops.modulated_conv2d(
      x,
      weight,
      styles,
      noise=noise,
      up=self.up,
      padding=k // 2,
      resample_filter=ops.setup_filter(self.resample_filter),
      flip_weight=self.up == 1,
      fused_modconv=fused_modconv,
    )
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    clamp = None if self.conv_clamp is None else self.conv_clamp * gain
    return ops.bias_act(
      x, bias, act=self.activation, gain=ops.activation_gain(self.activation) * gain, clamp=clamp
    )


class ToRGBLayer(nn.Module):
  """1×1 modulated convolution without demodulation (styles × 1/sqrt(in·k²)), then bias."""

  features: int
  kernel_size: int = 1
  conv_clamp: float | None = None

  @nn.compact
  def __call__(self, x: jax.Array, w: jax.Array, fused_modconv: bool = True) -> jax.Array:
    in_channels = x.shape[-1]
    k = self.kernel_size
    styles = FullyConnectedLayer(in_channels, bias_init=1.0, name="affine")(w)
    styles = styles * (1 / np.sqrt(in_channels * k * k))
    weight = self.param("weight", _normal, (k, k, in_channels, self.features))
    x = ops.modulated_conv2d(x, weight, styles, demodulate=False, fused_modconv=fused_modconv)
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return ops.bias_act(x, bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
  """One resolution of the synthesis network: the learned 4×4 constant (first block) or an
  upsampling conv0, then conv1; ``skip`` adds every block's ToRGB to the upsampled image,
  ``resnet`` adds a 1×1 upsampling skip (both branches × √½), ``orig`` has ToRGB only last."""

  in_channels: int  # 0: the first block
  features: int
  resolution: int
  img_channels: int
  is_last: bool
  architecture: str = "skip"
  resample_filter: Sequence[float] = (1, 3, 3, 1)
  conv_clamp: float | None = None
  use_noise: bool = True
  dtype: str = "float32"  # what the block computes in; ToRGB's output and img are float32

  @property
  def num_conv(self) -> int:
    return 1 if self.in_channels == 0 else 2

  @property
  def num_torgb(self) -> int:
    return int(self.is_last or self.architecture == "skip")

  @nn.compact
  def __call__(
    self,
    x: jax.Array | None,
    img: jax.Array | None,
    ws: jax.Array,
    *,
    noise_mode: str = "random",
    fused_modconv: bool = True,
  ) -> tuple[jax.Array, jax.Array | None]:
    _check_architecture(self.architecture)
    layer = dict(
      resolution=self.resolution,
      resample_filter=self.resample_filter,
      conv_clamp=self.conv_clamp,
      use_noise=self.use_noise,
    )
    kw = dict(noise_mode=noise_mode, fused_modconv=fused_modconv)
    res = self.resolution
    dtype = jnp.dtype(self.dtype)
    w_iter = iter(ws[:, i] for i in range(ws.shape[1]))
    if self.in_channels == 0:
      const = self.param("const", _normal, (res, res, self.features))
      x = jnp.broadcast_to(const.astype(dtype)[None], (ws.shape[0], *const.shape))
      x = SynthesisLayer(self.features, name="conv1", **layer)(x, next(w_iter), **kw)
    elif self.architecture == "resnet":
      x = x.astype(dtype)
      y = Conv2dLayer(
        self.features,
        1,
        use_bias=False,
        up=2,
        resample_filter=self.resample_filter,
        name="skip",
      )(x, gain=np.sqrt(0.5))
      x = SynthesisLayer(self.features, up=2, name="conv0", **layer)(x, next(w_iter), **kw)
      x = SynthesisLayer(self.features, name="conv1", **layer)(
        x, next(w_iter), gain=np.sqrt(0.5), **kw
      )
      x = y + x
    else:
      x = x.astype(dtype)
      x = SynthesisLayer(self.features, up=2, name="conv0", **layer)(x, next(w_iter), **kw)
      x = SynthesisLayer(self.features, name="conv1", **layer)(x, next(w_iter), **kw)

    if img is not None:
      img = ops.upsample2d(img, ops.setup_filter(self.resample_filter))
    if self.num_torgb:
      y = ToRGBLayer(self.img_channels, conv_clamp=self.conv_clamp, name="torgb")(
        x, next(w_iter), fused_modconv=fused_modconv
      ).astype(jnp.float32)
      img = y if img is None else img + y
    return x, img


def synthesis_layout(
  img_resolution: int, channel_base: int, channel_max: int, architecture: str
) -> tuple[list[int], dict[int, int], int]:
  """The synthesis network's block resolutions, their channels and its number of ws."""
  _check_architecture(architecture)
  log2 = int(np.log2(img_resolution))
  if img_resolution < 4 or 2**log2 != img_resolution:
    raise ValueError(
      f"StyleGAN2 needs a power-of-two resolution of 4 or more, got {img_resolution}."
    )
  resolutions = [2**i for i in range(2, log2 + 1)]
  channels = {r: block_channels(r, channel_base, channel_max) for r in resolutions}
  num_ws = sum(1 if r == 4 else 2 for r in resolutions) + 1  # the convs and the last ToRGB
  return resolutions, channels, num_ws


def grouped_convolutions_are_fast() -> bool:
  """False on XLA:CPU, where the fused (grouped) modulated convolution samples ~20x slower than
  scale, convolve, scale; the two paths agree to float32 rounding (tests/test_stylegan2.py)."""
  return jax.default_backend() != "cpu"


class SynthesisNetwork(nn.Module):
  """ws [N, num_ws, w_dim] -> images [N, H, W, C], one block per resolution from 4.

  Block r gets the ws of its convs and, for its ToRGB, the next one (the official split: the
  ToRGB of a block shares its w with the next block's first conv)."""

  img_resolution: int
  img_channels: int
  channel_base: int = 32768
  channel_max: int = 512
  architecture: str = "skip"
  resample_filter: Sequence[float] = (1, 3, 3, 1)
  conv_clamp: float | None = None
  use_noise: bool = True
  fused_modconv: bool | None = None  # None: as the official (fused in float32 evaluation)
  num_fp16_res: int = 0  # the highest resolutions computed in compute_dtype
  compute_dtype: str = "bfloat16"

  @property
  def num_ws(self) -> int:
    return synthesis_layout(
      self.img_resolution, self.channel_base, self.channel_max, self.architecture
    )[2]

  @nn.compact
  def __call__(
    self,
    ws: jax.Array,
    *,
    train: bool = False,
    noise_mode: str = "random",
    fused_modconv: bool | None = None,
    force_fp32: bool = False,
  ) -> jax.Array:
    check_precision(self.num_fp16_res, self.compute_dtype)
    resolutions, channels, num_ws = synthesis_layout(
      self.img_resolution, self.channel_base, self.channel_max, self.architecture
    )
    if ws.ndim != 3 or ws.shape[1] != num_ws:
      raise ValueError(f"synthesis takes ws of shape [N, {num_ws}, w_dim], got {ws.shape}.")
    forced = self.fused_modconv if fused_modconv is None else fused_modconv
    ws = ws.astype(jnp.float32)
    x = img = None
    w_idx = 0
    for res in resolutions:
      dtype = "float32" if force_fp32 else self._block_dtype(res)
      fused = forced
      if fused is None:  # the official: low-precision blocks fuse only a batch of 1
        fused = (not train) and (dtype == "float32" or ws.shape[0] == 1)
        fused = fused and grouped_convolutions_are_fast()
      block = SynthesisBlock(
        in_channels=channels[res // 2] if res > 4 else 0,
        features=channels[res],
        resolution=res,
        img_channels=self.img_channels,
        is_last=res == self.img_resolution,
        architecture=self.architecture,
        resample_filter=self.resample_filter,
        conv_clamp=self.conv_clamp,
        use_noise=self.use_noise,
        dtype=dtype,
        name=f"b{res}",
      )
      block_ws = ws[:, w_idx : w_idx + block.num_conv + block.num_torgb]
      w_idx += block.num_conv
      x, img = block(x, img, block_ws, noise_mode=noise_mode, fused_modconv=fused)
    return img

  def _block_dtype(self, res: int) -> str:
    return block_dtype(res, self.img_resolution, self.num_fp16_res, self.compute_dtype)


class Generator(nn.Module):
  """StyleGAN2's G: ``mapping`` (z, labels -> ws) then ``synthesis`` (ws -> image), each
  callable on its own (``apply(..., method="mapping")``).

  Labels are integer classes [N] (one-hot inside) or float vectors [N, num_classes]."""

  z_dim: int
  w_dim: int
  img_resolution: int
  img_channels: int
  num_classes: int = 0
  mapping_layers: int = 8
  mapping_lr_multiplier: float = 0.01
  w_avg_beta: float | None = 0.995
  channel_base: int = 32768
  channel_max: int = 512
  architecture: str = "skip"
  resample_filter: Sequence[float] = (1, 3, 3, 1)
  conv_clamp: float | None = None
  use_noise: bool = True
  fused_modconv: bool | None = None
  style_mixing_prob: float = 0.0
  num_fp16_res: int = 0
  compute_dtype: str = "bfloat16"

  @property
  def num_ws(self) -> int:
    return synthesis_layout(
      self.img_resolution, self.channel_base, self.channel_max, self.architecture
    )[2]

  def setup(self):
    self.synthesis_network = SynthesisNetwork(
      img_resolution=self.img_resolution,
      img_channels=self.img_channels,
      channel_base=self.channel_base,
      channel_max=self.channel_max,
      architecture=self.architecture,
      resample_filter=self.resample_filter,
      conv_clamp=self.conv_clamp,
      use_noise=self.use_noise,
      fused_modconv=self.fused_modconv,
      num_fp16_res=self.num_fp16_res,
      compute_dtype=self.compute_dtype,
      name="synthesis",
    )
    self.mapping_network = MappingNetwork(
      z_dim=self.z_dim,
      c_dim=self.num_classes,
      w_dim=self.w_dim,
      num_ws=self.num_ws,
      num_layers=self.mapping_layers,
      lr_multiplier=self.mapping_lr_multiplier,
      w_avg_beta=self.w_avg_beta,
      name="mapping",
    )

  def mapping(
    self,
    z: jax.Array,
    y: jax.Array | None = None,
    *,
    train: bool,
    truncation_psi=1.0,
    truncation_cutoff: int | None = None,
    skip_w_avg_update: bool = False,
  ) -> jax.Array:
    """z [N, z_dim] (and labels) -> ws [N, num_ws, w_dim]. In training (``train``) it
    updates ``w_avg`` (mutable ``"buffers"``) unless ``skip_w_avg_update``, and mixes styles
    with probability ``style_mixing_prob``; ``truncation_psi`` moves the first
    ``truncation_cutoff`` ws (all for None) toward ``w_avg``."""
    c = labels_matrix(y, self.num_classes)
    ws = self.mapping_network(
      z,
      c,
      train=train,
      truncation_psi=truncation_psi,
      truncation_cutoff=truncation_cutoff,
      skip_w_avg_update=skip_w_avg_update,
    )
    if train and self.style_mixing_prob > 0 and not self.is_initializing():
      ws = self._mix_styles(ws, z, c)
    return ws

  def _mix_styles(self, ws: jax.Array, z: jax.Array, c: jax.Array | None) -> jax.Array:
    """The official loss's style mixing (``run_G``), as part of G's training forward: with
    probability ``style_mixing_prob`` (once per batch), the ws from a random cutoff in
    [1, num_ws) on come from a second, standard normal z (not counted in ``w_avg``). Its
    draws come from the ``"mixing"`` rng."""
    k_cutoff, k_use, k_z = jax.random.split(self.make_rng(MIXING_RNG), 3)
    num_ws = ws.shape[1]
    cutoff = jax.random.randint(k_cutoff, (), 1, num_ws)
    cutoff = jnp.where(jax.random.uniform(k_use, ()) < self.style_mixing_prob, cutoff, num_ws)
    other = self.mapping_network(
      jax.random.normal(k_z, z.shape, jnp.float32), c, train=True, skip_w_avg_update=True
    )
    return jnp.where(jnp.arange(num_ws)[None, :, None] >= cutoff, other, ws)

  def synthesis(
    self,
    ws: jax.Array,
    *,
    train: bool,
    noise_mode: str = "random",
    fused_modconv: bool | None = None,
    force_fp32: bool = False,
  ) -> jax.Array:
    """ws [N, num_ws, w_dim] -> float32 images [N, H, W, C], about [-1, 1] (no output
    nonlinearity). ``noise_mode="random"`` draws from the ``"noise"`` rng; ``force_fp32``
    computes the low-precision blocks in float32."""
    return self.synthesis_network(
      ws, train=train, noise_mode=noise_mode, fused_modconv=fused_modconv, force_fp32=force_fp32
    )

  def __call__(
    self,
    z: jax.Array,
    y: jax.Array | None = None,
    *,
    train: bool = False,
    truncation_psi=1.0,
    truncation_cutoff: int | None = None,
    noise_mode: str = "random",
    fused_modconv: bool | None = None,
    force_fp32: bool = False,
  ) -> jax.Array:
    ws = self.mapping(
      z, y, train=train, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff
    )
    return self.synthesis(
      ws, train=train, noise_mode=noise_mode, fused_modconv=fused_modconv, force_fp32=force_fp32
    )


class DiscriminatorBlock(nn.Module):
  """FromRGB (first block, or every block for ``skip``), conv0 3×3, conv1 3×3 downsampling by
  2; ``resnet`` adds a 1×1 downsampling skip, both branches × √½."""

  in_channels: int  # 0: the first block
  tmp_channels: int
  out_channels: int
  architecture: str = "resnet"
  activation: str = "lrelu"
  resample_filter: Sequence[float] = (1, 3, 3, 1)
  conv_clamp: float | None = None
  dtype: str = "float32"  # what the block computes in; x (and img for skip) leave in it

  @nn.compact
  def __call__(
    self, x: jax.Array | None, img: jax.Array | None
  ) -> tuple[jax.Array, jax.Array | None]:
    _check_architecture(self.architecture)
    conv = dict(activation=self.activation, conv_clamp=self.conv_clamp)
    dtype = jnp.dtype(self.dtype)
    if x is not None:
      x = x.astype(dtype)
    if self.in_channels == 0 or self.architecture == "skip":
      img = img.astype(dtype)
      y = Conv2dLayer(self.tmp_channels, 1, name="fromrgb", **conv)(img)
      x = y if x is None else x + y
      skip_img = self.architecture == "skip"
      img = ops.downsample2d(img, ops.setup_filter(self.resample_filter)) if skip_img else None
    down = dict(down=2, resample_filter=self.resample_filter)
    if self.architecture == "resnet":
      y = Conv2dLayer(self.out_channels, 1, use_bias=False, name="skip", **down)(
        x, gain=np.sqrt(0.5)
      )
      x = Conv2dLayer(self.tmp_channels, 3, name="conv0", **conv)(x)
      x = Conv2dLayer(self.out_channels, 3, name="conv1", **conv, **down)(x, gain=np.sqrt(0.5))
      x = y + x
    else:
      x = Conv2dLayer(self.tmp_channels, 3, name="conv0", **conv)(x)
      x = Conv2dLayer(self.out_channels, 3, name="conv1", **conv, **down)(x)
    return x, img


class MinibatchStdLayer(nn.Module):
  """Appends the standard deviation over strided groups of samples (``ops.minibatch_std``);
  it makes D's output for one example depend on the others, and says so."""

  group_size: int | None
  num_channels: int = 1

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    mark_mixes_examples(self)
    return ops.minibatch_std(x, self.group_size, self.num_channels)


class DiscriminatorEpilogue(nn.Module):
  """The 4×4 head: (FromRGB for ``skip``), minibatch std, conv 3×3, fc, out; conditional:
  the projection (out · cmap).sum / sqrt(cmap_dim).

  ``fc`` flattens in (H, W, C) order; the official (C, H, W) weight is permuted on loading."""

  in_channels: int
  cmap_dim: int
  img_channels: int
  architecture: str = "resnet"
  mbstd_group_size: int | None = 4
  mbstd_num_channels: int = 1
  activation: str = "lrelu"
  conv_clamp: float | None = None

  @nn.compact
  def __call__(self, x: jax.Array, img: jax.Array | None, cmap: jax.Array | None) -> jax.Array:
    _check_architecture(self.architecture)
    x = x.astype(jnp.float32)  # always float32, as the official epilogue
    if self.architecture == "skip":
      img = img.astype(jnp.float32)
      x = x + Conv2dLayer(self.in_channels, 1, activation=self.activation, name="fromrgb")(img)
    if self.mbstd_num_channels > 0:
      x = MinibatchStdLayer(self.mbstd_group_size, self.mbstd_num_channels, name="mbstd")(x)
    x = Conv2dLayer(
      self.in_channels, 3, activation=self.activation, conv_clamp=self.conv_clamp, name="conv"
    )(x)
    x = FullyConnectedLayer(self.in_channels, activation=self.activation, name="fc")(
      x.reshape(x.shape[0], -1)
    )
    x = FullyConnectedLayer(1 if self.cmap_dim == 0 else self.cmap_dim, name="out")(x)
    if self.cmap_dim > 0:
      x = jnp.sum(x * cmap, axis=1, keepdims=True) * (1 / np.sqrt(self.cmap_dim))
    return x


class Discriminator(nn.Module):
  """StyleGAN2's D: blocks from the image resolution down to 8, then the 4×4 epilogue; with
  labels, a mapping network (z_dim 0, ``mapping_layers`` layers) maps them to ``cmap`` for the
  projection. Returns float32 logits [N]; ``force_fp32`` computes every block in float32."""

  img_resolution: int
  img_channels: int
  num_classes: int = 0
  architecture: str = "resnet"
  channel_base: int = 32768
  channel_max: int = 512
  conv_clamp: float | None = None
  cmap_dim: int | None = None
  mbstd_group_size: int | None = 4
  mbstd_num_channels: int = 1
  mapping_layers: int = 8
  mapping_lr_multiplier: float = 0.01
  resample_filter: Sequence[float] = (1, 3, 3, 1)
  num_fp16_res: int = 0  # the highest resolutions computed in compute_dtype
  compute_dtype: str = "bfloat16"

  @nn.compact
  def __call__(
    self,
    x: jax.Array,
    y: jax.Array | None = None,
    *,
    train: bool = False,
    force_fp32: bool = False,
  ) -> jax.Array:
    del train  # no batch statistics, no dropout: the same function in training and evaluation
    _check_architecture(self.architecture)
    check_precision(self.num_fp16_res, self.compute_dtype)
    log2 = int(np.log2(self.img_resolution))
    if self.img_resolution < 8 or 2**log2 != self.img_resolution:
      raise ValueError(
        f"StyleGAN2's D needs a power-of-two resolution of 8 or more, got {self.img_resolution}."
      )
    if x.shape[1:] != (self.img_resolution, self.img_resolution, self.img_channels):
      raise ValueError(
        f"D takes images [N, {self.img_resolution}, {self.img_resolution}, "
        f"{self.img_channels}], got {x.shape}."
      )
    resolutions = [2**i for i in range(log2, 2, -1)]
    ch = lambda r: block_channels(r, self.channel_base, self.channel_max)
    cmap_dim = ch(4) if self.cmap_dim is None else self.cmap_dim
    cmap_dim = cmap_dim if self.num_classes else 0

    h, img = None, x.astype(jnp.float32)
    for res in resolutions:
      dtype = block_dtype(res, self.img_resolution, self.num_fp16_res, self.compute_dtype)
      h, img = DiscriminatorBlock(
        in_channels=ch(res) if res < self.img_resolution else 0,
        tmp_channels=ch(res),
        out_channels=ch(res // 2),
        architecture=self.architecture,
        resample_filter=self.resample_filter,
        conv_clamp=self.conv_clamp,
        dtype="float32" if force_fp32 else dtype,
        name=f"b{res}",
      )(h, img)
    cmap = None
    if self.num_classes:
      cmap = MappingNetwork(
        z_dim=0,
        c_dim=self.num_classes,
        w_dim=cmap_dim,
        num_ws=None,
        num_layers=self.mapping_layers,
        lr_multiplier=self.mapping_lr_multiplier,
        w_avg_beta=None,
        name="mapping",
      )(None, labels_matrix(y, self.num_classes))
    out = DiscriminatorEpilogue(
      in_channels=ch(4),
      cmap_dim=cmap_dim,
      img_channels=self.img_channels,
      architecture=self.architecture,
      mbstd_group_size=self.mbstd_group_size,
      mbstd_num_channels=self.mbstd_num_channels,
      conv_clamp=self.conv_clamp,
      name="b4",
    )(h, img, cmap)
    return out[:, 0]
