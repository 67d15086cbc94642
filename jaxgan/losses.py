"""GAN losses written on D's logits, so they stay finite where sigmoid saturates.

With D(x) = sigmoid(l):  log D = -softplus(-l)  and  log(1 - D) = -softplus(l).
All losses are *minimised*: the discriminator minimises its binary cross-entropy
(maximising V(D, G) of Goodfellow et al. 2014, Eq. 1), the generator minimises
either the minimax term log(1 - D(G(z))) or the non-saturating -log D(G(z)).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from jaxgan.registry import Registry

Array = jax.Array

G_LOSSES: Registry[Callable[[Array], Array]] = Registry("generator loss")
D_LOSSES: Registry[Callable[[Array, Array], Array]] = Registry("discriminator loss")


def bce_with_logits(logits: Array, label: float) -> Array:
  """Element-wise binary cross-entropy -[y log s(l) + (1-y) log(1-s(l))]."""
  return label * jax.nn.softplus(-logits) + (1.0 - label) * jax.nn.softplus(logits)


@D_LOSSES.register("bce")
def discriminator_bce(real_logits: Array, fake_logits: Array) -> Array:
  """-E[log D(x)] - E[log(1 - D(G(z)))]: BCE with real labelled 1, fake 0."""
  return jnp.mean(bce_with_logits(real_logits, 1.0)) + jnp.mean(bce_with_logits(fake_logits, 0.0))


@G_LOSSES.register("minimax")
def generator_minimax(fake_logits: Array) -> Array:
  """E[log(1 - D(G(z)))], the term of V that G minimises; saturates when D wins."""
  return -jnp.mean(jax.nn.softplus(fake_logits))


@G_LOSSES.register("non_saturating")
def generator_non_saturating(fake_logits: Array) -> Array:
  """-E[log D(G(z))]: the paper's practical generator loss (strong early gradients)."""
  return jnp.mean(bce_with_logits(fake_logits, 1.0))


@D_LOSSES.register("hinge")
def discriminator_hinge(real_logits: Array, fake_logits: Array) -> Array:
  """E[max(0, 1 - l_real)] + E[max(0, 1 + l_fake)] (geometric GAN / SN-GAN)."""
  return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))


@G_LOSSES.register("hinge")
def generator_hinge(fake_logits: Array) -> Array:
  """-E[l_fake], the generator side of the hinge loss."""
  return -jnp.mean(fake_logits)
