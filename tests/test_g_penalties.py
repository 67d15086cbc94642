"""G's regularizers: path length and orthogonality against hand formulas, the registry's
contract, lazy state, the one-line refusals, per-player metric names and sweeps."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_gaussian_config
from jaxgan import config as config_lib
from jaxgan.core import objectives, penalties, population, streams
from jaxgan.core.objectives import TermContext
from jaxgan.errors import ConfigError
from jaxgan.experiment import build_experiment

# Every registered G penalty and the test below that checks it against a formula.
CHECKED = {"pl": "test_path_length_is_the_released_formula", "ortho": "test_ortho_is_biggans_term"}
# ... or in another module.
CHECKED_ELSEWHERE = {
  "zcr": "test_consistency.py::test_zcr_generator_term_repels_with_gradient_through_both_images"
}


def g_fn(name):
  return penalties.G_PENALTIES.get(name).fn


def test_every_g_penalty_is_checked_against_a_formula():
  own = [n for n in penalties.G_PENALTIES.names() if g_fn(n).__module__ == penalties.__name__]
  assert sorted({**CHECKED, **CHECKED_ELSEWHERE}) == own  # other modules test their own
  for test in CHECKED.values():
    assert test in globals()


class MappedG(nn.Module):
  """A toy G with a mapping network (z -> 2 ws of width 3) and a synthesis network."""

  @nn.compact
  def __call__(self, z, y=None, *, train=False):
    return self.synthesis(self.mapping(z, y, train=train), train=train)

  @nn.compact
  def mapping(self, z, y=None, *, train=False):
    w = jnp.tanh(nn.Dense(3, name="map")(z))
    return jnp.stack([w, 2.0 * w], axis=1)  # [n, num_ws=2, w_dim=3]

  @nn.compact
  def synthesis(self, ws, *, train=False):
    h = nn.Dense(8, name="syn")(ws.reshape(ws.shape[0], -1))
    return jnp.sin(h).reshape(-1, 2, 2, 2)


def _g_context(module, params, z, key, state):
  def g(*args, key, method=None, **kwargs):
    fn = getattr(module, method) if method else None
    return module.apply({"params": params}, *args, method=fn, **kwargs)

  dummy = jnp.zeros((z.shape[0],))
  return TermContext(
    d=None, real_x=dummy, real_y=None, fake_x=dummy, fake_y=None, real_out=None,
    fake_out=dummy, step=jnp.int32(0), update=jnp.int32(0), g=g, params=params, z=z, key=key,
    state=state,
  )  # fmt: skip


def test_path_length_is_the_released_formula():
  module = MappedG()
  z = jax.random.normal(jax.random.PRNGKey(0), (6, 4))
  params = module.init(jax.random.PRNGKey(1), z)["params"]
  key, state = jax.random.PRNGKey(2), {"mean": jnp.float32(0.7)}
  loss, metrics, new_state = penalties.G_PENALTIES.get("pl").fn(
    _g_context(module, params, z, key, state)
  )
  # By hand: the first half of z, the direction y ~ N(0, I)/sqrt(H W), |J_w^T y| per example.
  ws = module.apply({"params": params}, z[:3], method=module.mapping)
  direction = jax.random.normal(streams.sub(key, "direction"), (3, 2, 2, 2)) / 2.0
  _, pullback = jax.vjp(lambda w: module.apply({"params": params}, w, method=module.synthesis), ws)
  (jt_y,) = pullback(direction)
  lengths = np.sqrt(np.mean(np.sum(np.square(np.asarray(jt_y, np.float64)), axis=2), axis=1))
  mean = 0.7 + (lengths.mean() - 0.7) * 0.01  # the running mean moves first
  np.testing.assert_allclose(float(loss), np.mean((lengths - mean) ** 2), rtol=1e-5)
  np.testing.assert_allclose(float(new_state["mean"]), mean, rtol=1e-6)
  np.testing.assert_allclose(float(metrics["length"]), lengths.mean(), rtol=1e-5)
  # The regularizer trains G: its gradient reaches both networks' weights.
  grads = jax.grad(
    lambda p: penalties.G_PENALTIES.get("pl").fn(_g_context(module, p, z, key, state))[0]
  )(params)
  assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads))


def test_a_lazy_path_length_keeps_its_mean_between_its_updates():
  module = MappedG()
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 4))
  params = module.init(jax.random.PRNGKey(1), z)["params"]
  term = objectives.build_terms(
    lambda ctx: (jnp.float32(0), {}), "pl:2@4", penalties.G_PENALTIES, "x"
  )
  state = {"pl": {"mean": jnp.float32(0.5)}}
  for update in range(5):
    ctx = dataclasses.replace(_g_context(module, params, z, None, None), update=jnp.int32(update))
    keys = {"adv": jax.random.PRNGKey(3), "pl": jax.random.PRNGKey(4)}
    _total, metrics, new = objectives.evaluate(term, ctx, keys, state, "g")
    moved = float(new["pl"]["mean"]) != float(state["pl"]["mean"])
    assert moved == (update % 4 == 0), update
    assert (float(metrics["g_loss/pl"]) != 0.0) == (update % 4 == 0)
    state = new


def test_ortho_is_biggans_term():
  rng = np.random.default_rng(0)
  params = {
    "Dense_0": {"kernel": jnp.asarray(rng.normal(size=(5, 4)), jnp.float32),
                "bias": jnp.ones((4,))},
    "Conv_0": {"kernel": jnp.asarray(rng.normal(size=(3, 3, 2, 4)), jnp.float32)},
    "shared_embed": {"embedding": jnp.asarray(rng.normal(size=(10, 4)), jnp.float32)},
  }  # fmt: skip
  ctx = TermContext(
    d=None, real_x=None, real_y=None, fake_x=None, fake_y=None, real_out=None, fake_out=None,
    step=jnp.int32(0), update=jnp.int32(0), params=params,
  )  # fmt: skip
  fn = penalties.G_PENALTIES.get("ortho").fn
  loss, _ = fn(ctx)
  expected, torch_grads = 0.0, {}
  for name in ("Dense_0", "Conv_0"):
    w = np.asarray(params[name]["kernel"], np.float64)
    m = w.reshape(-1, w.shape[-1]).T  # torch's [out, in * k * k], up to the order of inputs
    off = (m @ m.T) * (1 - np.eye(m.shape[0]))
    expected += 0.5 * np.sum(off**2)
    torch_grads[name] = (2 * off @ m).T.reshape(w.shape)  # what BigGAN-PyTorch adds to W.grad
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
  grads = jax.grad(lambda p: fn(dataclasses.replace(ctx, params=p))[0])(params)
  for name, want in torch_grads.items():
    np.testing.assert_allclose(grads[name]["kernel"], want, rtol=1e-4, atol=1e-4)
  assert float(jnp.abs(grads["shared_embed"]["embedding"]).sum()) == 0.0  # embeddings left out
  assert float(jnp.abs(grads["Dense_0"]["bias"]).sum()) == 0.0


def test_path_length_on_a_generator_without_a_mapping_network_fails_in_one_line():
  config = tiny_gaussian_config()
  config.loss.g_penalties = "pl:2@4"
  with pytest.raises(ConfigError) as e:
    build_experiment(config)
  assert str(e.value) == (
    "config.loss.g_penalties: pl calls G's mapping and synthesis networks apart, and model "
    "'mlp''s generator has no mapping or synthesis; use a generator with a mapping network "
    "(e.g. stylegan2) or drop it."
  )
  config = tiny_gaussian_config()
  config.loss.g_penalties = "ppl:2"
  with pytest.raises(ConfigError, match="unknown generator penalty 'ppl'. Did you mean 'pl'"):
    config_lib.validate(config)


def test_g_terms_train_log_under_gs_name_and_sweep_by_weight():
  config = tiny_gaussian_config(num_seeds=1)
  config.loss.d_penalties = "r1:1"
  config.sweep.loss.g_penalties = ("ortho:0.001", "ortho:0.01")
  exp = build_experiment(config)
  assert population.from_config(exp.config).size == 2
  np.testing.assert_allclose(exp.init_state().hparams["loss"]["g_penalties"]["ortho"], [1e-3, 1e-2])
  _state, metrics = exp.runner(
    exp.runner.place_state(exp.init_state()),
    exp.runner.place_inputs(exp.pipeline.host_inputs(0, 2)),
    None,
  )
  assert {"d_loss/r1", "d/r1/grad_norm", "g_loss/adv", "g_loss/ortho"} <= set(metrics)
  ortho = np.asarray(metrics["g_loss/ortho"])
  np.testing.assert_allclose(ortho[1], 10 * ortho[0], rtol=0.2)  # ten times the weight
