"""Spectral normalisation (Miyato et al., 2018) for any discriminator.

It acts on D's parameter pytree just before D runs, so every model family gets it
without a change to its modules (``model.d_spectral_norm=True``). Each weight
(every leaf with two or more axes: Dense ``[in, out]``, Conv ``[kh, kw, in, out]``,
label embeddings) is read as the matrix ``M = W.reshape(-1, out)`` and divided by
its largest singular value, estimated by power iteration with a persistent
vector ``u`` per weight, one iteration per training step, as in the paper.
Gradients flow through ``sigma = v^T M u`` with ``u, v`` held constant
(as PyTorch's ``spectral_norm``). Biases and other 1-D leaves are left alone.

The ``u`` vectors are state: they live in D's collections under
``'spectral_norm'``, are checkpointed with the run, and are identical on every
device (they are a deterministic function of the replicated weights).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import traverse_util

PyTree = Any
COLLECTION = "spectral_norm"
EPS = 1e-12


def _normalize(v: jax.Array) -> jax.Array:
  return v / (jnp.linalg.norm(v) + EPS)


def _matrix(w: jax.Array) -> jax.Array:
  return w.reshape(-1, w.shape[-1])


def _weights(params: PyTree) -> dict[tuple[str, ...], jax.Array]:
  flat = traverse_util.flatten_dict(params)
  return {path: w for path, w in sorted(flat.items()) if getattr(w, "ndim", 0) >= 2}


def init(params: PyTree, key: jax.Array) -> PyTree:
  """A random unit vector ``u`` (length ``out``) per weight, nested like the params."""
  return traverse_util.unflatten_dict(
    {
      path: _normalize(jax.random.normal(jax.random.fold_in(key, i), (w.shape[-1],)))
      for i, (path, w) in enumerate(_weights(params).items())
    }
  )


def sigma(w: jax.Array, u: jax.Array, *, update: bool) -> tuple[jax.Array, jax.Array]:
  """(sigma(W), new u). ``update``: one power iteration first (training); else reuse u."""
  m = _matrix(w)
  fixed = jax.lax.stop_gradient(m)
  u = jax.lax.stop_gradient(u)
  if update:
    u = _normalize(fixed.T @ _normalize(fixed @ u))
  v = _normalize(fixed @ u)
  return v @ m @ u, u


def normalize(params: PyTree, us: PyTree, *, update: bool) -> tuple[PyTree, PyTree]:
  """(params with every weight divided by its sigma, the (updated) ``u`` vectors)."""
  flat = traverse_util.flatten_dict(params)
  flat_us = traverse_util.flatten_dict(us)
  new_us = {}
  for path, w in _weights(params).items():
    s, new_us[path] = sigma(w, flat_us[path], update=update)
    flat[path] = w / s
  return traverse_util.unflatten_dict(flat), traverse_util.unflatten_dict(new_us)
