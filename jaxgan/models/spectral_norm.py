"""Spectral normalisation (Miyato et al., 2018) for either player's network.

It acts on a player's parameter pytree just before the network runs, so every model
family gets it without a change to its modules (``model.d_spectral_norm``,
``model.g_spectral_norm``). Each weight (every leaf with two or more axes: Dense
``[in, out]``, Conv ``[kh, kw, in, out]``, label embeddings) is read as the matrix
``M = W.reshape(-1, out)`` and divided by its largest singular value, estimated by power
iteration with persistent vectors, one iteration per training forward, as in the paper.
Gradients flow through ``sigma = v^T M u`` with ``u, v`` held constant. Biases and other
1-D leaves are left alone.

The implementations people compare against differ in the order of the iteration and in
what evaluation does (``model.spectral_norm_order``); from the same ``u`` their sigmas
differ by a few per cent:

* ``parametrization`` (the default): ``torch.nn.utils.parametrizations.spectral_norm``.
  Training: ``u <- n(M^T n(M u))``, then ``v = n(M u)``, ``sigma = v^T M u``.
  Evaluation: the same without the update. State: ``u``.
* ``legacy``: ``torch.nn.utils.spectral_norm``, which PyTorch-StudioGAN uses. Training:
  ``v = n(M u)``, ``u <- n(M^T v)``, ``sigma = v^T M u``: half an iteration behind, v
  comes from the previous u. Evaluation: ``sigma = v^T M u`` with the stored ``u`` and
  ``v``. State: ``{'u', 'v'}``.
* ``biggan``: BigGAN-PyTorch's ``SN`` (one singular value). Training as ``legacy``.
  Evaluation: one iteration from the stored ``u``, not kept. State: ``u``.

``n`` divides by the norm (plus 1e-12). The states live in the player's collections under
``'spectral_norm'``, are checkpointed with the run, and are identical on every device (a
deterministic function of the replicated weights). PyTorch's constructors differ in their
start: the parametrization runs 15 iterations at construction (``init(..., warmup=15)``),
the legacy one draws a random ``v`` too.
"""

from __future__ import annotations

import functools
import operator
from typing import Any

import jax
import jax.numpy as jnp
from flax import traverse_util

PyTree = Any
COLLECTION = "spectral_norm"
EPS = 1e-12
PARAMETRIZATION, LEGACY, BIGGAN = "parametrization", "legacy", "biggan"
ORDERS = (PARAMETRIZATION, LEGACY, BIGGAN)


def _normalize(v: jax.Array) -> jax.Array:
  return v / (jnp.linalg.norm(v) + EPS)


def _matrix(w: jax.Array) -> jax.Array:
  return w.reshape(-1, w.shape[-1])


def _weights(params: PyTree) -> dict[tuple[str, ...], jax.Array]:
  flat = traverse_util.flatten_dict(params)
  return {path: w for path, w in sorted(flat.items()) if getattr(w, "ndim", 0) >= 2}


def init(params: PyTree, key: jax.Array, order: str = PARAMETRIZATION, warmup: int = 0) -> PyTree:
  """Each weight's state, nested like the params: a random unit vector ``u`` (length
  ``out``; the ``legacy`` order also a random unit ``v`` of length ``rows``), then
  ``warmup`` training iterations with the weights as they are."""
  states = {}
  for i, (path, w) in enumerate(_weights(params).items()):
    k = jax.random.fold_in(key, i)
    u = _normalize(jax.random.normal(k, (w.shape[-1],)))
    if order == LEGACY:
      v = _normalize(jax.random.normal(jax.random.fold_in(k, 1), (_matrix(w).shape[0],)))
      u = {"u": u, "v": v}
    for _ in range(warmup):
      _, u = sigma(w, u, update=True, order=order)
    states[path] = u
  return traverse_util.unflatten_dict(states)


def sigma(
  w: jax.Array, state: Any, *, update: bool, order: str = PARAMETRIZATION
) -> tuple[jax.Array, Any]:
  """(sigma(W), the next state) in ``order`` (module docstring); ``update``: a training
  forward (the state moves one iteration); else evaluation."""
  m = _matrix(w)
  fixed = jax.lax.stop_gradient(m)
  state = jax.lax.stop_gradient(state)
  if order == PARAMETRIZATION:
    u = state
    if update:
      u = _normalize(fixed.T @ _normalize(fixed @ u))
    v = _normalize(fixed @ u)
    return v @ m @ u, u
  if order == LEGACY and not update:
    return state["v"] @ m @ state["u"], state
  u = state["u"] if order == LEGACY else state
  v = _normalize(fixed @ u)
  new_u = _normalize(fixed.T @ v)
  s = v @ m @ new_u
  if order == LEGACY:
    return s, {"u": new_u, "v": v}
  return s, new_u if update else u


def normalize(
  params: PyTree, states: PyTree, *, update: bool, order: str = PARAMETRIZATION
) -> tuple[PyTree, PyTree]:
  """(params with every weight divided by its sigma, the states as ``sigma`` left them)."""
  flat = traverse_util.flatten_dict(params)
  new_states = {}
  for path, w in _weights(params).items():
    state = functools.reduce(operator.getitem, path, states)
    s, new_states[path] = sigma(w, state, update=update, order=order)
    flat[path] = w / s
  return traverse_util.unflatten_dict(flat), traverse_util.unflatten_dict(new_states)
