"""Pairwise squared Euclidean distances, shared by the metrics and figures that need them."""

from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.jit
def sq_dists(a: jax.Array, b: jax.Array) -> jax.Array:
  """[len(a), len(b)] squared distances; full-precision matmul (no TF32 on GPUs), clamped at 0.

  Both sets are shifted by ``b``'s mean first: |a|^2 - 2ab + |b|^2 loses the
  distances to cancellation when a common offset is large against the spread.
  """
  centre = jnp.mean(b, axis=0)
  a, b = a - centre, b - centre
  cross = jnp.matmul(a, b.T, precision=jax.lax.Precision.HIGHEST)
  return jnp.maximum(jnp.sum(a * a, 1)[:, None] - 2.0 * cross + jnp.sum(b * b, 1)[None, :], 0.0)
