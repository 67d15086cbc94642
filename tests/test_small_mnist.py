"""The small image families that ``docs/results/families_mnist.md`` compares with the DCGAN:
their data, conditioning, evaluation and parameter counts, which pin the published table."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from conftest import experiment
from jaxgan.config import validate
from jaxgan.core.gan import build_gan, init_state
from jaxgan.data.spec import DataSpec

# (G, D) parameters of each family's small nets: conditional on MNIST (10 classes, 32x32x1),
# unconditional on Stacked MNIST (32x32x3).
COUNTS = {
  "sngan.py:mnist": (374_529, 264_129),
  "sngan.py:stacked_mnist": (368_771, 264_769),
  "biggan.py:mnist": (301_634, 269_250),
  "biggan.py:stacked_mnist": (277_892, 269_890),
  "r3gan.py:mnist": (146_656, 146_112),
  "r3gan.py:stacked_mnist": (145_600, 141_568),
}


def _count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("variant", sorted(COUNTS))
def test_small_variant_data_evaluation_and_parameter_counts(variant):
  c = validate(experiment(variant))
  stacked = variant.endswith("stacked_mnist")
  assert (c.data.name, c.data.pad, c.train.batch_size) == (
    "stacked_mnist" if stacked else "mnist",
    2,
    64,
  )
  assert c.model.conditional is not stacked
  assert (c.eval.every, c.train.checkpoint_every) == (0, 250)
  assert c.eval.metrics == ("samples,stacked_mnist_modes" if stacked else "samples,fid,fid_intra")
  assert c.eval.num_samples == (26_000 if stacked else 10_000)
  data = DataSpec((32, 32, 3 if stacked else 1), 0 if stacked else 10, is_image=True)
  state = jax.eval_shape(lambda: init_state(build_gan(c, data), jax.random.PRNGKey(0)))
  assert (_count(state.g.params), _count(state.d.params)) == COUNTS[variant]
