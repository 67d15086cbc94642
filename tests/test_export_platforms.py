"""Every ported family's training step lowers for CUDA and TPU on a CPU-only machine.

``jax.export`` lowers one step of each smoke config (traced from abstract shapes: nothing is
initialised or compiled) for both platforms, so a platform-specific lowering error shows
here, before a GPU or TPU is lent. StyleGAN2-ADA's step is checked in
tests/test_stylegan2_training.py.
"""

import jax
import jax.numpy as jnp
import pytest

from conftest import experiment
from jaxgan.config import validate
from jaxgan.core.gan import build_gan, init_state
from jaxgan.core.train_step import make_train_step
from jaxgan.data.pipeline import real_minibatches
from jaxgan.data.spec import DataSpec

# Each smoke config trains on MNIST padded to 32x32, with its labels.
SPEC = DataSpec((32, 32, 1), num_classes=10, is_image=True, name="mnist")
PLATFORMS = ("cuda", "tpu")


@pytest.mark.parametrize(
  "name", ["sngan.py:smoke", "biggan.py:smoke", "r3gan.py:smoke", "conditioning.py:smoke"]
)
def test_the_smoke_step_lowers_for_gpu_and_tpu(name):
  c = validate(experiment(name))
  c.parallel = "none"
  gan = build_gan(c, SPEC)
  state = jax.eval_shape(lambda: init_state(gan, jax.random.PRNGKey(0)))
  k, b = real_minibatches(c.train.d_steps, c.train.g_real_batch), c.train.batch_size
  batch = {
    "x": jax.ShapeDtypeStruct((k, b, *SPEC.shape), jnp.float32),
    "y": jax.ShapeDtypeStruct((k, b), jnp.int32),
  }
  step = make_train_step(gan, g_real_batch=c.train.g_real_batch)
  exported = jax.export.export(jax.jit(step), platforms=PLATFORMS)(state, batch)
  assert exported.platforms == PLATFORMS
  n = len(jax.tree.leaves(state))  # the new state has the old one's shapes and dtypes
  assert exported.out_avals[:n] == exported.in_avals[:n] and len(exported.out_avals) > n
