"""What a discriminator does with its batch, read off the module itself rather than a flag.

Two facts decide how D may be called and regularised:
  * ``batch_stats``: D normalises with batch statistics in training (batch norm):
    its output for one example depends on the others and on whether real and fake
    share a call, and a gradient "per example" is not one. It has a ``batch_stats``
    collection, which is how it is recognised.
  * ``mixes_examples``: D's output for one example depends on other examples of its
    batch at all (batch statistics, or a layer such as minibatch standard deviation).
    Real and fake must then be scored in separate calls. A layer that mixes examples
    without batch statistics says so by sowing into the ``MIXES_EXAMPLES``
    collection (``mark_mixes_examples``).
Both are found by tracing D once abstractly (``jax.eval_shape``): nothing runs.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

MIXES_EXAMPLES = "mixes_examples"


def mark_mixes_examples(module: nn.Module) -> None:
  """Called by a layer whose output for one example depends on other examples."""
  module.sow(MIXES_EXAMPLES, "layer", jnp.ones((), jnp.bool_))


@dataclasses.dataclass(frozen=True)
class BatchTraits:
  """How D treats the examples of its batch (module docstring)."""

  batch_stats: bool = False
  mixes_examples: bool = False


def discriminator_traits(
  d: nn.Module, x_shape: tuple[int, ...], num_classes: int, axis_name: str | None = None
) -> BatchTraits:
  """D's ``BatchTraits``, from one abstract trace of ``init`` and a training-mode ``apply``
  on a batch of two inputs of shape ``x_shape`` (labels when ``num_classes``);
  ``axis_name``: the device axis D's batch norm averages over, bound for the trace."""
  x = jnp.zeros((2, *x_shape), jnp.float32)
  y = jnp.zeros((2,), jnp.int32) if num_classes else None
  key = jax.random.PRNGKey(0)

  def collections():
    variables = d.init({"params": key, "dropout": key}, x, y, train=False)
    _, updated = d.apply(variables, x, y, train=True, rngs={"dropout": key}, mutable=True)
    return dict.fromkeys(updated, True)

  if axis_name is not None:  # a one-device axis, so cross-device statistics can be traced
    over_devices = jax.vmap(lambda _: collections(), axis_name=axis_name)
    found = jax.eval_shape(over_devices, jnp.zeros((1,)))
  else:
    found = jax.eval_shape(collections)
  batch_stats = "batch_stats" in found
  return BatchTraits(batch_stats=batch_stats, mixes_examples=batch_stats or MIXES_EXAMPLES in found)
