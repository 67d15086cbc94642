import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import experiment
from jaxgan.core.gan import apply_net, build_gan, choose_joint_d_pass, init_state, split_variables
from jaxgan.data import build_dataset
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError
from jaxgan.models import MODELS, Nets
from jaxgan.models.traits import discriminator_traits, mark_mixes_examples


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


# Every registered model with the data shapes and hyperparameters its traits are probed at
# (small nets: the probe runs them). A model added to the registry must be added here.
TRAIT_CASES = {
  "mlp": [((1,), {}), ((100,), {"d_decorate": True, "d_dropout": 0.5})],
  "mnist_mlp": [((28, 28, 1), {"g_hidden": (8,), "d_units": (8,), "d_pieces": 2})],
  "dcgan": [
    ((28, 28, 1), {"g_channels": (8, 4, 2), "d_channels": (4, 8), "d_batch_norm": bn})
    for bn in (True, False)
  ],
  "biggan": [((32, 32, 1), {"g_conv_dim": 2, "d_conv_dim": 4})],
  "sngan_resnet": [
    ((32, 32, 1), {"g_conv_dim": 1, "d_conv_dim": 1, "d_batch_norm": bn}) for bn in (True, False)
  ],
  "r3gan": [((4, 4, 1), {"widths": (4,), "blocks": (1,), "group_width": 4})],
  "stylegan2": [
    (
      (8, 8, 1),
      {"z_dim": 4, "w_dim": 4, "mapping_layers": 1, "channel_base": 32, "channel_max": 4},
    )
  ],
}


def test_every_registered_model_has_trait_cases():

  assert sorted(TRAIT_CASES) == MODELS.names()


def _mixes_by_probe(d, x_shape) -> bool:
  """Whether D's training-mode output for example 0 moves when only example 1 changes."""
  key = jax.random.PRNGKey(0)
  x = jax.random.uniform(key, (2, *x_shape))
  variables = d.init({"params": key, "dropout": key}, x, train=False)

  def out(x):
    return d.apply(variables, x, train=True, rngs={"dropout": key}, mutable=True)[0]

  return not np.allclose(out(x)[0], out(x.at[1].add(1.0))[0])


@pytest.mark.parametrize(
  "name,shape,kwargs", [(n, s, k) for n, cases in TRAIT_CASES.items() for s, k in cases]
)
def test_discriminator_traits_are_read_off_the_module_and_match_a_probe(name, shape, kwargs):

  nets = MODELS.get(name)(DataSpec(shape, is_image=len(shape) == 3), 0, None, **kwargs)
  traits = discriminator_traits(nets.discriminator, shape, 0)
  assert traits.batch_stats == kwargs.get("d_batch_norm", name == "dcgan")
  assert traits.mixes_examples == _mixes_by_probe(nets.discriminator, shape)


def test_a_layer_that_mixes_examples_says_so_and_joint_passes_are_refused():

  class MinibatchStdD(nn.Module):
    @nn.compact
    def __call__(self, x, y=None, *, train=False):
      mark_mixes_examples(self)
      std = jnp.broadcast_to(jnp.std(x, axis=0).mean(), x.shape[:1] + (1,))
      return nn.Dense(1)(jnp.concatenate([x, std], axis=1))[:, 0]

  traits = discriminator_traits(MinibatchStdD(), (3,), 0)
  assert traits.mixes_examples and not traits.batch_stats
  assert _mixes_by_probe(MinibatchStdD(), (3,))
  mlp = Nets(None, None)
  assert not choose_joint_d_pass("auto", mlp, 1, traits)
  with pytest.raises(ConfigError) as e:
    choose_joint_d_pass("joint", mlp, 1, traits)
  assert str(e.value) == (
    "config.train.d_pass='joint': D mixes the examples of its batch (e.g. minibatch standard "
    "deviation); use 'separate' or 'auto'."
  )


def test_the_mixing_marker_is_not_state():
  """What a mixing layer sows marks the module (traits); it never enters D's collections,
  so a training step leaves their structure as it was."""

  class MinibatchStdBN(nn.Module):
    @nn.compact
    def __call__(self, x, y=None, *, train=False):
      mark_mixes_examples(self)
      h = nn.BatchNorm(use_running_average=not train)(x)
      return nn.Dense(1)(h + jnp.std(x, axis=0))[:, 0]

  d, x = MinibatchStdBN(), jnp.ones((4, 3))
  params, cols = split_variables(d.init(jax.random.PRNGKey(0), x))
  assert set(cols) == {"batch_stats"}
  _, after = apply_net(d, params, cols, x, train=True)
  assert jax.tree.structure(after) == jax.tree.structure(cols)
