"""The pure, compiled training step: Algorithm 1 of Goodfellow et al. (2014).

One *step* = ``d_steps`` (k) discriminator updates, each on its own real
minibatch and fresh noise, then ``g_steps`` generator updates with fresh noise.
Each update minimises its player's objective, a sum of terms that see D
(``jaxgan.core.objectives``); every random number comes from a named stream of the
step's key (``jaxgan.core.streams``).
With ``update_order="simultaneous"`` (the 2014 paper's released code) a step
is instead one D and one G update from ONE forward pass: one noise draw, one
G(z), D's pass on real and fake; D's gradient is that of D's objective, G's
that of G's objective through the same, pre-update D (same fake batch, same
dropout masks); then both optimizers step. It takes k = 1 and one G update
(``jaxgan.config.validate`` refuses k > 1 for it).
``make_train_step`` returns ``train_step(state, batch) -> (state, metrics)``
for one device; with an ``axis_name`` it averages gradients, batch-norm
running statistics and metrics over that axis (``lax.pmean``), so the same
function runs under ``jit``, ``pmap`` or ``shard_map``. ``make_fused_step``
fuses ``steps_per_call`` steps into one call (``lax.scan``, or inlined) so small
models are not bound by Python dispatch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxgan.core import objectives, optim, streams
from jaxgan.core.collectives import pmean, shard_of_global
from jaxgan.core.gan import GAN, apply_net, d_augment, d_forward, d_weights
from jaxgan.core.state import GANState

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
TrainStep = Callable[[GANState, Batch], tuple[GANState, Metrics]]
NEVER = jnp.iinfo(jnp.int32).max
WATCHED = ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm")  # what divergence is judged on


def step_stream_names(gan: GAN, d_steps: int, g_steps: int) -> list[str]:
  """Every named random stream of one training step (see ``jaxgan.core.streams``).

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


UPDATE_ORDERS = ("alternating", "simultaneous")


def make_train_step(
  gan: GAN, *, g_steps: int = 1, axis_name: str | None = None, update_order: str = "alternating"
) -> TrainStep:
  """Builds the per-device step. ``batch['x']`` is [k, B_local, ...]: one minibatch per D update.

  ``update_order``: "alternating" (Algorithm 1: k D updates, then ``g_steps`` G
  updates against the new D) or "simultaneous" (k = g_steps = 1, both players'
  gradients from one forward pass; see the module docstring).
  """
  if update_order not in UPDATE_ORDERS:
    raise ValueError(f"update_order={update_order!r}; choose one of {', '.join(UPDATE_ORDERS)}")
  if update_order == "simultaneous" and g_steps != 1:
    raise ValueError(
      f"update_order='simultaneous' takes one G update per step, got g_steps={g_steps}"
    )
  G = gan.nets.generator

  def noise_and_labels(keys, prefix: str, local_n: int):
    z = shard_of_global(gan.noise.sample, keys[f"{prefix}/noise"], local_n, axis_name)
    y = (
      shard_of_global(gan.sample_labels, keys[f"{prefix}/labels"], local_n, axis_name)
      if gan.conditional
      else None
    )
    return z, y

  def d_call(params, cols):
    """D for objective terms: augmentation and dropout from the given key; no stat updates."""

    def d(x, y, key):
      x = d_augment(gan, x, streams.sub(key, "augment"), axis_name)
      return d_forward(
        gan,
        params,
        cols,
        x,
        y,
        train=True,
        dropout_key=streams.sub(key, "dropout"),
        axis_name=axis_name,
      )[0]

    return d

  def term_keys(keys, prefix, terms):
    return {t.name: keys[f"{prefix}/term/{t.name}"] for t in terms}

  def d_pass(d_params, d_collections, real, fake, y_fake, k_real, k_fake):
    """D's adversarial pass on real and fake: (D's effective weights, real_out, fake_out,
    D's collections as the pass left them)."""
    local_n = real["x"].shape[0]
    y_real = real.get("y")
    params, cols = d_weights(gan, d_params, d_collections, update=True)
    x_real = d_augment(gan, real["x"], streams.sub(k_real, "augment"), axis_name)
    x_fake = d_augment(gan, fake, streams.sub(k_fake, "augment"), axis_name)
    if gan.joint_d_pass:  # one call; D treats examples independently (see choose_joint_d_pass)
      y = None if y_fake is None else jnp.concatenate([y_real, y_fake])
      out, cols = d_forward(
        gan,
        params,
        cols,
        jnp.concatenate([x_real, x_fake]),
        y,
        train=True,
        dropout_key=streams.sub(k_real, "dropout"),
        axis_name=axis_name,
      )
      real_out, fake_out = out[:local_n], out[local_n:]
    else:  # D mixes examples (batch norm keeps real and fake apart; packs), or conv on CPU
      real_out, cols = d_forward(
        gan,
        params,
        cols,
        x_real,
        y_real,
        train=True,
        dropout_key=streams.sub(k_real, "dropout"),
        axis_name=axis_name,
      )
      fake_out, cols = d_forward(
        gan,
        params,
        cols,
        x_fake,
        y_fake,
        train=True,
        dropout_key=streams.sub(k_fake, "dropout"),
        axis_name=axis_name,
      )
    return params, real_out, fake_out, cols

  def d_objective(
    d, real, fake, y_fake, real_out, fake_out, key, t_keys, term_states, step, update
  ):
    """D's objective on the adversarial pass's outputs: (loss, metrics, next term states)."""
    ctx = objectives.TermContext(
      d=d,
      real_x=real["x"],
      real_y=real.get("y"),
      fake_x=fake,
      fake_y=y_fake,
      real_out=real_out,
      fake_out=fake_out,
      key=key,
      step=step,
      update=update,
      axis_name=axis_name,
      group=gan.d_pack,
    )
    loss, metrics, new_states = objectives.evaluate(gan.d_terms, ctx, t_keys, term_states, "d_loss")
    metrics["d_real"] = jnp.mean(gan.d_loss.read(real_out))
    metrics["d_fake"] = jnp.mean(gan.d_loss.read(fake_out))
    return loss, metrics, new_states

  def g_objective(
    d, real, fake, y_fake, real_out, fake_out, key, t_keys, term_states, step, update
  ):
    """G's objective on D's outputs: (loss, metrics, next term states)."""
    ctx = objectives.TermContext(
      d=d,
      real_x=real["x"],
      real_y=real.get("y"),
      fake_x=fake,
      fake_y=y_fake,
      real_out=real_out,
      fake_out=fake_out,
      key=key,
      step=step,
      update=update,
      axis_name=axis_name,
      group=gan.d_pack,
    )
    loss, metrics, new_states = objectives.evaluate(gan.g_terms, ctx, t_keys, term_states, "g_loss")
    metrics["g_d_fake"] = jnp.mean(gan.d_loss.read(fake_out))
    return loss, metrics, new_states

  def apply_gradients(tx, grads, opt_state, params, player, metrics):
    """Averages the gradients over devices and takes one optimizer step; adds the norms and
    the learning rate to ``metrics`` (``{player}_grad_norm``, ..., ``lr/{player}``)."""
    grads = pmean(grads, axis_name)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    metrics[f"{player}_grad_norm"] = optax.tree.norm(grads)
    metrics[f"{player}_update_norm"] = optax.tree.norm(updates)
    metrics[f"{player}_param_norm"] = optax.tree.norm(params)
    metrics[f"lr/{player}"] = optim.learning_rate(opt_state)
    return params, opt_state, metrics

  def d_update(carry, real, keys, prefix, update, step, g_params, g_collections):
    d_params, d_collections, d_opt_state, term_states = carry
    local_n = real["x"].shape[0]
    z, y_fake = noise_and_labels(keys, prefix, local_n)
    fake, _ = apply_net(G, g_params, g_collections, z, y_fake, train=True)
    fake = lax.stop_gradient(fake)
    k_real, k_fake = keys[f"{prefix}/real"], keys[f"{prefix}/fake"]

    def loss_fn(params):
      params, real_out, fake_out, cols = d_pass(
        params, d_collections, real, fake, y_fake, k_real, k_fake
      )
      loss, metrics, new_states = d_objective(
        d_call(params, d_collections),
        real,
        fake,
        y_fake,
        real_out,
        fake_out,
        k_real,
        term_keys(keys, prefix, gan.d_terms),
        term_states,
        step,
        update,
      )
      return loss, (cols, metrics, new_states)

    (_, (cols, metrics, new_states)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d_params)
    d_params, d_opt_state, metrics = apply_gradients(
      gan.d_tx, grads, d_opt_state, d_params, "d", metrics
    )
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
      real_out = (
        d(real["x"], real.get("y"), keys[f"{prefix}/real"]) if gan.g_loss.needs_real else None
      )
      loss, metrics, new_states = g_objective(
        d,
        real,
        fake,
        y_fake,
        real_out,
        fake_out,
        keys[f"{prefix}/fake"],
        term_keys(keys, prefix, gan.g_terms),
        term_states,
        step,
        update,
      )
      return loss, (cols, metrics, new_states)

    (_, (cols, metrics, new_states)), grads = jax.value_and_grad(loss_fn, has_aux=True)(g_params)
    g_params, g_opt_state, metrics = apply_gradients(
      gan.g_tx, grads, g_opt_state, g_params, "g", metrics
    )
    return (g_params, pmean(cols, axis_name), g_opt_state, {**term_states, **new_states}), metrics

  def simultaneous_update(state, real, keys):
    """One D and one G update from one forward pass (the 2014 released code): both gradients
    are pulled back from the same G(z) and the same D outputs (same dropout masks), so G's
    gradient goes through the pre-update D. Streams: d0/* for noise, labels and the D pass,
    d0/term/* for D's terms and g0/term/* for G's."""
    step = state.step  # k = g_steps = 1: each player's update count is the step
    local_n = real["x"].shape[0]
    z, y_fake = noise_and_labels(keys, "d0", local_n)
    k_real, k_fake = keys["d0/real"], keys["d0/fake"]
    d_states, g_states = state.objective_state["d"], state.objective_state["g"]

    def losses(d_params, g_params):
      fake, g_cols = apply_net(G, g_params, state.g_collections, z, y_fake, train=True)
      params, real_out, fake_out, d_cols = d_pass(
        d_params, state.d_collections, real, fake, y_fake, k_real, k_fake
      )
      d = d_call(params, state.d_collections)
      d_loss, d_metrics, d_new = d_objective(
        d,
        real,
        fake,
        y_fake,
        real_out,
        fake_out,
        k_real,
        term_keys(keys, "d0", gan.d_terms),
        d_states,
        step,
        step,
      )
      g_loss, g_metrics, g_new = g_objective(
        d,
        real,
        fake,
        y_fake,
        real_out if gan.g_loss.needs_real else None,
        fake_out,
        k_fake,
        term_keys(keys, "g0", gan.g_terms),
        g_states,
        step,
        step,
      )
      return (d_loss, g_loss), (d_cols, g_cols, d_metrics, g_metrics, d_new, g_new)

    (d_loss, g_loss), pullback, aux = jax.vjp(losses, state.d_params, state.g_params, has_aux=True)
    d_cols, g_cols, d_metrics, g_metrics, d_new, g_new = aux
    one, zero = jnp.ones_like, jnp.zeros_like
    d_grads, _ = pullback((one(d_loss), zero(g_loss)))  # dL_D/dtheta_D (the rest is dead code)
    _, g_grads = pullback((zero(d_loss), one(g_loss)))  # dL_G/dtheta_G through the pre-update D
    d_params, d_opt_state, d_metrics = apply_gradients(
      gan.d_tx, d_grads, state.d_opt_state, state.d_params, "d", d_metrics
    )
    g_params, g_opt_state, g_metrics = apply_gradients(
      gan.g_tx, g_grads, state.g_opt_state, state.g_params, "g", g_metrics
    )
    d_carry = (d_params, pmean(d_cols, axis_name), d_opt_state, {**d_states, **d_new})
    g_carry = (g_params, pmean(g_cols, axis_name), g_opt_state, {**g_states, **g_new})
    return d_carry, g_carry, [d_metrics], [g_metrics]

  def alternating_updates(state, batch, keys, d_steps):
    # Python loops, not lax.scan: k and g_steps are small, and XLA:CPU runs
    # convolutions inside loop bodies far slower (jax-ml/jax#12868; BUILD_NOTES.md).
    d_carry = (state.d_params, state.d_collections, state.d_opt_state, state.objective_state["d"])
    d_metrics = []
    for i in range(d_steps):
      real = jax.tree.map(lambda a: a[i], batch)
      d_carry, m = d_update(
        d_carry,
        real,
        keys,
        f"d{i}",
        state.step * d_steps + i,
        state.step,
        state.g_params,
        state.g_collections,
      )
      d_metrics.append(m)
    d_params, d_collections = d_carry[:2]
    g_carry = (state.g_params, state.g_collections, state.g_opt_state, state.objective_state["g"])
    g_metrics = []
    last_real = jax.tree.map(
      lambda a: a[d_steps - 1], batch
    )  # for losses that compare with real data
    for j in range(g_steps):
      g_carry, m = g_update(
        g_carry,
        keys,
        f"g{j}",
        state.step * g_steps + j,
        state.step,
        d_params,
        d_collections,
        last_real,
      )
      g_metrics.append(m)
    return d_carry, g_carry, d_metrics, g_metrics

  def train_step(state: GANState, batch: Batch) -> tuple[GANState, Metrics]:
    d_steps = batch["x"].shape[0]
    keys = streams.derive(
      streams.step_key(state.rng, state.step), step_stream_names(gan, d_steps, g_steps)
    )
    if update_order == "simultaneous":
      if d_steps != 1:
        raise ValueError(
          f"update_order='simultaneous' takes one real minibatch per step (k = 1); "
          f"batch['x'] has {d_steps}"
        )
      d_carry, g_carry, d_metrics, g_metrics = simultaneous_update(
        state, jax.tree.map(lambda a: a[0], batch), keys
      )
    else:
      d_carry, g_carry, d_metrics, g_metrics = alternating_updates(state, batch, keys, d_steps)
    d_params, d_collections, d_opt_state, d_term_states = d_carry
    g_params, g_collections, g_opt_state, g_term_states = g_carry
    ema = state.g_ema_params
    if ema is not None:
      ema = gan.ema.update(ema, g_params, state.step)
    new_state = state.replace(
      step=state.step + 1,
      g_params=g_params,
      d_params=d_params,
      g_collections=g_collections,
      d_collections=d_collections,
      g_opt_state=g_opt_state,
      d_opt_state=d_opt_state,
      g_ema_params=ema,
      objective_state={"d": d_term_states, "g": g_term_states},
    )
    metrics = {
      k: jnp.mean(jnp.stack([m[k] for m in ms]))
      for ms in (d_metrics, g_metrics)
      if ms
      for k in ms[0]
    }
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


def make_fused_step(
  train_step: TrainStep,
  materialize: Callable[[Any, Any, str | None], Batch],
  axis_name: str | None = None,
  unroll: bool = False,
  divergence_bound: float = float("inf"),
) -> Callable[..., tuple[GANState, Metrics]]:
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
