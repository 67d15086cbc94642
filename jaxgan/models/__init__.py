"""Generator/discriminator pairs, chosen by ``config.model.name``.

Each builder takes the dataset's ``DataSpec``, the number of classes to condition
on (0 for unconditional models), the device axis that batch norm averages its
statistics over (None for per-device statistics) and its own keyword
hyperparameters, which are exactly the other keys of ``config.model``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import flax.linen as nn
import numpy as np

from jaxgan.data.spec import DataSpec
from jaxgan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from jaxgan.models.fast_conv import resolve_conv_impl, resolve_impl
from jaxgan.models.mlp import MLPDiscriminator, MLPGenerator
from jaxgan.models.paper_mlp import PaperMaxoutDiscriminator, PaperMLPGenerator
from jaxgan.registry import Registry


@dataclasses.dataclass(frozen=True)
class Nets:
  """A generator and a discriminator that fit together.

  Attributes:
    generator: ``G(z, y=None, *, train) -> x`` with x of ``data.shape``.
    discriminator: ``D(x, y=None, *, train) -> logits`` of shape [batch].
    output_range: the range of G's output (e.g. (-1, 1) for tanh), which image
      pipelines scale real data to; None for unbounded outputs.
    convolutional: whether the nets use convolutions (on CPU, fused steps are
      then inlined rather than scanned; see ``train.fusion``).
    g_output_bias: the path inside G's params of the bias added just before G's
      output nonlinearity (e.g. ('Dense_2', 'bias')), which
      ``config.model.g_output_bias='marginals'`` sets (``jaxgan.core.output_bias``);
      None for generators without one.
    g_output_bias_per_channel: whether that bias has one value per image channel
      ([C], convolutional outputs) rather than one per output element ([H*W*C]).
  """

  generator: nn.Module
  discriminator: nn.Module
  output_range: tuple[float, float] | None = None
  convolutional: bool = False
  g_output_bias: tuple[str, ...] | None = None
  g_output_bias_per_channel: bool = False


MODELS: Registry[Callable[..., Nets]] = Registry("model")
# Keys of config.model that are not builder hyperparameters: they apply to every model.
#   d_spectral_norm, g_spectral_norm, spectral_norm_order: spectral normalisation of all D
#     (G) weights, and the power iteration's order (jaxgan.models.spectral_norm)
#   d_pack: PacGAN's m, examples D judges together (Lin et al. 2018)
#   g_output_bias: zeros | marginals (jaxgan.core.output_bias)
GENERAL_MODEL_KEYS = (
  "name",
  "conditional",
  "d_spectral_norm",
  "g_spectral_norm",
  "spectral_norm_order",
  "d_pack",
  "g_output_bias",
)


def _check_layers(hidden: Sequence[int], activations: Sequence[str], what: str) -> None:
  if len(hidden) != len(activations):
    raise ValueError(
      f"config.model.{what}_hidden has {len(hidden)} layers but {what}_activations has "
      f"{len(activations)}; give one activation per hidden layer."
    )


@MODELS.register("mlp")
def mlp(
  data: DataSpec,
  num_classes: int,
  bn_axis_name: str | None,
  *,
  g_hidden: Sequence[int] = (64, 64),
  g_activations: Sequence[str] = ("relu", "relu"),
  g_output: str = "linear",
  pointwise_g: bool = False,
  d_hidden: Sequence[int] = (64, 64),
  d_activations: Sequence[str] = ("relu", "relu"),
  d_decorate: bool = False,
  d_dropout: float = 0.0,
) -> Nets:
  """Fully connected G and D for toy data (the 1-D Gaussian, 2-D mixtures)."""
  del bn_axis_name  # no batch norm
  _check_layers(g_hidden, g_activations, "g")
  _check_layers(d_hidden, d_activations, "d")
  g = MLPGenerator(
    out_shape=tuple(data.shape),
    hidden=tuple(g_hidden),
    activations=tuple(g_activations),
    output_activation=g_output,
    pointwise=pointwise_g,
    num_classes=num_classes,
  )
  d = MLPDiscriminator(
    hidden=tuple(d_hidden),
    activations=tuple(d_activations),
    decorate=d_decorate,
    dropout=d_dropout,
    num_classes=num_classes,
  )
  out_range = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}.get(g_output)
  has_bias = out_range is not None and not pointwise_g  # pointwise: one scalar bias for every value
  return Nets(
    g, d, out_range, g_output_bias=(f"Dense_{len(g_hidden)}", "bias") if has_bias else None
  )


@MODELS.register("mnist_mlp")
def mnist_mlp(
  data: DataSpec,
  num_classes: int,
  bn_axis_name: str | None,
  *,
  g_hidden: Sequence[int] = (1200, 1200),
  g_irange: float = 0.05,
  d_units: Sequence[int] = (240, 240),
  d_pieces: int = 5,
  d_input_dropout: float = 0.2,
  d_hidden_dropout: float = 0.5,
  d_irange: float = 0.005,
) -> Nets:
  """The MNIST nets of Goodfellow et al. (2014): ReLU/sigmoid G, maxout D with dropout."""
  del bn_axis_name  # no batch norm
  g = PaperMLPGenerator(
    out_shape=tuple(data.shape), hidden=tuple(g_hidden), irange=g_irange, num_classes=num_classes
  )
  d = PaperMaxoutDiscriminator(
    units=tuple(d_units),
    pieces=d_pieces,
    input_dropout=d_input_dropout,
    hidden_dropout=d_hidden_dropout,
    irange=d_irange,
    num_classes=num_classes,
  )
  return Nets(g, d, (0.0, 1.0), g_output_bias=(f"Dense_{len(g_hidden)}", "bias"))


@MODELS.register("dcgan")
def dcgan(
  data: DataSpec,
  num_classes: int,
  bn_axis_name: str | None,
  *,
  base: int = 7,
  g_channels: Sequence[int] = (256, 128, 64),
  g_strides: Sequence[int] = (1, 2, 2),
  kernel: int = 5,
  g_activation: str = "relu",
  g_batch_norm: bool = True,
  d_channels: Sequence[int] = (64, 128),
  d_activation: str = "leaky_relu",
  d_batch_norm: bool = True,
  d_dropout: float = 0.0,
  conv_transpose: str = "auto",
  conv: str = "auto",
) -> Nets:
  """DCGAN (Radford et al. 2015). Defaults fit 28x28; see experiments/ for 32 and 64."""
  if len(data.shape) != 3:
    raise ValueError(f"dcgan needs image data (H, W, C); {data.name!r} has shape {data.shape}.")
  if len(g_strides) != len(g_channels):
    raise ValueError(
      f"config.model.g_strides needs one stride per transposed conv: "
      f"{len(g_channels)} for g_channels={tuple(g_channels)}, got {tuple(g_strides)}."
    )
  size = base * int(np.prod(g_strides))
  if (size, size) != tuple(data.shape[:2]):
    raise ValueError(
      f"dcgan generator makes {size}x{size} images (base {base} x strides "
      f"{tuple(g_strides)}) but {data.name!r} images are "
      f"{data.shape[0]}x{data.shape[1]}; adjust config.model.base/g_strides."
    )
  resolve_impl(conv_transpose)
  resolve_conv_impl(conv)
  g = DCGANGenerator(
    out_shape=tuple(data.shape),
    base=base,
    channels=tuple(g_channels),
    strides=tuple(g_strides),
    kernel=kernel,
    activation=g_activation,
    batch_norm=g_batch_norm,
    num_classes=num_classes,
    bn_axis_name=bn_axis_name,
    conv_impl=conv_transpose,
  )
  d = DCGANDiscriminator(
    channels=tuple(d_channels),
    kernel=kernel,
    activation=d_activation,
    batch_norm=d_batch_norm,
    dropout=d_dropout,
    num_classes=num_classes,
    bn_axis_name=bn_axis_name,
    conv_impl=conv,
  )
  return Nets(
    g,
    d,
    (-1.0, 1.0),
    convolutional=True,
    g_output_bias=(f"ConvTranspose_{len(g_channels) - 1}", "bias"),
    g_output_bias_per_channel=True,
  )


from jaxgan.models.stylegan2 import stylegan2 as _stylegan2  # noqa: E402  (it imports Nets)

MODELS.register("stylegan2")(_stylegan2)

from jaxgan.models.sngan import sngan_resnet as _sngan_resnet  # noqa: E402  (it imports Nets)

MODELS.register("sngan_resnet")(_sngan_resnet)

from jaxgan.models.biggan import biggan as _biggan  # noqa: E402  (it imports Nets)

MODELS.register("biggan")(_biggan)

from jaxgan.models.r3gan import r3gan as _r3gan  # noqa: E402  (it imports Nets)

MODELS.register("r3gan")(_r3gan)
