"""The small image families that ``docs/results/families_mnist.md`` compares with the DCGAN:
their data, conditioning, evaluation and parameter counts, which pin the published table."""

from __future__ import annotations

import jax
import pytest

from conftest import experiment
from jaxgan.config import validate
from jaxgan.core.gan import build_gan, init_state
from jaxgan.data.spec import DataSpec
from jaxgan.run.summary import count_params

# (G, D) parameters of each family's small nets, conditional on MNIST (10 classes, 32x32x1).
# On Stacked MNIST (unconditional, 32x32x3) they are SNGAN 368,771 / 264,769, BigGAN 277,892 /
# 269,890 and R3GAN 145,600 / 141,568; tracing a net costs seconds, so only one of each is counted.
COUNTS = {
  "sngan.py:mnist": (374_529, 264_129),
  "biggan.py:mnist": (301_634, 269_250),
  "r3gan.py:mnist": (146_656, 146_112),
}
VARIANTS = sorted(
  [*COUNTS, "sngan.py:stacked_mnist", "biggan.py:stacked_mnist", "r3gan.py:stacked_mnist"]
)


@pytest.mark.parametrize("variant", VARIANTS)
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
  if variant not in COUNTS:
    return
  data = DataSpec((32, 32, 1), 10, is_image=True)
  state = jax.eval_shape(lambda: init_state(build_gan(c, data), jax.random.PRNGKey(0)))
  assert (count_params(state.g.params), count_params(state.d.params)) == COUNTS[variant]
