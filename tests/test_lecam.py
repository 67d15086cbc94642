"""LeCam's presets against numpy simulations of the two google/lecam-gan releases.

Each simulation is written from the release's code (biggan_cifar/train.py, third_party/
utils.py ema_losses, biggan_cifar/losses.py, third_party/train_fns.py; stylegan2/
lecam_loss.py with TF's zero-debiased assign_moving_average), in float64; jaxgan's term
runs through ``configure`` and ``objectives.evaluate``, as in training.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import config as config_lib
from jaxgan.core import objectives, penalties
from jaxgan.errors import ConfigError

RNG = np.random.default_rng(7)
# (training step, D's outputs on real, on fake) per D update: BigGAN-CIFAR's scripts take
# 4 D updates per step (itr), here 2 at step 1,000 to show they share its decay.
BIGGAN_UPDATES = [
  (s, RNG.normal(1, 1, 6), RNG.normal(-1, 1, 6)) for s in (998, 999, 1000, 1000, 1001, 1002)
]
STYLEGAN2_UPDATES = [(s, RNG.normal(1, 1, 6), RNG.normal(-1, 1, 6)) for s in range(5)]


def relu_sq_mean(v):
  return np.mean(np.maximum(v, 0.0) ** 2)


def biggan_release(updates, decay=0.9, start_itr=1000):
  """ema_losses (init 1000, decay 0 while itr < start_itr) updated in loss_hinge_dis, then
  lecam_reg read when itr > start_itr."""
  a_real = a_fake = 1000.0
  out = []
  for itr, real, fake in updates:
    d = 0.0 if itr < start_itr else decay
    a_fake = a_fake * d + np.mean(fake) * (1 - d)
    a_real = a_real * d + np.mean(real) * (1 - d)
    term = relu_sq_mean(real - a_fake) + relu_sq_mean(a_real - fake) if itr > start_itr else 0.0
    out.append((a_real, a_fake, term))
  return out


def stylegan2_release(updates, decay=0.99):
  """lecamreg: variables from 0, assign_moving_average(decay, zero_debias=True) read
  after the update, the term on every update."""
  b_real = b_fake = 0.0
  out = []
  for t, (_, real, fake) in enumerate(updates, start=1):
    b_real -= (b_real - np.mean(real)) * (1 - decay)
    b_fake -= (b_fake - np.mean(fake)) * (1 - decay)
    a_real, a_fake = b_real / (1 - decay**t), b_fake / (1 - decay**t)
    out.append((a_real, a_fake, relu_sq_mean(real - a_fake) + relu_sq_mean(a_real - fake)))
  return out


def jaxgan_run(preset, updates):
  """(a_R, a_F, the term) per update of ``lecam:1`` under ``loss.lecam_preset=preset``."""
  adv = lambda ctx: (jnp.zeros(()), {})
  terms = objectives.build_terms(adv, "lecam:1", penalties.D_PENALTIES, "x")
  terms = penalties.configure(terms, {"lecam_preset": preset}, None, "d", "x")
  states = objectives.init_states(terms)
  keys = {t.name: jax.random.PRNGKey(0) for t in terms}
  out = []
  for step, real, fake in updates:
    real, fake = jnp.asarray(real, jnp.float32), jnp.asarray(fake, jnp.float32)
    ctx = objectives.TermContext(
      d=None, real_x=real, real_y=None, fake_x=fake, fake_y=None, real_out=real,
      fake_out=fake, step=jnp.int32(step), update=jnp.int32(0),
    )  # fmt: skip
    _, metrics, states = objectives.evaluate(terms, ctx, keys, states, "d")
    a = states["lecam"]
    assert float(metrics["d/lecam/anchor_real"]) == float(a["real"])  # used what it keeps
    out.append((float(a["real"]), float(a["fake"]), float(metrics["d_loss/lecam"])))
  return out, states["lecam"]


@pytest.mark.parametrize(
  "preset, updates, release",
  [
    ("biggan", BIGGAN_UPDATES, biggan_release),
    ("stylegan2", STYLEGAN2_UPDATES, stylegan2_release),
    ("studiogan", BIGGAN_UPDATES, lambda u: biggan_release(u, decay=0.99)),
  ],
)
def test_presets_follow_their_release_update_by_update(preset, updates, release):
  got, _ = jaxgan_run(preset, updates)
  np.testing.assert_allclose(np.array(got), np.array(release(updates)), rtol=1e-5, atol=1e-7)


def test_biggan_waits_for_step_1000_and_stylegan2_does_not():
  biggan, _ = jaxgan_run("biggan", BIGGAN_UPDATES)
  assert [t for _, _, t in biggan[:4]] == [0.0] * 4 and biggan[4][2] > 0  # on from 1,001
  # Up to step 999 the averages are the latest batch means; at 1,000 they start to decay.
  np.testing.assert_allclose(
    biggan[1][:2], [BIGGAN_UPDATES[1][1].mean(), BIGGAN_UPDATES[1][2].mean()], rtol=1e-6
  )
  assert biggan[2][0] != pytest.approx(BIGGAN_UPDATES[2][1].mean())
  stylegan2, state = jaxgan_run("stylegan2", STYLEGAN2_UPDATES)
  assert stylegan2[0][2] > 0  # on from the first update, whose debiased average is its mean
  np.testing.assert_allclose(
    stylegan2[0][:2], [STYLEGAN2_UPDATES[0][1].mean(), STYLEGAN2_UPDATES[0][2].mean()], rtol=1e-5
  )
  assert set(state) == {"real", "fake", "real_biased", "fake_biased", "count"}
  assert float(state["count"]) == 5.0


def test_before_step_1000_the_biggan_presets_keep_bit_identical_states():
  # Why short runs (tools/state_digests.py) with lecam keep their digests under the new
  # default: the two schedules differ only in the decay they use from step 1,000.
  new, s_new = jaxgan_run("biggan", BIGGAN_UPDATES[:2])
  old, s_old = jaxgan_run("studiogan", BIGGAN_UPDATES[:2])
  assert new == old and set(s_new) == set(s_old) == {"real", "fake"}
  assert config_lib.base_config().loss.lecam_preset == penalties.LECAM_PRESET == "biggan"


MESSAGE = (
  "config.loss.lecam_preset: unknown LeCam preset 'bigan'. Did you mean 'biggan'? Valid "
  "choices: biggan, studiogan, stylegan2."
)


def test_an_unknown_preset_fails_in_one_line():
  config = config_lib.base_config()
  config.loss.lecam_preset = "bigan"
  with pytest.raises(ConfigError) as e:
    config_lib.validate(config)
  assert str(e.value) == MESSAGE
  terms = objectives.build_terms(lambda c: (0.0, {}), "lecam:1", penalties.D_PENALTIES, "x")
  with pytest.raises(ConfigError) as e:
    penalties.configure(terms, {"lecam_preset": "bigan"}, None, "d", "x")
  assert str(e.value) == MESSAGE
