import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import experiment
from jaxgan.core.gan import build_gan, init_state
from jaxgan.data import build_dataset


def num_params(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def build(name):
  c = experiment(name)
  c.parallel = "none"
  return c, build_gan(c, build_dataset(c.data).spec)


def test_textbook_nets_shapes_and_parameter_counts():
  _c, gan = build("gaussian_1d.py:textbook")
  state = init_state(gan, jax.random.PRNGKey(0))
  # G is a scalar MLP applied pointwise: 1 -> 50 -> 50 -> 1.
  assert num_params(state.g.params) == (1 * 50 + 50) + (50 * 50 + 50) + (50 + 1) == 2701
  # D sees the 100 values and their 100 squared deviations: 200 -> 50 -> 50 -> 1.
  assert num_params(state.d.params) == (200 * 50 + 50) + (50 * 50 + 50) + (50 + 1) == 12651
  z = jax.random.uniform(jax.random.PRNGKey(1), (3, 100))
  x = gan.nets.generator.apply({"params": state.g.params}, z)
  assert x.shape == (3, 100)
  logits = gan.nets.discriminator.apply({"params": state.d.params}, x)
  assert logits.shape == (3,)


def test_pointwise_generator_maps_each_value_independently():
  _, gan = build("gaussian_1d.py:textbook")
  state = init_state(gan, jax.random.PRNGKey(0))
  z = jax.random.uniform(jax.random.PRNGKey(1), (2, 100))
  x = gan.nets.generator.apply({"params": state.g.params}, z)
  # The same noise value gives the same output wherever it appears.
  z2 = z.at[1, 7].set(z[0, 3])
  x2 = gan.nets.generator.apply({"params": state.g.params}, z2)
  np.testing.assert_allclose(x2[1, 7], x[0, 3], rtol=1e-6)
  np.testing.assert_array_equal(np.delete(np.asarray(x2[1]), 7), np.delete(np.asarray(x[1]), 7))


def test_decorated_discriminator_sees_the_spread():
  _, gan = build("gaussian_1d.py:textbook")
  state = init_state(gan, jax.random.PRNGKey(0))
  D = lambda x: gan.nets.discriminator.apply({"params": state.d.params}, x)
  base = jnp.full((1, 100), 4.0)
  spread = base + jnp.linspace(-1, 1, 100)[None]
  assert not np.allclose(D(base), D(spread))


def test_scalar_nets_shapes():
  c, gan = build("gaussian_1d.py")
  state = init_state(gan, jax.random.PRNGKey(0))
  z = jnp.zeros((5, c.noise.dim))
  assert gan.nets.generator.apply({"params": state.g.params}, z).shape == (5, 1)
  assert gan.nets.discriminator.apply({"params": state.d.params}, jnp.zeros((5, 1))).shape == (5,)
  hidden = c.model.g_hidden
  assert (
    num_params(state.g.params)
    == (1 * hidden[0] + hidden[0]) + (hidden[0] * hidden[1] + hidden[1]) + hidden[1] + 1
  )


def test_layer_and_activation_counts_must_match():
  c = experiment("gaussian_1d.py")
  c.model.g_activations = ("relu",)
  with pytest.raises(ValueError, match="g_hidden has 2 layers but g_activations has 1"):
    build_gan(c, build_dataset(c.data).spec)
