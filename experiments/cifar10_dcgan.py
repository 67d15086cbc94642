r"""DCGAN on CIFAR-10 (32x32 RGB).

  export JAXGAN_CIFAR10_DIR=~/cifar   # holds cifar-10-python.tar.gz, from the page below
  jaxgan-train --config=experiments/cifar10_dcgan.py --workdir=workdirs/cifar10_dcgan

The first run prepares CIFAR-10 offline, without TensorFlow, from the official tarball
(https://www.cs.toronto.edu/~kriz/cifar.html; docs/data.md).
G: z -> 4x4x512 -> transposed 4x4 convs, stride 2, to 256, 128 -> 3 (tanh);
D: 4x4 stride-2 convs 64, 128, 256 -> logit. Adam(2e-4, beta1 = 0.5), batch 128.
Variant ``conditional`` uses the labels; ``smoke`` is tiny, for tests on mock data.
"""

from jaxgan.config import base_config, unknown_variant

VARIANTS = ("default", "conditional", "smoke")


def get_config(variant: str = "default"):
  c = base_config(model="dcgan", data="cifar10")
  c.model.update(
    base=4, g_channels=(512, 256, 128), g_strides=(2, 2, 2), kernel=4, d_channels=(64, 128, 256)
  )
  c.noise.update(dim=100, distribution="normal")
  for opt in (c.optim.g, c.optim.d):
    opt.update(name="adam", lr=2e-4, b1=0.5, b2=0.999)
  c.train.update(
    steps=50_000, batch_size=128, steps_per_call=10, log_every=200, checkpoint_every=2_000
  )
  c.eval.update(metrics="samples,interpolation,nearest_neighbours,loss_curves", every=2_000)
  if variant == "conditional":
    c.model.conditional = True
  elif variant == "smoke":
    c.model.update(g_channels=(16, 8, 4), d_channels=(4, 8, 8))
    c.train.update(steps=2, batch_size=8, steps_per_call=1, log_every=1, checkpoint_every=2)
    c.eval.update(every=2)
  elif variant != "default":
    raise unknown_variant(__file__, variant, VARIANTS)
  return c
