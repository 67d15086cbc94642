"""The pure, compiled training step: Algorithm 1 of Goodfellow et al. (2014), per player.

One *step* = ``d_steps`` (k) discriminator updates, each on its own real
minibatch and fresh noise, then ``g_steps`` generator updates with fresh noise.
G's updates see a real minibatch too (losses that pair fakes with reals, such as
RpGAN's; ``fake_labels='real'``): with ``g_real_batch="last_d"`` the last of D's,
with ``"fresh"`` one more of their own, as R3GAN's trainer fetches one batch for
D's phase and another for G's. The step's batch then holds k + 1 minibatches
(``jaxgan.data.pipeline.real_minibatches``), G's last. Images are still counted
as ``batch_size`` per step (kimg schedules, EMA half-life, ADA's adjustment): the
official counts ``cur_nimg += batch_size`` per iteration, D's batch alone.
Each update minimises its player's objective, a sum of terms that see D
(``jaxgan.core.objectives``); every random number comes from a named stream of the
step's key (``jaxgan.core.streams``).

With ``update_order="simultaneous"`` (the 2014 paper's released code) a step
is instead one D and one G update from ONE forward pass: one noise draw, one
G(z), D's pass on real and fake; D's gradient is that of D's objective, G's
that of G's objective through the same, pre-update D (same fake batch, same
dropout masks); then both optimizers step. It takes k = 1 and one G update
(``check_update_order``).

The pieces are module-level functions of a small frozen ``StepContext`` (the
GAN bundle, the step's named keys, the step and the device axis) and of the
players' ``PlayerState``: ``d_update`` and ``g_update`` (one update each, with
the same argument order), ``simultaneous_update``, the shared ``objective`` and
``apply_gradients``. ``make_train_step`` composes them into
``train_step(state, batch) -> (state, metrics)`` for one device; with an
``axis_name`` it averages gradients, batch-norm running statistics and metrics
over that axis (``lax.pmean``), so the same function runs under ``jit``,
``pmap`` or ``shard_map``. ``make_fused_step`` fuses ``steps_per_call`` steps
into one call (``lax.scan``, or inlined) so small models are not bound by Python
dispatch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxgan.core import objectives, optim, streams
from jaxgan.core.collectives import pmean, shard_of_global
from jaxgan.core.gan import GAN, d_augment, d_forward_heads, g_forward, player_weights
from jaxgan.core.state import GANState, PlayerState
from jaxgan.errors import ConfigError

Array = jax.Array
Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
TrainStep = Callable[[GANState, Batch], tuple[GANState, Metrics]]
NEVER = jnp.iinfo(jnp.int32).max
WATCHED = ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm")  # what divergence is judged on
UPDATE_ORDERS = ("alternating", "simultaneous")
# G's labels for an update's fakes: uniform over the classes (their own stream), or those of
# the real batch the update sees (R3GAN's gen_c = real_c), so reals and fakes pair by class.
FAKE_LABELS = ("uniform", "real")
# The real minibatch G's updates see: the last of the step's D updates, or one of their own.
G_REAL_BATCHES = ("last_d", "fresh")


def check_update_order(update_order: str, d_steps: int, g_steps: int) -> None:
  """The update-order rule, in one place (``config.validate`` and the step both call it)."""
  if update_order not in UPDATE_ORDERS:
    raise ConfigError(
      f"config.train.update_order={update_order!r} is not valid. "
      f"Valid choices: {', '.join(UPDATE_ORDERS)}."
    )
  if update_order == "simultaneous" and (d_steps, g_steps) != (1, 1):
    raise ConfigError(
      f"config.train.update_order='simultaneous' takes one D and one G update from one forward "
      f"pass, so it needs d_steps=1 and g_steps=1 (got {d_steps} and {g_steps}); use "
      f"update_order='alternating' for k > 1."
    )


def check_g_real_batch(g_real_batch: str, update_order: str) -> None:
  """The ``train.g_real_batch`` rule (``config.validate`` and the step both call it)."""
  if g_real_batch not in G_REAL_BATCHES:
    raise ConfigError(
      f"config.train.g_real_batch={g_real_batch!r} is not valid. "
      f"Valid choices: {', '.join(G_REAL_BATCHES)}."
    )
  if g_real_batch == "fresh" and update_order == "simultaneous":
    raise ConfigError(
      "config.train.g_real_batch='fresh' gives G's update a real batch of its own, but "
      "update_order='simultaneous' takes both updates from one pass on one batch; use "
      "g_real_batch='last_d' or update_order='alternating'."
    )


def step_stream_names(gan: GAN, d_steps: int, g_steps: int) -> list[str]:
  """Every named random stream of one training step (see ``jaxgan.core.streams``).

  ``d{i}/...`` feed the i-th D update, ``g{j}/...`` the j-th G update: noise,
  fake labels, the real and fake passes (each sub-derives its dropout and
  augmentation keys), G's forward pass (its own random inputs) and one stream per
  objective term.
  """
  names = []
  for player, updates in (("d", d_steps), ("g", g_steps)):
    for i in range(updates):
      prefix = f"{player}{i}"
      names += [f"{prefix}/noise", f"{prefix}/labels", f"{prefix}/real", f"{prefix}/fake"]
      names += [f"{prefix}/g"]  # G's own random inputs (per-layer noise, style mixing)
      names += [f"{prefix}/term/{t.name}" for t in gan.terms(player)]
  return names


@dataclasses.dataclass(frozen=True)
class StepContext:
  """What every update of one training step shares.

  Attributes:
    gan: the static GAN bundle (nets, noise, objectives, optimizers).
    keys: the step's named random streams (``step_stream_names``).
    step: the training step being taken.
    axis_name: the device axis (None on one device).
    ada_p: ADA's augmentation probability for this step (None without ADA).
  """

  gan: GAN
  keys: dict[str, Array]
  step: Array
  axis_name: str | None = None
  ada_p: Array | None = None

  def fake_inputs(self, prefix: str, real: Batch) -> tuple[Array, Array | None]:
    """This device's share of the noise and (conditional GANs) fake labels of an update
    that sees the real batch ``real``: drawn uniformly, or ``real``'s own labels
    (``GAN.fake_labels='real'``)."""
    local_n = real["x"].shape[0]
    z = shard_of_global(
      self.gan.noise.sample, self.keys[f"{prefix}/noise"], local_n, self.axis_name
    )
    if not self.gan.conditional:
      return z, None
    if self.gan.fake_labels == "real":
      return z, real["y"].astype(jnp.int32)
    y = shard_of_global(
      self.gan.sample_labels, self.keys[f"{prefix}/labels"], local_n, self.axis_name
    )
    return z, y

  def scorer(self, params: Any, collections: dict, heads: bool = False) -> objectives.ApplyD:
    """D for objective terms: these (effective) weights and collections, augmentation and
    dropout from the key it is given; batch statistics are not updated. ``heads``: it
    returns (outputs, D's class-head outputs or None), for G's adversarial pass."""

    def d(x: Array, y: Array | None, key: Array) -> Any:
      x = d_augment(self.gan, x, streams.sub(key, "augment"), self.axis_name, self.ada_p)
      dropout = streams.sub(key, "dropout")
      out, found, _ = d_forward_heads(
        self.gan, params, collections, x, y, train=True, dropout_key=dropout,
        axis_name=self.axis_name, heads=heads,
      )  # fmt: skip
      return (out, found) if heads else out

    return d

  def generator(self, params: Any, collections: dict) -> objectives.ApplyG:
    """G for objective terms: these weights and collections in training mode (statistics
    not updated), its random inputs from the key it is given; ``method`` calls a part
    (e.g. ``mapping``, ``synthesis``)."""

    def g(*args: Any, key: Array, method: str | None = None, **kwargs: Any) -> Array:
      out, _ = g_forward(
        self.gan, params, collections, *args, train=True, key=key,
        axis_name=self.axis_name, method=method, **kwargs,
      )  # fmt: skip
      return out

    return g

  def view(
    self,
    *,
    d: objectives.ApplyD,
    g: objectives.ApplyG,
    params: Any,
    z: Array,
    real: Batch,
    fake: Array,
    y_fake: Array | None,
    real_out: Array | None,
    fake_out: Array,
    update: Array,
    real_heads: dict | None = None,
    fake_heads: dict | None = None,
  ) -> objectives.TermContext:
    """What a player's objective terms see of this update (``params``: the player's own,
    differentiated in its update)."""
    return objectives.TermContext(
      d=d,
      g=g,
      params=params,
      z=z,
      real_x=real["x"],
      real_y=real.get("y"),
      fake_x=fake,
      fake_y=y_fake,
      real_out=real_out,
      fake_out=fake_out,
      step=self.step,
      update=update,
      axis_name=self.axis_name,
      group=self.gan.d_pack,
      real_heads=real_heads,
      fake_heads=fake_heads,
    )


def d_pass(
  ctx: StepContext,
  params: Any,
  collections: dict,
  real: Batch,
  fake: Array,
  y_fake: Array | None,
  prefix: str,
) -> tuple[Array, Array, dict, dict | None, dict | None]:
  """D's adversarial pass on augmented real and fake batches, with D's effective weights:
  (real_out, fake_out, D's collections as the pass left them, the outputs of D's class head
  on real and on fake (None without one))."""
  gan, axis = ctx.gan, ctx.axis_name
  k_real, k_fake = ctx.keys[f"{prefix}/real"], ctx.keys[f"{prefix}/fake"]
  x_real = d_augment(gan, real["x"], streams.sub(k_real, "augment"), axis, ctx.ada_p)
  x_fake = d_augment(gan, fake, streams.sub(k_fake, "augment"), axis, ctx.ada_p)
  y_real = real.get("y")
  if gan.joint_d_pass:  # one call; D treats examples independently (see choose_joint_d_pass)
    local_n = real["x"].shape[0]
    y = None if y_fake is None else jnp.concatenate([y_real, y_fake])
    out, heads, cols = d_forward_heads(
      gan,
      params,
      collections,
      jnp.concatenate([x_real, x_fake]),
      y,
      train=True,
      dropout_key=streams.sub(k_real, "dropout"),
      axis_name=axis,
    )
    real_heads, fake_heads = (
      (None, None)
      if heads is None
      else (
        jax.tree.map(lambda a: a[:local_n], heads),
        jax.tree.map(lambda a: a[local_n:], heads),
      )
    )
    return out[:local_n], out[local_n:], cols, real_heads, fake_heads
  # two calls: D mixes examples (batch norm keeps real and fake apart; packs), or conv on CPU
  real_out, real_heads, cols = d_forward_heads(
    gan,
    params,
    collections,
    x_real,
    y_real,
    train=True,
    dropout_key=streams.sub(k_real, "dropout"),
    axis_name=axis,
  )
  fake_out, fake_heads, cols = d_forward_heads(
    gan,
    params,
    cols,
    x_fake,
    y_fake,
    train=True,
    dropout_key=streams.sub(k_fake, "dropout"),
    axis_name=axis,
  )
  return real_out, fake_out, cols, real_heads, fake_heads


def objective(
  ctx: StepContext, player: str, view: objectives.TermContext, prefix: str, term_state: dict
) -> tuple[Array, Metrics, dict]:
  """``player``'s objective (its terms, ``jaxgan.core.objectives``) on one update's view:
  (loss, metrics, the terms' next states). Metrics also show D's output as its loss reads
  it: ``d_real``, ``d_fake`` in D's update, ``g_d_fake`` in G's."""
  terms = ctx.gan.main_terms(player)
  keys = {t.name: ctx.keys[f"{prefix}/term/{t.name}"] for t in terms}
  loss, metrics, new_states = objectives.evaluate(terms, view, keys, term_state, player)
  read = ctx.gan.d_loss.read
  if player == "d":
    metrics["d_real"] = jnp.mean(read(view.real_out))
    metrics["d_fake"] = jnp.mean(read(view.fake_out))
    if ctx.gan.ada is not None:  # ADA's r_t: the sign of D's raw output on augmented reals
      metrics["ada/real_sign"] = jnp.mean(jnp.sign(view.real_out))
  else:
    metrics["g_d_fake"] = jnp.mean(read(view.fake_out))
  return loss, metrics, new_states


def apply_gradients(
  ctx: StepContext,
  player: str,
  state: PlayerState,
  grads: Any,
  collections: dict,
  new_term_states: dict,
  metrics: Metrics,
  label: str = "",
) -> tuple[PlayerState, Metrics]:
  """Averages ``grads`` over devices, takes one optimizer step and returns the player's next
  state (collections averaged over devices, term states updated); adds the norms and the
  learning rate to ``metrics`` (``{label}_grad_norm``, ..., ``lr/{player}``; ``label``
  defaults to the player)."""
  label = label or player
  grads = pmean(grads, ctx.axis_name)
  updates, opt_state = ctx.gan.tx(player).update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics[f"{label}_grad_norm"] = optax.tree.norm(grads)
  metrics[f"{label}_update_norm"] = optax.tree.norm(updates)
  metrics[f"{label}_param_norm"] = optax.tree.norm(params)
  if label == player:
    metrics[f"lr/{player}"] = optim.learning_rate(opt_state)
    for key in dict(ctx.gan.varying_hparams).get(player, ()):  # scheduled b1, b2
      if key != "lr":
        metrics[f"{key}/{player}"] = optim.injected(opt_state, key)
  new = PlayerState(
    params=params,
    collections=pmean(collections, ctx.axis_name),
    opt_state=opt_state,
    term_state={**state.term_state, **new_term_states},
  )
  return new, metrics


def d_update(
  ctx: StepContext, d: PlayerState, g: PlayerState, real: Batch, prefix: str, update: Array
) -> tuple[PlayerState, Metrics]:
  """One D update on ``real`` and a fresh fake batch from G (training mode, G's own
  statistics untouched); ``update``: D's update count, for lazy terms."""
  z, y_fake = ctx.fake_inputs(prefix, real)
  fake, _ = g_forward(
    ctx.gan, g.params, g.collections, z, y_fake, train=True, key=ctx.keys[f"{prefix}/g"],
    axis_name=ctx.axis_name,
  )  # fmt: skip
  fake = lax.stop_gradient(fake)
  generator = ctx.generator(g.params, g.collections)

  def loss_fn(params):
    # new power iterates
    weights, cols = player_weights(ctx.gan, "d", params, d.collections, update=True)
    real_out, fake_out, cols, real_heads, fake_heads = d_pass(
      ctx, weights, cols, real, fake, y_fake, prefix
    )
    view = ctx.view(
      d=ctx.scorer(weights, d.collections), g=generator, params=params, z=z, real=real,
      fake=fake, y_fake=y_fake, real_out=real_out, fake_out=fake_out, update=update,
      real_heads=real_heads, fake_heads=fake_heads,
    )  # fmt: skip
    loss, metrics, new_states = objective(ctx, "d", view, prefix, d.term_state)
    return loss, (cols, metrics, new_states)

  (_, (cols, metrics, new_states)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d.params)
  d, metrics = apply_gradients(ctx, "d", d, grads, cols, new_states, metrics)
  d, reg_metrics = reg_update(ctx, "d", d, g, real, z, y_fake, fake, prefix, update)
  return d, {**metrics, **reg_metrics}


def g_update(
  ctx: StepContext, g: PlayerState, d: PlayerState, real: Batch, prefix: str, update: Array
) -> tuple[PlayerState, Metrics]:
  """One G update against D (in training mode, its weights and statistics frozen);
  ``real`` is scored only for losses that compare with real data (``needs_real``)."""
  gan = ctx.gan
  z, y_fake = ctx.fake_inputs(prefix, real)
  d_params, d_cols = player_weights(gan, "d", d.params, d.collections, update=False)
  score = ctx.scorer(d_params, d_cols)

  def loss_fn(params):
    fake, cols = g_forward(
      gan, params, g.collections, z, y_fake, train=True, key=ctx.keys[f"{prefix}/g"],
      axis_name=ctx.axis_name,
    )  # fmt: skip
    fake_out, fake_heads = ctx.scorer(d_params, d_cols, heads=True)(
      fake, y_fake, ctx.keys[f"{prefix}/fake"]
    )
    real_out = (
      score(real["x"], real.get("y"), ctx.keys[f"{prefix}/real"]) if gan.g_loss.needs_real else None
    )
    view = ctx.view(
      d=score, g=ctx.generator(params, g.collections), params=params, z=z, real=real,
      fake=fake, y_fake=y_fake, real_out=real_out, fake_out=fake_out, update=update,
      fake_heads=fake_heads,
    )  # fmt: skip
    loss, metrics, new_states = objective(ctx, "g", view, prefix, g.term_state)
    return loss, (cols, metrics, new_states, fake)

  (_, (cols, metrics, new_states, fake)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
    g.params
  )
  g, metrics = apply_gradients(ctx, "g", g, grads, cols, new_states, metrics)
  fake = lax.stop_gradient(fake)
  g, reg_metrics = reg_update(ctx, "g", g, d, real, z, y_fake, fake, prefix, update)
  return g, {**metrics, **reg_metrics}


def reg_update(
  ctx: StepContext,
  player: str,
  me: PlayerState,
  other: PlayerState,
  real: Batch,
  z: Array,
  y_fake: Array | None,
  fake: Array,
  prefix: str,
  update: Array,
) -> tuple[PlayerState, Metrics]:
  """StyleGAN2's ``Dreg``/``Greg`` phase (``loss.lazy=separate``): after the player's main
  update, on every N-th update, its lazy terms (N x their weight) take an optimizer step of
  their own, on the main update's batches and noise, against the other player as it stands
  (in training mode, its state untouched); D's outputs of the adversarial pass are not made
  (``reads_outputs`` terms are refused). Metrics: ``{player}_reg_loss``, the terms' own,
  ``{player}_reg_grad_norm``, ...; zeros on the updates it skips."""
  gan = ctx.gan
  terms = gan.reg_terms(player)
  if not terms:
    return me, {}
  keys = {t.name: ctx.keys[f"{prefix}/term/{t.name}"] for t in terms}

  def step(me: PlayerState) -> tuple[PlayerState, Metrics]:
    def loss_fn(params):
      if player == "d":
        weights, _ = player_weights(gan, "d", params, me.collections, update=False)
        d, g = ctx.scorer(weights, me.collections), ctx.generator(other.params, other.collections)
      else:
        d_params, d_cols = player_weights(gan, "d", other.params, other.collections, update=False)
        d, g = ctx.scorer(d_params, d_cols), ctx.generator(params, me.collections)
      view = ctx.view(
        d=d, g=g, params=params, z=z, real=real, fake=fake, y_fake=y_fake, real_out=None,
        fake_out=None, update=update,
      )  # fmt: skip
      loss, metrics, new_states = objectives.evaluate(
        terms, view, keys, me.term_state, player, skip_lazy=False
      )
      metrics[f"{player}_reg_loss"] = metrics.pop(f"{player}_loss")
      return loss, (metrics, new_states)

    (_, (metrics, new_states)), grads = jax.value_and_grad(loss_fn, has_aux=True)(me.params)
    return apply_gradients(
      ctx, player, me, grads, me.collections, new_states, metrics, f"{player}_reg"
    )

  shapes = jax.eval_shape(step, me)[1]

  def skip(me: PlayerState) -> tuple[PlayerState, Metrics]:
    return me, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

  return lax.cond(update % terms[0].every == 0, step, skip, me)


def simultaneous_update(
  ctx: StepContext, d: PlayerState, g: PlayerState, real: Batch
) -> tuple[PlayerState, PlayerState, Metrics, Metrics]:
  """One D and one G update from one forward pass (the 2014 released code): both gradients
  are pulled back from the same G(z) and the same D outputs (same dropout masks), so G's
  gradient goes through the pre-update D. Streams: d0/* for noise, labels, G's forward and
  the D pass, d0/term/* for D's terms and g0/term/* for G's. Each player's update count is
  the step."""
  gan, update = ctx.gan, ctx.step
  z, y_fake = ctx.fake_inputs("d0", real)

  def losses(d_params, g_params):
    fake, g_cols = g_forward(
      gan, g_params, g.collections, z, y_fake, train=True, key=ctx.keys["d0/g"],
      axis_name=ctx.axis_name,
    )  # fmt: skip
    weights, d_cols = player_weights(gan, "d", d_params, d.collections, update=True)
    real_out, fake_out, d_cols, real_heads, fake_heads = d_pass(
      ctx, weights, d_cols, real, fake, y_fake, "d0"
    )
    generator = ctx.generator(g_params, g.collections)
    d_view = ctx.view(
      d=ctx.scorer(weights, d.collections), g=generator, params=d_params, z=z, real=real,
      fake=fake, y_fake=y_fake, real_out=real_out, fake_out=fake_out, update=update,
      real_heads=real_heads, fake_heads=fake_heads,
    )  # fmt: skip
    g_view = dataclasses.replace(
      d_view, params=g_params, real_out=real_out if gan.g_loss.needs_real else None
    )
    d_loss, d_metrics, d_new = objective(ctx, "d", d_view, "d0", d.term_state)
    g_loss, g_metrics, g_new = objective(ctx, "g", g_view, "g0", g.term_state)
    return (d_loss, g_loss), (d_cols, g_cols, d_metrics, g_metrics, d_new, g_new)

  (d_loss, g_loss), pullback, aux = jax.vjp(losses, d.params, g.params, has_aux=True)
  d_cols, g_cols, d_metrics, g_metrics, d_new, g_new = aux
  one, zero = jnp.ones_like, jnp.zeros_like
  d_grads, _ = pullback((one(d_loss), zero(g_loss)))  # dL_D/dtheta_D (the rest is dead code)
  _, g_grads = pullback((zero(d_loss), one(g_loss)))  # dL_G/dtheta_G through the pre-update D
  d, d_metrics = apply_gradients(ctx, "d", d, d_grads, d_cols, d_new, d_metrics)
  g, g_metrics = apply_gradients(ctx, "g", g, g_grads, g_cols, g_new, g_metrics)
  return d, g, d_metrics, g_metrics


def alternating_updates(
  ctx: StepContext,
  d: PlayerState,
  g: PlayerState,
  batch: Batch,
  g_steps: int,
  g_real_batch: str = "last_d",
) -> tuple[PlayerState, PlayerState, list, list]:
  """Algorithm 1: k D updates, one per real minibatch of ``batch``, then ``g_steps`` G
  updates against the new D. Every G update sees ``batch``'s last minibatch (for losses that
  need reals, and its labels with ``fake_labels='real'``): D's last with
  ``g_real_batch="last_d"``, G's own (k + 1 minibatches) with ``"fresh"``.

  Python loops, not ``lax.scan``: k and g_steps are small, and XLA:CPU runs convolutions
  inside loop bodies far slower (jax-ml/jax#12868; docs/performance.md).
  """
  d_steps = d_updates(batch, g_real_batch)
  d_metrics, g_metrics = [], []
  for i in range(d_steps):
    real = jax.tree.map(lambda a: a[i], batch)
    d, m = d_update(ctx, d, g, real, f"d{i}", ctx.step * d_steps + i)
    d_metrics.append(m)
  g_real = jax.tree.map(lambda a: a[-1], batch)
  for j in range(g_steps):
    g, m = g_update(ctx, g, d, g_real, f"g{j}", ctx.step * g_steps + j)
    g_metrics.append(m)
  return d, g, d_metrics, g_metrics


def d_updates(batch: Batch, g_real_batch: str) -> int:
  """k, the step's D updates: ``batch``'s minibatches less G's own with ``'fresh'``."""
  return batch["x"].shape[0] - (g_real_batch == "fresh")


def make_train_step(
  gan: GAN,
  *,
  g_steps: int = 1,
  axis_name: str | None = None,
  update_order: str = "alternating",
  g_real_batch: str = "last_d",
) -> TrainStep:
  """The per-device step. ``batch['x']`` is [k, B_local, ...]: one minibatch per D update,
  and one more for G's updates with ``g_real_batch="fresh"`` ([k + 1, B_local, ...]).

  ``update_order``: "alternating" (Algorithm 1: k D updates, then ``g_steps`` G
  updates against the new D) or "simultaneous" (k = g_steps = 1, both players'
  gradients from one forward pass; see the module docstring).
  """

  def train_step(state: GANState, batch: Batch) -> tuple[GANState, Metrics]:
    check_g_real_batch(g_real_batch, update_order)
    d_steps = d_updates(batch, g_real_batch)
    check_update_order(update_order, d_steps, g_steps)  # k is known here, at trace time
    keys = streams.derive(
      streams.step_key(state.rng, state.step), step_stream_names(gan, d_steps, g_steps)
    )
    ada_p = None if state.ada is None else state.ada.p
    ctx = StepContext(gan, keys, state.step, axis_name, ada_p)
    if update_order == "simultaneous":
      real = jax.tree.map(lambda a: a[0], batch)
      d, g, d_metrics, g_metrics = simultaneous_update(ctx, state.d, state.g, real)
      d_metrics, g_metrics = [d_metrics], [g_metrics]
    else:
      d, g, d_metrics, g_metrics = alternating_updates(
        ctx, state.d, state.g, batch, g_steps, g_real_batch
      )
    ema = state.g_ema
    if ema is not None:
      ema = gan.ema.update(ema, g, state.step)
    metrics = {
      k: jnp.mean(jnp.stack([m[k] for m in ms]))
      for ms in (d_metrics, g_metrics)
      if ms
      for k in ms[0]
    }
    metrics = pmean(metrics, axis_name)
    if ema is not None and gan.ema.varies:
      metrics["ema/beta"] = gan.ema.beta(state.step)
    ada_state = state.ada
    if ada_state is not None:  # every D pass over reals, on every device, counts
      devices = 1 if axis_name is None else lax.psum(1, axis_name)
      n = d_steps * batch["x"].shape[1] * devices // gan.d_pack
      ada_state = gan.ada.step(ada_state, state.step, metrics["ada/real_sign"], n)
      metrics["ada/p"] = ada_state.p
    new_state = state.replace(step=state.step + 1, d=d, g=g, g_ema=ema, ada=ada_state)
    return new_state, metrics

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
