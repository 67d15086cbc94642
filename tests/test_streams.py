"""Random streams by name: a new stream never changes the numbers of the others."""

import jax
import jax.numpy as jnp
import numpy as np

from conftest import tiny_gaussian_config
from jaxgan.core import streams
from jaxgan.core.train_step import make_train_step, step_stream_names
from jaxgan.experiment import build_experiment


def test_stream_ids_are_stable_across_runs_and_machines():
  # CRC-32 of the name: pinned, so that published runs stay reproducible.
  assert streams.stream_id("d0/noise") == 0x549102AD
  assert streams.stream_id("g0/noise") != streams.stream_id("d0/noise")


def test_adding_a_stream_leaves_the_others_bit_identical():
  key = jax.random.PRNGKey(42)
  old = streams.derive(key, ["d0/noise", "d0/real", "g0/noise"])
  new = streams.derive(key, ["d0/term/gp", "d0/noise", "d0/real", "extra", "g0/noise"])
  for name, k in old.items():
    np.testing.assert_array_equal(new[name], k)
    np.testing.assert_array_equal(k, jax.random.fold_in(key, streams.stream_id(name)))


def test_step_key_depends_on_the_step_only():
  base = jax.random.PRNGKey(0)
  a = streams.step_key(base, jnp.int32(5))
  np.testing.assert_array_equal(a, streams.step_key(base, jnp.int32(5)))
  assert not np.array_equal(a, streams.step_key(base, jnp.int32(6)))


def run_steps(config, n=3):
  exp = build_experiment(config)
  state = exp.init_state()
  step = jax.jit(make_train_step(exp.gan, g_steps=config.train.g_steps))
  x = exp.pipeline.host_inputs(0, n)
  fused = jax.jit(lambda s, i: exp.pipeline.materialize(i, None, None))
  for i in range(n):
    state, metrics = step(state, fused(state, jax.tree.map(lambda a: a[i], x)))
  return exp, state, metrics


def test_a_new_penalty_stream_leaves_an_existing_run_unchanged():
  # A penalty at weight 0 adds its own stream (and computes on it) but contributes
  # nothing: every parameter must come out exactly as without it.
  base = tiny_gaussian_config(d_steps=2)
  with_gp = tiny_gaussian_config(d_steps=2)
  with_gp.loss.d_penalties = "gp:0"
  exp_a, a, _ = run_steps(base)
  exp_b, b, metrics = run_steps(with_gp)
  names_a, names_b = step_stream_names(exp_a.gan, 2, 1), step_stream_names(exp_b.gan, 2, 1)
  assert set(names_b) - set(names_a) == {"d0/term/gp", "d1/term/gp"}
  assert float(metrics["d/gp/grad_norm"]) > 0  # the penalty did run
  for x, y in zip(
    jax.tree.leaves((a.g.params, a.d.params)), jax.tree.leaves((b.g.params, b.d.params))
  ):
    np.testing.assert_array_equal(x, y)


def test_the_state_keeps_its_base_key_and_each_step_gets_its_own():
  exp, state, _ = run_steps(tiny_gaussian_config(), n=1)
  np.testing.assert_array_equal(state.rng, exp.init_state().rng)
  keys = [
    streams.derive(streams.step_key(state.rng, jnp.int32(s)), ["d0/noise"])["d0/noise"]
    for s in (0, 1)
  ]
  assert not np.array_equal(keys[0], keys[1])
