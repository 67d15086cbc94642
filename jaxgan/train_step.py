"""The pure, compiled training step: Algorithm 1 of Goodfellow et al. (2014).

One *step* = ``d_steps`` (k) discriminator updates, each on its own real
minibatch and fresh noise, then ``g_steps`` generator updates with fresh noise.
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

from jaxgan.collectives import device_key, pmean, shard_of_global
from jaxgan.gan import GAN, apply_net
from jaxgan.state import GANState

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
TrainStep = Callable[[GANState, Batch], tuple[GANState, Metrics]]
NEVER = jnp.iinfo(jnp.int32).max


def make_train_step(gan: GAN, *, g_steps: int = 1, axis_name: str | None = None) -> TrainStep:
  """Builds the per-device step. ``batch['x']`` is [k, B_local, ...]: one minibatch per D update."""
  G, D = gan.nets.generator, gan.nets.discriminator
  # One D pass over concat(real, fake) is the same math as two (no batch statistics)
  # and halves the kernel count, which is what small MLPs are bound by. Conv nets
  # on CPU run slower at the doubled batch (dcgan28: 6.5 vs 7.6 steps/s), so not those.
  joint_d_pass = not gan.nets.convolutional

  def noise_and_labels(keys: jax.Array, local_n: int):
    z = shard_of_global(gan.noise.sample, keys[0], local_n, axis_name)
    y = shard_of_global(gan.sample_labels, keys[1], local_n, axis_name) if gan.conditional else None
    return z, y

  def d_update(carry, inputs, g_params, g_collections):
    d_params, d_collections, d_opt_state = carry
    real, keys = inputs  # keys: noise, labels, dropout
    drop_key = keys[2]
    local_n = real["x"].shape[0]
    z, y_fake = noise_and_labels(keys, local_n)
    fake, _ = apply_net(G, g_params, g_collections, z, y_fake, train=True)
    fake = lax.stop_gradient(fake)
    drop_key = device_key(drop_key, axis_name)

    def loss_fn(params):
      if d_collections or not joint_d_pass:  # batch norm: real and fake keep their own statistics
        drop_real, drop_fake = jax.random.split(drop_key)
        real_logits, cols = apply_net(D, params, d_collections, real["x"], real.get("y"),
                                      train=True, rngs={"dropout": drop_real})
        fake_logits, cols = apply_net(D, params, cols, fake, y_fake, train=True,
                                      rngs={"dropout": drop_fake})
      else:
        y = None if y_fake is None else jnp.concatenate([real["y"], y_fake])
        logits, cols = apply_net(D, params, d_collections, jnp.concatenate([real["x"], fake]), y,
                                 train=True, rngs={"dropout": drop_key})
        real_logits, fake_logits = logits[:local_n], logits[local_n:]
      loss = gan.d_loss(real_logits, fake_logits)
      aux = (cols, jnp.mean(jax.nn.sigmoid(real_logits)), jnp.mean(jax.nn.sigmoid(fake_logits)))
      return loss, aux

    (loss, (cols, d_real, d_fake)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d_params)
    grads = pmean(grads, axis_name)
    updates, d_opt_state = gan.d_tx.update(grads, d_opt_state, d_params)
    d_params = optax.apply_updates(d_params, updates)
    metrics = {"d_loss": loss, "d_real": d_real, "d_fake": d_fake,
               "d_grad_norm": optax.tree.norm(grads)}
    return (d_params, pmean(cols, axis_name), d_opt_state), metrics

  def g_update(carry, keys, d_params, d_collections, local_n):
    g_params, g_collections, g_opt_state = carry
    drop_key = keys[2]
    z, y_fake = noise_and_labels(keys, local_n)

    def loss_fn(params):
      fake, cols = apply_net(G, params, g_collections, z, y_fake, train=True)
      logits, _ = apply_net(D, d_params, d_collections, fake, y_fake, train=True,
                            rngs={"dropout": device_key(drop_key, axis_name)})
      return gan.g_loss(logits), (cols, jnp.mean(jax.nn.sigmoid(logits)))

    (loss, (cols, d_fake)), grads = jax.value_and_grad(loss_fn, has_aux=True)(g_params)
    grads = pmean(grads, axis_name)
    updates, g_opt_state = gan.g_tx.update(grads, g_opt_state, g_params)
    g_params = optax.apply_updates(g_params, updates)
    metrics = {"g_loss": loss, "g_d_fake": d_fake, "g_grad_norm": optax.tree.norm(grads)}
    return (g_params, pmean(cols, axis_name), g_opt_state), metrics

  def train_step(state: GANState, batch: Batch) -> tuple[GANState, Metrics]:
    d_steps = batch["x"].shape[0]
    local_n = batch["x"].shape[1]
    # All of a step's randomness from one split (each split is several kernels on CPU):
    # the next state key, then (noise, labels, dropout) keys for every update.
    keys = jax.random.split(state.rng, 1 + 3 * (d_steps + g_steps))
    rng = keys[0]
    d_keys = keys[1:1 + 3 * d_steps].reshape(d_steps, 3, *keys.shape[1:])
    g_keys = keys[1 + 3 * d_steps:].reshape(g_steps, 3, *keys.shape[1:])
    # Python loops, not lax.scan: k and g_steps are small, and XLA:CPU runs
    # convolutions inside loop bodies far slower (jax-ml/jax#12868; BUILD_NOTES.md).
    d_carry, d_metrics = (state.d_params, state.d_collections, state.d_opt_state), []
    for i in range(d_steps):
      real = jax.tree.map(lambda a: a[i], batch)
      d_carry, m = d_update(d_carry, (real, d_keys[i]), state.g_params, state.g_collections)
      d_metrics.append(m)
    d_params, d_collections, d_opt_state = d_carry
    g_carry, g_metrics = (state.g_params, state.g_collections, state.g_opt_state), []
    for i in range(g_steps):
      g_carry, m = g_update(g_carry, g_keys[i], d_params, d_collections, local_n)
      g_metrics.append(m)
    g_params, g_collections, g_opt_state = g_carry
    ema = state.g_ema_params
    if ema is not None:
      decay = gan.ema_decay
      ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, g_params)
    new_state = state.replace(
        step=state.step + 1, g_params=g_params, d_params=d_params,
        g_collections=g_collections, d_collections=d_collections,
        g_opt_state=g_opt_state, d_opt_state=d_opt_state, rng=rng, g_ema_params=ema)
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
                    unroll: bool = False) -> Callable[..., tuple[GANState, Metrics]]:
  """Runs ``train_step`` over the leading axis of ``inputs`` (``steps_per_call`` steps).

  ``unroll=False`` uses ``lax.scan`` (compile once, any length: best for small
  MLPs); ``unroll=True`` inlines the steps (needed for conv nets on CPU, where
  XLA runs convolutions in loop bodies slowly). Returns metrics averaged over
  the fused steps, plus ``first_nonfinite_step``: the first step whose losses
  were NaN/inf (int32 max if none), so the host can check for divergence
  without syncing every step.
  """

  def fused(state: GANState, inputs: Any, device_data: Any) -> tuple[GANState, Metrics]:
    def body(state, step_inputs):
      state, metrics = train_step(state, materialize(step_inputs, device_data, axis_name))
      finite = jnp.isfinite(metrics["d_loss"]) & jnp.isfinite(metrics["g_loss"])
      return state, (metrics, jnp.where(finite, NEVER, state.step))

    if unroll:
      outs = []
      for i in range(jax.tree.leaves(inputs)[0].shape[0]):
        state, out = body(state, jax.tree.map(lambda a: a[i], inputs))
        outs.append(out)
      metrics, bad_steps = jax.tree.map(lambda *xs: jnp.stack(xs), *outs)
    else:
      state, (metrics, bad_steps) = lax.scan(body, state, inputs)
    metrics = jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)
    metrics["first_nonfinite_step"] = jnp.min(bad_steps)
    return state, metrics

  return fused
