"""StyleGAN2 (Karras et al. 2020) as in NVlabs/stylegan2-ada-pytorch: networks, ops, weights.

``stylegan2`` builds the pair for ``config.model.name='stylegan2'``; its defaults are the
official ``cifar`` configuration at full precision (``--cfg=cifar --fp32=1``);
``num_fp16_res`` > 0 computes the highest resolutions in ``compute_dtype`` as the official
mixed precision does (``networks`` says what is cast where).
"""

from __future__ import annotations

from collections.abc import Sequence

from jaxgan.data.spec import DataSpec
from jaxgan.models import Nets
from jaxgan.models.stylegan2.convert import variables_from_official
from jaxgan.models.stylegan2.networks import (
  BUFFERS,
  COMPUTE_DTYPES,
  NOISE_RNG,
  Discriminator,
  Generator,
  MappingNetwork,
  SynthesisNetwork,
)

__all__ = [
  "BUFFERS",
  "COMPUTE_DTYPES",
  "NOISE_RNG",
  "Discriminator",
  "Generator",
  "MappingNetwork",
  "SynthesisNetwork",
  "stylegan2",
  "variables_from_official",
]


def stylegan2(
  data: DataSpec,
  num_classes: int,
  bn_axis_name: str | None,
  *,
  z_dim: int = 512,
  w_dim: int = 512,
  mapping_layers: int = 2,
  mapping_lr_multiplier: float = 0.01,
  w_avg_beta: float = 0.995,
  channel_base: int = 32768,
  channel_max: int = 512,
  num_fp16_res: int = 0,
  compute_dtype: str = "bfloat16",
  conv_clamp: float | None = None,
  g_architecture: str = "skip",
  d_architecture: str = "orig",
  use_noise: bool = True,
  fused_modconv: bool | None = None,
  mbstd_group_size: int | None = 32,
  mbstd_num_channels: int = 1,
  d_mapping_layers: int = 8,
  cmap_dim: int | None = None,
  resample_filter: Sequence[float] = (1, 3, 3, 1),
  style_mixing_prob: float = 0.0,
) -> Nets:
  """StyleGAN2's G and D for square power-of-two images of 8×8 or more (pad MNIST to 32).

  The defaults are the official ``cifar`` config: 512 channels at every resolution up to 32
  (``channel_base`` 32768, ``channel_max`` 512), z = w = 512, a 2-layer mapping network with lr
  multiplier 0.01, G ``skip``, D ``orig``, minibatch std over groups of 32 with 1 channel, and
  D's label mapping with 8 layers; ``cmap_dim`` None is D's 4×4 channels.

  Precision: the defaults are float32 throughout (``num_fp16_res`` 0, as ``--fp32=1``). The
  official run computes its 4 highest resolutions (never 4×4) in float16 with ``conv_clamp``
  256: ``num_fp16_res=4, conv_clamp=256`` does that, in G's synthesis and in D, computing in
  ``compute_dtype`` ("bfloat16", the default: float32's range, native on TPUs and recent
  GPUs; or "float16", the official) with float32 parameters, mapping network, ToRGB sum and
  D epilogue. ``conv_clamp`` is not defaulted to 256 with ``num_fp16_res`` > 0 but required:
  it clamps the float32 layers too (ToRGB, D's 4×4 conv), so it changes the function, not
  just its rounding, and the config should say so.

  ``fused_modconv``: None is the official choice (the fused grouped convolution in evaluation,
  the non-fused path in training), except on XLA:CPU, where the grouped convolution samples
  ~20x slower and None never fuses; True or False forces one. ``style_mixing_prob``: 0 as
  ``cifar``; the other official configs use 0.9.

  G has no output nonlinearity: its images are unbounded and are trained against reals in
  [-1, 1]. ``output_range`` is (-1, 1) because that is where the pipeline puts real images
  (``data.pixel_range='auto'``) and where samples are clipped to for figures and metrics, as
  the official code clips its images when it saves them; it does not mean G's output is
  bounded. Labels are integer classes; D has no batch statistics but mixes the examples of its
  batch (minibatch std), so real and fake are scored in separate calls.
  """
  del bn_axis_name  # no batch norm
  if len(data.shape) != 3:
    raise ValueError(f"stylegan2 needs image data (H, W, C); {data.name!r} has shape {data.shape}.")
  height, width, channels = data.shape
  if height != width or height < 8 or height & (height - 1):
    raise ValueError(
      f"stylegan2 needs square power-of-two images of 8x8 or more; {data.name!r} images are "
      f"{height}x{width} (pad 28x28 images to 32x32)."
    )
  if compute_dtype not in COMPUTE_DTYPES:
    raise ValueError(
      f"config.model.compute_dtype={compute_dtype!r}; valid: {', '.join(COMPUTE_DTYPES)}."
    )
  if num_fp16_res < 0:
    raise ValueError(f"config.model.num_fp16_res={num_fp16_res}: use 0 (float32) or more.")
  if num_fp16_res and conv_clamp is None:
    raise ValueError(
      f"config.model.num_fp16_res={num_fp16_res} computes in {compute_dtype} and needs "
      "config.model.conv_clamp (the official 256)."
    )
  for arch, which in ((g_architecture, "g"), (d_architecture, "d")):
    if arch not in ("orig", "skip", "resnet"):
      raise ValueError(f"config.model.{which}_architecture={arch!r}; valid: orig, skip, resnet.")
  g = Generator(
    z_dim=z_dim,
    w_dim=w_dim,
    img_resolution=height,
    img_channels=channels,
    num_classes=num_classes,
    mapping_layers=mapping_layers,
    mapping_lr_multiplier=mapping_lr_multiplier,
    w_avg_beta=w_avg_beta,
    channel_base=channel_base,
    channel_max=channel_max,
    architecture=g_architecture,
    resample_filter=tuple(resample_filter),
    conv_clamp=conv_clamp,
    use_noise=use_noise,
    fused_modconv=fused_modconv,
    style_mixing_prob=style_mixing_prob,
    num_fp16_res=num_fp16_res,
    compute_dtype=compute_dtype,
  )
  d = Discriminator(
    img_resolution=height,
    img_channels=channels,
    num_classes=num_classes,
    architecture=d_architecture,
    channel_base=channel_base,
    channel_max=channel_max,
    conv_clamp=conv_clamp,
    cmap_dim=cmap_dim,
    mbstd_group_size=mbstd_group_size,
    mbstd_num_channels=mbstd_num_channels,
    mapping_layers=d_mapping_layers,
    resample_filter=tuple(resample_filter),
    num_fp16_res=num_fp16_res,
    compute_dtype=compute_dtype,
  )
  return Nets(g, d, (-1.0, 1.0), convolutional=True)
