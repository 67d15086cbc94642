"""Small building blocks shared by the model families."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.registry import Registry

ACTIVATIONS: Registry[Callable[[jax.Array], jax.Array]] = Registry("activation")
ACTIVATIONS.register("relu")(nn.relu)
ACTIVATIONS.register("sigmoid")(nn.sigmoid)
ACTIVATIONS.register("tanh")(jnp.tanh)
ACTIVATIONS.register("elu")(nn.elu)
ACTIVATIONS.register("gelu")(nn.gelu)
ACTIVATIONS.register("leaky_relu")(lambda x: nn.leaky_relu(x, 0.2))
ACTIVATIONS.register("linear")(lambda x: x)


class LabelProjection(nn.Module):
  """Projection-discriminator term <embed(y), h> (Miyato & Koyama, 2018).

  Adding it to D's logit makes D judge the (image, label) pair, the standard way
  to condition a discriminator without concatenating one-hot planes.
  """

  num_classes: int

  @nn.compact
  def __call__(self, h: jax.Array, y: jax.Array) -> jax.Array:
    embed = nn.Embed(self.num_classes, h.shape[-1], name="embed")(y)
    return jnp.sum(embed * h, axis=-1)
