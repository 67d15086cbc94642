import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgan.core import optim


def run_updates(cfg, n, grad=1.0):
  tx = optim.build_optimizer(cfg)
  params = {"w": jnp.zeros(3)}
  state = tx.init(params)
  for _ in range(n):
    updates, state = tx.update({"w": jnp.full(3, grad)}, state, params)
    params = optax.apply_updates(params, updates)
  return params, state


def hyper(state):
  return state.hyperparams if hasattr(state, "hyperparams") else state[-1].hyperparams


def test_sgd_momentum_ramps_linearly_like_the_paper():
  cfg = optim.default_optim_config(
    name="sgd", lr=0.1, momentum=0.5, momentum_end=0.7, momentum_steps=10
  )
  _, state = run_updates(cfg, 5)
  # inject_hyperparams records the value used at the last update (count 4 -> 0.58).
  assert float(hyper(state)["momentum"]) == pytest.approx(0.5 + 0.2 * 4 / 10)
  _, state = run_updates(cfg, 20)
  assert float(hyper(state)["momentum"]) == pytest.approx(0.7)


def test_exponential_decay_with_floor():
  cfg = optim.default_optim_config(
    name="sgd", lr=0.1, schedule="exponential", decay_rate=0.5, decay_steps=1, min_lr=0.02
  )
  schedule = optim.build_schedule(cfg)
  np.testing.assert_allclose(
    [schedule(i) for i in range(5)], [0.1, 0.05, 0.025, 0.02, 0.02], rtol=1e-6
  )


def test_cosine_and_warmup():
  cfg = optim.default_optim_config(
    lr=1.0, schedule="cosine", decay_steps=10, min_lr=0.1, warmup_steps=4
  )
  s = optim.build_schedule(cfg)
  assert float(s(0)) == 0.0 and float(s(2)) == pytest.approx(0.5)
  assert float(s(4)) == pytest.approx(1.0)
  assert float(s(4 + 10)) == pytest.approx(0.1)


def test_gradient_clipping_bounds_the_update():
  cfg = optim.default_optim_config(name="sgd", lr=1.0, momentum=0.0, clip_norm=1.0)
  params, _ = run_updates(cfg, 1, grad=10.0)
  assert float(jnp.linalg.norm(params["w"])) == pytest.approx(1.0, rel=1e-5)


def test_adam_hyperparameters_reach_optax():
  cfg = optim.default_optim_config(name="adam", lr=2e-4, b1=0.5, b2=0.999)
  _, state = run_updates(cfg, 1)
  h = hyper(state)
  assert float(h["learning_rate"]) == pytest.approx(2e-4)
  assert float(h["b1"]) == pytest.approx(0.5)


def test_max_column_norm_projects_each_unit_onto_the_ball():
  cfg = optim.default_optim_config(name="sgd", lr=1.0, momentum=0.0, max_col_norm=1.5)
  tx = optim.build_optimizer(cfg)
  params = {"kernel": jnp.zeros((4, 3)), "bias": jnp.zeros(3)}
  grads = {"kernel": -jnp.array([[1.0, 0.1, 3.0]] * 4), "bias": -jnp.full(3, 5.0)}
  updates, _ = tx.update(grads, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  norms = np.linalg.norm(np.asarray(new["kernel"]), axis=0)
  np.testing.assert_allclose(norms, [1.5, 0.2, 1.5], rtol=1e-6)  # only long columns shrink
  np.testing.assert_allclose(new["bias"], 5.0)  # biases are not constrained


def test_weight_clip_keeps_every_parameter_in_range():
  cfg = optim.default_optim_config(name="sgd", lr=1.0, weight_clip=0.01)
  params, _ = run_updates(cfg, 3, grad=-5.0)  # SGD alone would go to +15
  np.testing.assert_allclose(params["w"], 0.01)
  params, _ = run_updates(cfg, 3, grad=5.0)
  np.testing.assert_allclose(params["w"], -0.01)


def test_learning_rate_is_read_from_the_optimizer_state():
  cfg = optim.default_optim_config(
    name="adam", lr=1.0, schedule="linear", min_lr=0.0, decay_steps=10, clip_norm=1.0
  )
  _, state = run_updates(cfg, 4)
  assert float(optim.learning_rate(state)) == pytest.approx(1.0 - 3 / 10)  # the 4th update's


def test_scheduled_lr_and_beta2_follow_their_schedules():
  plain = optim.default_optim_config(lr=1e-3, b1=0.0, b2=0.9)
  scheduled = optim.default_optim_config(
    lr="cosine(1e-3,1e-4,steps=4)", b1=0.0, b2="linear(0.9,0.99,steps=4)"
  )
  _, a = run_updates(plain, 3)
  _, b = run_updates(scheduled, 3)
  # the same float32 hyperparameters; a schedule adds its own count (inject_hyperparams'
  # hyperparams_states), so the state is a different pytree from a constant's
  assert {k: v.dtype for k, v in hyper(a).items()} == {k: v.dtype for k, v in hyper(b).items()}
  # inject_hyperparams holds the values of the latest update (count 2 of 4)
  assert float(hyper(b)["b2"]) == pytest.approx(0.945, rel=1e-6)
  assert float(hyper(b)["learning_rate"]) == pytest.approx(1e-4 + 9e-4 * 0.5, rel=1e-6)
  assert optim.varying(scheduled) == ("lr", "b2") and optim.varying(plain) == ()


def test_lazy_correction_applies_to_scheduled_values():
  cfg = optim.default_optim_config(lr="linear(1,0.5,steps=2)", b1=0.5, b2="constant(0.81)")
  out = optim.lazy_corrected(cfg, 3)  # mb_ratio 3/4
  lr = optim.build_schedule(optim.lazy_corrected(cfg, 3))
  assert [float(lr(n)) for n in (0, 2)] == pytest.approx([0.75, 0.375])
  assert out.b1 == pytest.approx(0.5**0.75)
  assert float(out.b2(jnp.int32(0))) == pytest.approx(0.81**0.75, rel=1e-6)
