"""The pure, compiled training step: Algorithm 1 of Goodfellow et al. (2014).

One *step* = ``d_steps`` (k) discriminator updates, each on its own real
minibatch and fresh noise, then ``g_steps`` generator updates with fresh noise.
Each update minimises its player's objective, a sum of terms that see D
(``jaxgan.objectives``); every random number comes from a named stream of the
step's key (``jaxgan.streams``).
``make_train_step`` returns ``train_step(state, batch) -> (state, metrics)``
for one device; with an ``axis_name`` it averages gradients, batch-norm
running statistics and metrics over that axis (``lax.pmean``), so the same
function runs under ``jit``, ``pmap`` or ``shard_map``. ``make_fused_step``
fuses ``steps_per_call`` steps into one call (``lax.scan``, or inlined) so small
models are not bound by Python dispatch.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxgan import objectives, optim, streams
from jaxgan.collectives import pmean, shard_of_global
from jaxgan.gan import GAN, apply_net, d_augment, d_forward, d_weights
from jaxgan.state import GANState

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
TrainStep = Callable[[GANState, Batch], tuple[GANState, Metrics]]
NEVER = jnp.iinfo(jnp.int32).max
WATCHED = ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm")  # what divergence is judged on


def step_stream_names(gan: GAN, d_steps: int, g_steps: int) -> list[str]:
  """Every named random stream of one training step (see ``jaxgan.streams``).

  ``d{i}/...`` feed the i-th D update, ``g{j}/...`` the j-th G update: noise,
  fake labels, the real and fake passes (each sub-derives its dropout and
  augmentation keys) and one stream per objective term.
  """
  names = []
  for i in range(d_steps):
    names += [f"d{i}/noise", f"d{i}/labels", f"d{i}/real", f"d{i}/fake"]
    names += [f"d{i}/term/{t.name}" for t in gan.d_terms]
  for j in range(g_steps):
    names += [f"g{j}/noise", f"g{j}/labels", f"g{j}/real", f"g{j}/fake"]
    names += [f"g{j}/term/{t.name}" for t in gan.g_terms]
  return names


def make_train_step(gan: GAN, *, g_steps: int = 1, axis_name: str | None = None) -> TrainStep:
  """Builds the per-device step. ``batch['x']`` is [k, B_local, ...]: one minibatch per D update."""
  G = gan.nets.generator

  def noise_and_labels(keys, prefix: str, local_n: int):
    z = shard_of_global(gan.noise.sample, keys[f"{prefix}/noise"], local_n, axis_name)
    y = (shard_of_global(gan.sample_labels, keys[f"{prefix}/labels"], local_n, axis_name)
         if gan.conditional else None)
    return z, y

  def d_call(params, cols):
    """D for objective terms: augmentation and dropout from the given key; no stat updates."""
    def d(x, y, key):
      x = d_augment(gan, x, streams.sub(key, "augment"), axis_name)
      return d_forward(gan, params, cols, x, y, train=True, dropout_key=streams.sub(key, "dropout"),
                       axis_name=axis_name)[0]
    return d

  def term_keys(keys, prefix, terms):
    return {t.name: keys[f"{prefix}/term/{t.name}"] for t in terms}

  def d_update(carry, real, keys, prefix, update, step, g_params, g_collections):
    d_params, d_collections, d_opt_state, term_states = carry
    local_n = real["x"].shape[0]
    z, y_fake = noise_and_labels(keys, prefix, local_n)
    fake, _ = apply_net(G, g_params, g_collections, z, y_fake, train=True)
    fake = lax.stop_gradient(fake)
    y_real = real.get("y")
    k_real, k_fake = keys[f"{prefix}/real"], keys[f"{prefix}/fake"]

    def loss_fn(params):
      params, cols = d_weights(gan, params, d_collections, update=True)
      x_real = d_augment(gan, real["x"], streams.sub(k_real, "augment"), axis_name)
      x_fake = d_augment(gan, fake, streams.sub(k_fake, "augment"), axis_name)
      if gan.joint_d_pass:  # one call; D treats examples independently (see choose_joint_d_pass)
        y = None if y_fake is None else jnp.concatenate([y_real, y_fake])
        out, cols = d_forward(gan, params, cols, jnp.concatenate([x_real, x_fake]), y, train=True,
                              dropout_key=streams.sub(k_real, "dropout"), axis_name=axis_name)
        real_out, fake_out = out[:local_n], out[local_n:]
      else:  # D mixes examples (batch norm keeps real and fake statistics apart; packs), or conv on CPU
        real_out, cols = d_forward(gan, params, cols, x_real, y_real, train=True,
                                   dropout_key=streams.sub(k_real, "dropout"), axis_name=axis_name)
        fake_out, cols = d_forward(gan, params, cols, x_fake, y_fake, train=True,
                                   dropout_key=streams.sub(k_fake, "dropout"), axis_name=axis_name)
      ctx = objectives.TermContext(
          d=d_call(params, d_collections),
          real_x=real["x"], real_y=y_real, fake_x=fake, fake_y=y_fake,
          real_out=real_out, fake_out=fake_out, key=k_real, step=step, update=update,
          axis_name=axis_name, group=gan.d_pack)
      loss, metrics, new_states = objectives.evaluate(
          gan.d_terms, ctx, term_keys(keys, prefix, gan.d_terms), term_states, "d_loss")
      metrics["d_real"] = jnp.mean(gan.d_loss.read(real_out))
      metrics["d_fake"] = jnp.mean(gan.d_loss.read(fake_out))
      return loss, (cols, metrics, new_states)

    (_, (cols, metrics, new_states)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d_params)
    grads = pmean(grads, axis_name)
    updates, d_opt_state = gan.d_tx.update(grads, d_opt_state, d_params)
    d_params = optax.apply_updates(d_params, updates)
    metrics["d_grad_norm"] = optax.tree.norm(grads)
    metrics["d_update_norm"] = optax.tree.norm(updates)
    metrics["d_param_norm"] = optax.tree.norm(d_params)
    metrics["lr/d"] = optim.learning_rate(d_opt_state)
    return (d_params, pmean(cols, axis_name), d_opt_state, {**term_states, **new_states}), metrics

  def g_update(carry, keys, prefix, update, step, d_params, d_collections, real):
    g_params, g_collections, g_opt_state, term_states = carry
    local_n = real["x"].shape[0]
    z, y_fake = noise_and_labels(keys, prefix, local_n)
    d_params, d_cols = d_weights(gan, d_params, d_collections, update=False)
    d = d_call(d_params, d_cols)

    def loss_fn(params):
      fake, cols = apply_net(G, params, g_collections, z, y_fake, train=True)
      fake_out = d(fake, y_fake, keys[f"{prefix}/fake"])
      real_out = (d(real["x"], real.get("y"), keys[f"{prefix}/real"])
                  if gan.g_loss.needs_real else None)
      ctx = objectives.TermContext(
          d=d, real_x=real["x"], real_y=real.get("y"), fake_x=fake, fake_y=y_fake,
          real_out=real_out, fake_out=fake_out, key=keys[f"{prefix}/fake"], step=step,
          update=update, axis_name=axis_name, group=gan.d_pack)
      loss, metrics, new_states = objectives.evaluate(
          gan.g_terms, ctx, term_keys(keys, prefix, gan.g_terms), term_states, "g_loss")
      metrics["g_d_fake"] = jnp.mean(gan.d_loss.read(fake_out))
      return loss, (cols, metrics, new_states)

    (_, (cols, metrics, new_states)), grads = jax.value_and_grad(loss_fn, has_aux=True)(g_params)
    grads = pmean(grads, axis_name)
    updates, g_opt_state = gan.g_tx.update(grads, g_opt_state, g_params)
    g_params = optax.apply_updates(g_params, updates)
    metrics["g_grad_norm"] = optax.tree.norm(grads)
    metrics["g_update_norm"] = optax.tree.norm(updates)
    metrics["g_param_norm"] = optax.tree.norm(g_params)
    metrics["lr/g"] = optim.learning_rate(g_opt_state)
    return (g_params, pmean(cols, axis_name), g_opt_state, {**term_states, **new_states}), metrics

  def train_step(state: GANState, batch: Batch) -> tuple[GANState, Metrics]:
    d_steps = batch["x"].shape[0]
    keys = streams.derive(streams.step_key(state.rng, state.step),
                          step_stream_names(gan, d_steps, g_steps))
    # Python loops, not lax.scan: k and g_steps are small, and XLA:CPU runs
    # convolutions inside loop bodies far slower (jax-ml/jax#12868; BUILD_NOTES.md).
    d_carry = (state.d_params, state.d_collections, state.d_opt_state, state.objective_state["d"])
    d_metrics = []
    for i in range(d_steps):
      real = jax.tree.map(lambda a: a[i], batch)
      d_carry, m = d_update(d_carry, real, keys, f"d{i}", state.step * d_steps + i, state.step,
                            state.g_params, state.g_collections)
      d_metrics.append(m)
    d_params, d_collections, d_opt_state, d_term_states = d_carry
    g_carry = (state.g_params, state.g_collections, state.g_opt_state, state.objective_state["g"])
    g_metrics = []
    last_real = jax.tree.map(lambda a: a[d_steps - 1], batch)  # for losses that compare with real data
    for j in range(g_steps):
      g_carry, m = g_update(g_carry, keys, f"g{j}", state.step * g_steps + j, state.step,
                            d_params, d_collections, last_real)
      g_metrics.append(m)
    g_params, g_collections, g_opt_state, g_term_states = g_carry
    ema = state.g_ema_params
    if ema is not None:
      ema = gan.ema.update(ema, g_params, state.step)
    new_state = state.replace(
        step=state.step + 1, g_params=g_params, d_params=d_params,
        g_collections=g_collections, d_collections=d_collections,
        g_opt_state=g_opt_state, d_opt_state=d_opt_state, g_ema_params=ema,
        objective_state={"d": d_term_states, "g": g_term_states})
    metrics = {k: jnp.mean(jnp.stack([m[k] for m in ms]))
               for ms in (d_metrics, g_metrics) if ms for k in ms[0]}
    return new_state, pmean(metrics, axis_name)

  return train_step


def unroll_fused_steps(fusion: str, nets: Any) -> bool:
  """``train.fusion`` -> whether ``make_fused_step`` inlines its steps.

  ``auto`` inlines conv nets on CPU, where XLA runs convolutions in loop bodies
  slowly (jax-ml/jax#12868), and scans everything else.
  """
  if fusion == "auto":
    return nets.convolutional and jax.default_backend() == "cpu"
  return fusion == "unroll"


def make_fused_step(train_step: TrainStep,
                    materialize: Callable[[Any, Any, str | None], Batch],
                    axis_name: str | None = None,
                    unroll: bool = False,
                    divergence_bound: float = float("inf")) -> Callable[..., tuple[GANState, Metrics]]:
  """Runs ``train_step`` over the leading axis of ``inputs`` (``steps_per_call`` steps).

  ``unroll=False`` uses ``lax.scan`` (compile once, any length: best for small
  MLPs); ``unroll=True`` inlines the steps (needed for conv nets on CPU, where
  XLA runs convolutions in loop bodies slowly). Returns metrics averaged over
  the fused steps, plus ``first_bad_step``: the first step whose losses or
  gradient norms (``WATCHED``) were NaN/inf or beyond ``divergence_bound`` in
  absolute value (int32 max if none), and ``bad_values``, those quantities at
  that step, so the host can stop a diverging run without syncing every step.
  """

  def fused(state: GANState, inputs: Any, device_data: Any) -> tuple[GANState, Metrics]:
    def body(state, step_inputs):
      state, metrics = train_step(state, materialize(step_inputs, device_data, axis_name))
      watched = {k: metrics[k] for k in WATCHED if k in metrics}
      values = jnp.stack(list(watched.values()))
      ok = jnp.all(jnp.isfinite(values) & (jnp.abs(values) <= divergence_bound))
      return state, (metrics, jnp.where(ok, NEVER, state.step))

    if unroll:
      outs = []
      for i in range(jax.tree.leaves(inputs)[0].shape[0]):
        state, out = body(state, jax.tree.map(lambda a: a[i], inputs))
        outs.append(out)
      metrics, bad_steps = jax.tree.map(lambda *xs: jnp.stack(xs), *outs)
    else:
      state, (metrics, bad_steps) = lax.scan(body, state, inputs)
    first = jnp.argmin(bad_steps)  # the per-step metrics are already stacked: index them
    bad_values = {k: metrics[k][first] for k in WATCHED if k in metrics}
    metrics = jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)
    metrics["first_bad_step"] = bad_steps[first]
    metrics["bad_values"] = bad_values
    return state, metrics

  return fused
