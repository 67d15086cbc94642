"""Sampling-time truncation: psi toward a tracked w_avg, a truncated normal prior, and the
one-line refusals where neither can work."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import experiment, tiny_gaussian_config
from jaxgan.core.gan import build_gan, init_state
from jaxgan.core.sampling import Sampler
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError
from jaxgan.experiment import build_experiment, sample


def _tiny_stylegan2():
  c = experiment("mnist_dcgan.py")
  c.model = dict(
    name="stylegan2", conditional=False, d_spectral_norm=False, g_spectral_norm=False,
    spectral_norm_order="parametrization", d_pack=1, g_output_bias="zeros", z_dim=4, w_dim=4,
    mapping_layers=1, channel_base=32, channel_max=4, use_noise=False,
  )  # fmt: skip
  c.noise.update(dim=4, distribution="normal")
  gan = build_gan(c, DataSpec((8, 8, 1), is_image=True))
  state = init_state(gan, jax.random.PRNGKey(0))
  w_avg = jax.random.normal(jax.random.PRNGKey(1), (4,))  # as if tracked in training
  cols = state.g.collections
  cols = {**cols, "buffers": {**cols["buffers"], "mapping": {"w_avg": w_avg}}}
  return gan, state.replace(g=state.g.replace(collections=cols))


def test_psi_pulls_every_sample_toward_g_of_w_avg():
  gan, state = _tiny_stylegan2()
  key = jax.random.PRNGKey(2)
  at_avg, _ = Sampler(gan, truncation_psi=0.0).sample(state, key, 5, use_ema=False)
  np.testing.assert_allclose(at_avg, np.broadcast_to(at_avg[:1], at_avg.shape), atol=1e-6)
  free, _ = Sampler(gan).sample(state, key, 5, use_ema=False)
  assert float(np.mean(np.std(free, axis=0))) > 1e-3


def test_a_truncated_normal_prior_stays_within_its_threshold():
  c = tiny_gaussian_config()
  c.noise.update(distribution="normal", low=0.0, high=1.0)
  exp = build_experiment(c)
  z = Sampler(exp.gan, truncation_z=0.5).noise(jax.random.PRNGKey(0), 4000)
  assert float(jnp.max(jnp.abs(z))) <= 0.5 and float(jnp.std(z)) < 0.3
  state = exp.init_state()
  cut = sample(c, state, 64, truncation_z=0.5)
  c.eval.truncation_z = 0.5  # the run's own setting, used when none is given
  np.testing.assert_array_equal(sample(c, state, 64), cut)
  assert not np.array_equal(sample(c, state, 64, truncation_z=0.0), cut)


@pytest.mark.parametrize(
  "update, message",
  [
    (
      {"eval.truncation_psi": 0.7},
      "config.eval.truncation_psi=0.7 pulls G's latents toward their tracked average, but "
      "this generator tracks none (no w_avg, e.g. no mapping network); use 1.0, or "
      "truncation_z for a normal prior.",
    ),
    (
      {"eval.truncation_z": 1.0},
      "config.eval.truncation_z=1 truncates a normal prior, but config.noise.distribution is "
      "'uniform'; use 0.",
    ),
  ],
)
def test_truncation_that_cannot_work_fails_in_one_line_before_compiling(update, message):
  c = tiny_gaussian_config()
  c.update_from_flattened_dict(update)
  with pytest.raises(ConfigError) as e:
    build_experiment(c)
  assert str(e.value) == message
