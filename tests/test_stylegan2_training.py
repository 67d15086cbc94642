"""StyleGAN2-ADA's training features in jaxgan's step: ADA's adaptive p, style mixing, path
length and R1 as separate steps, the EMA; a checkpoint between steps resumes bit-exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_gaussian_config
from jaxgan.config import base_config, validate
from jaxgan.core import ada
from jaxgan.core.gan import build_gan, init_state
from jaxgan.core.train_step import make_train_step
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError
from jaxgan.run import checkpointing

BATCH, INTERVAL, KIMG = 4, 2, 0.02  # p moves by 4 * 2 / 20 = 0.4 per adjustment
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def tiny_config():
  c = base_config(model="stylegan2", data="mnist")
  c.parallel = "none"
  c.model.update(
    z_dim=4, w_dim=4, mapping_layers=1, channel_base=32, channel_max=4, mbstd_group_size=4,
    style_mixing_prob=0.9,
  )  # fmt: skip
  c.noise.update(dim=4, distribution="normal")
  c.loss.update(
    d="bce", g="non_saturating", d_penalties="r1:0.01@2", g_penalties="pl:2@2",
    lazy="separate", ada="bgc", ada_target=0.6, ada_interval=INTERVAL, ada_kimg=KIMG,
  )  # fmt: skip
  for opt in (c.optim.g, c.optim.d):
    opt.update(name="adam", lr=0.0025, b1=0.0, b2=0.99, eps=1e-8, nan_to_num=True)
  c.train.update(batch_size=BATCH, ema_kimg=0.01, ema_rampup=0.05)
  return validate(c)


@pytest.fixture(scope="module")
def stepper():
  c = tiny_config()
  gan = build_gan(c, DataSpec((8, 8, 1), is_image=True))
  # Compiled without XLA's optimizations: this checks what the step computes, not its speed.
  step = jax.jit(make_train_step(gan), compiler_options=FAST_COMPILE)
  reals = jax.random.uniform(jax.random.PRNGKey(7), (6, 1, BATCH, 8, 8, 1), minval=-1, maxval=1)
  return c, gan, step, reals


@pytest.fixture(scope="module")
def straight(stepper):
  """Four steps from the start: the states and metrics after each."""
  _, gan, step, reals = stepper
  state = init_state(gan, jax.random.PRNGKey(0))
  assert float(state.ada.p) == 0.0
  states, metrics = [], []
  for i in range(4):
    state, m = step(state, {"x": reals[i]})
    states.append(state)
    metrics.append(m)
  return states, metrics


def test_p_adapts_by_the_official_rule_every_interval(straight):
  states, metrics = straight
  signs = [float(m["ada/real_sign"]) for m in metrics]
  ps = [float(s.ada.p) for s in states]
  assert ps == [float(m["ada/p"]) for m in metrics]
  speed = BATCH * INTERVAL / (KIMG * 1000)
  want_1 = max(0.0, np.sign(np.mean(signs[:2]) - 0.6) * speed)
  want_3 = max(0.0, want_1 + np.sign(np.mean(signs[2:]) - 0.6) * speed)
  np.testing.assert_allclose(ps, [0.0, want_1, want_1, want_3], rtol=1e-6, atol=1e-7)
  assert int(states[-1].ada.count) == 0  # the sums restart after each adjustment


def test_g_takes_style_mixing_path_length_and_separate_r1_and_resumes_exactly(
  stepper, straight, tmp_path
):
  c, _, step, reals = stepper
  states, metrics = straight
  reg = [(float(m["d_reg_grad_norm"]) > 0, float(m["g_reg_grad_norm"]) > 0) for m in metrics]
  assert reg == [(True, True), (False, False), (True, True), (False, False)]  # every 2nd update
  assert float(states[-1].g.term_state["pl"]["mean"]) > 0  # pl_mean moved
  assert states[-1].g_ema is not None
  with checkpointing.Checkpointer(str(tmp_path), async_save=False) as ckpt:
    ckpt.save(2, states[1], {}, c.to_dict())
  with checkpointing.Checkpointer(str(tmp_path), read_only=True) as ckpt:
    resumed, _ = ckpt.restore(2, checkpointing.abstract(states[1]))
  # uncommitted, as the in-memory run's arrays: the compiled step is reused, not recompiled
  resumed = jax.tree.map(lambda a: jnp.asarray(jax.device_get(a)), resumed)
  for i in range(2, 4):
    resumed, _ = step(resumed, {"x": reals[i]})
  for a, b in zip(jax.tree.leaves(states[-1]), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_fixed_p_never_moves(stepper):
  c = stepper[0].copy_and_resolve_references()
  c.loss.update(ada_target=0.0, ada_p=0.25)
  spec = build_gan(c, DataSpec((8, 8, 1), is_image=True)).ada
  state = ada.ada_init(spec.p)
  for i in range(8):
    state = spec.step(state, jnp.int32(i), jnp.float32(1.0), 64)
  assert float(state.p) == 0.25 and int(state.count) == 0


def test_ada_on_data_that_are_not_images_fails_in_one_line():
  c = tiny_gaussian_config()
  c.loss.ada = "bgc"
  with pytest.raises(ConfigError) as e:
    build_gan(validate(c), DataSpec((1,), is_image=False, name="gaussian_1d"))
  assert str(e.value) == (
    "config.loss.ada='bgc': ADA's pipeline needs images with 1 or 3 channels; 'gaussian_1d' "
    "has shape (1,). Set config.loss.ada=''."
  )
  c.loss.ada = "bgcx"
  with pytest.raises(ConfigError, match=r"^config.loss.ada='bgcx' is not valid\. Valid choices"):
    validate(c)


def test_the_step_lowers_for_gpu_and_tpu(stepper):
  """jax.export lowers the whole StyleGAN2-ADA step for CUDA and TPU on a CPU-only machine:
  platform-specific lowering errors show here, before a GPU or TPU is lent."""
  _, gan, step, reals = stepper
  state = init_state(gan, jax.random.PRNGKey(0))
  exported = jax.export.export(step, platforms=("cuda", "tpu"))(state, {"x": reals[0]})
  assert exported.platforms == ("cuda", "tpu")
