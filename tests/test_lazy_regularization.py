"""Lazy regularization as its own step (``loss.lazy=separate``, StyleGAN2's Dreg/Greg phases),
its optimizer correction, and gradients' nan_to_num."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import tiny_gaussian_config
from jaxgan.config import validate
from jaxgan.core import objectives, optim
from jaxgan.core.gan import d_forward
from jaxgan.core.penalties import D_PENALTIES
from jaxgan.core.train_step import make_train_step
from jaxgan.errors import ConfigError
from jaxgan.experiment import build_experiment

LR, EVERY, GAMMA = 0.05, 2, 3.0


def _sgd(c, lr):
  for opt in (c.optim.d, c.optim.g):
    opt.update(name="sgd", lr=lr, momentum=0.0)
  return c


def _first_step(c, real):
  exp = build_experiment(c)
  state = exp.init_state()
  return exp, *jax.jit(make_train_step(exp.gan))(state, {"x": real[None]})


def test_the_correction_is_stylegan2s_mb_ratio():
  cfg = optim.default_optim_config(lr=0.0025, b1=0.0, b2=0.99)
  fixed = optim.lazy_corrected(cfg, 16)
  assert fixed.lr == pytest.approx(0.0025 * 16 / 17) and fixed.b1 == 0.0
  assert fixed.b2 == pytest.approx(0.99 ** (16 / 17))
  assert optim.lazy_corrected(cfg, 0) is cfg and cfg.lr == 0.0025  # the config is not changed


def test_a_separate_r1_step_follows_ds_main_update_on_the_same_batch():
  """With SGD: D' = D_main - lr' * N * gamma * grad R1(D_main), lr' = lr * N / (N + 1); the
  main update is the unregularized one at lr'."""
  real = jnp.linspace(-2.0, 3.0, 8)[:, None]
  c = _sgd(tiny_gaussian_config(), LR)
  c.loss.update(d_penalties=f"r1:{GAMMA}@{EVERY}", lazy="separate")
  exp, state, metrics = _first_step(c, real)
  plain = _sgd(tiny_gaussian_config(), LR * EVERY / (EVERY + 1))
  _, main, _ = _first_step(plain, real)

  gan = exp.gan
  cols = main.d.collections

  def r1(params):
    d = lambda x, y, key: d_forward(gan, params, cols, x, y, train=True, dropout_key=key)[0]
    ctx = objectives.TermContext(
      d=d, real_x=real, real_y=None, fake_x=real, fake_y=None, real_out=None,
      fake_out=None, step=jnp.zeros((), jnp.int32), update=jnp.zeros((), jnp.int32),
      key=jax.random.PRNGKey(0),
    )  # fmt: skip
    return D_PENALTIES.get("r1").fn(ctx)[0]

  grads = jax.grad(r1)(main.d.params)
  lr = LR * EVERY / (EVERY + 1)
  want = jax.tree.map(lambda p, g: p - lr * EVERY * GAMMA * g, main.d.params, grads)
  for got, w in zip(jax.tree.leaves(state.d.params), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-7)
  assert float(metrics["d_reg_grad_norm"]) > 0 and float(metrics["d_reg_loss"]) > 0
  assert float(metrics["d_loss/r1"]) == pytest.approx(EVERY * GAMMA * float(r1(main.d.params)))


def test_the_step_is_taken_on_every_nth_update_only():
  c = tiny_gaussian_config(steps_per_call=1)
  c.loss.update(d_penalties=f"r1:{GAMMA}@{EVERY}", g_penalties="", lazy="separate")
  exp = build_experiment(c)
  step = jax.jit(make_train_step(exp.gan))
  state = exp.init_state()
  norms = []
  for _ in range(3):
    state, m = step(state, {"x": jnp.ones((1, 8, 1))})
    norms.append(float(m["d_reg_grad_norm"]))
  assert norms[0] > 0 and norms[1] == 0 and norms[2] > 0


def test_the_optimizer_correction_reaches_each_players_learning_rate():
  c = tiny_gaussian_config(steps_per_call=1)
  c.loss.update(d_penalties=f"r1:{GAMMA}@16,r2:0@16", lazy="separate")  # a zero weight, as
  # StyleGAN2's cifar G with path length off, still corrects the optimizer
  exp = build_experiment(c)
  assert exp.gan.reg_interval("d") == 16 and exp.gan.reg_interval("g") == 0
  assert [t.name for t in exp.gan.reg_terms("d")] == ["r1"]  # r2's weight is 0: no step
  _, m = jax.jit(make_train_step(exp.gan))(exp.init_state(), {"x": jnp.ones((1, 8, 1))})
  assert float(m["lr/d"]) == pytest.approx(c.optim.d.lr * 16 / 17)
  assert float(m["lr/g"]) == pytest.approx(c.optim.g.lr)


@pytest.mark.parametrize(
  "loss, train, message",
  [
    (
      dict(d_penalties="r1:1@16"),
      dict(update_order="simultaneous", d_steps=1),
      "config.loss.lazy=separate takes regularization steps between alternating updates; "
      "set config.train.update_order=alternating or config.loss.lazy=folded.",
    ),
    (
      dict(d_penalties="r1:1@16,gp:1@4"),
      {},
      "config.loss.d_penalties: with config.loss.lazy=separate a player's lazy terms share "
      "one interval (one regularization step), got r1@16, gp@4.",
    ),
    (
      dict(d_penalties="lecam:0.1@4"),
      {},
      "config.loss.d_penalties: 'lecam' reads D's outputs of the adversarial pass, which a "
      "separate regularization step does not make; drop its @interval or set "
      "config.loss.lazy=folded.",
    ),
  ],
)
def test_what_a_separate_step_cannot_do_fails_in_one_line(loss, train, message):
  c = tiny_gaussian_config(**train)
  c.loss.update(lazy="separate", **loss)
  with pytest.raises(ConfigError) as e:
    validate(c)
  assert str(e.value) == message


def test_nan_to_num_cleans_gradients_before_the_optimizer():
  cfg = optim.default_optim_config(name="sgd", lr=1.0, nan_to_num=True)
  tx = optim.build_optimizer(cfg)
  params = {"w": jnp.zeros(4)}
  grads = {"w": jnp.array([jnp.nan, jnp.inf, -jnp.inf, 2.0])}
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_array_equal(updates["w"], [0.0, -1e5, 1e5, -2.0])
  plain = optim.build_optimizer(optim.default_optim_config(name="sgd", lr=1.0))
  assert np.isnan(plain.update(grads, plain.init(params), params)[0]["w"][0])
  assert isinstance(tx, optax.GradientTransformation)
