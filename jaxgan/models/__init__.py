"""Generator/discriminator pairs, chosen by ``config.model.name``.

Each builder takes the dataset's ``DataSpec``, the number of classes to condition
on (0 for unconditional models), the device axis that batch norm averages its
statistics over (None for per-device statistics) and its own keyword
hyperparameters, which are exactly the other keys of ``config.model``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import flax.linen as nn

from jaxgan.data.spec import DataSpec
from jaxgan.models.mlp import MLPDiscriminator, MLPGenerator
from jaxgan.registry import Registry


@dataclasses.dataclass(frozen=True)
class Nets:
  """A generator and a discriminator that fit together.

  Attributes:
    generator: ``G(z, y=None, *, train) -> x`` with x of ``data.shape``.
    discriminator: ``D(x, y=None, *, train) -> logits`` of shape [batch].
    output_range: the range of G's output (e.g. (-1, 1) for tanh), which image
      pipelines scale real data to; None for unbounded outputs.
  """

  generator: nn.Module
  discriminator: nn.Module
  output_range: tuple[float, float] | None = None


MODELS: Registry[Callable[..., Nets]] = Registry("model")
# Keys of config.model that are not builder hyperparameters.
GENERAL_MODEL_KEYS = ("name", "conditional")


def _check_layers(hidden: Sequence[int], activations: Sequence[str], what: str) -> None:
  if len(hidden) != len(activations):
    raise ValueError(
        f"config.model.{what}_hidden has {len(hidden)} layers but {what}_activations has "
        f"{len(activations)}; give one activation per hidden layer.")


@MODELS.register("mlp")
def mlp(data: DataSpec, num_classes: int, bn_axis_name: str | None, *,
        g_hidden: Sequence[int] = (64, 64),
        g_activations: Sequence[str] = ("relu", "relu"),
        g_output: str = "linear",
        pointwise_g: bool = False,
        d_hidden: Sequence[int] = (64, 64),
        d_activations: Sequence[str] = ("relu", "relu"),
        d_decorate: bool = False,
        d_dropout: float = 0.0) -> Nets:
  """Fully connected G and D for toy data (the 1-D Gaussian, 2-D mixtures)."""
  del bn_axis_name  # no batch norm
  _check_layers(g_hidden, g_activations, "g")
  _check_layers(d_hidden, d_activations, "d")
  g = MLPGenerator(out_shape=tuple(data.shape), hidden=tuple(g_hidden),
                   activations=tuple(g_activations), output_activation=g_output,
                   pointwise=pointwise_g, num_classes=num_classes)
  d = MLPDiscriminator(hidden=tuple(d_hidden), activations=tuple(d_activations),
                       decorate=d_decorate, dropout=d_dropout, num_classes=num_classes)
  out_range = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}.get(g_output)
  return Nets(g, d, out_range)
