r"""Stacked MNIST: the 1,000-mode collapse benchmark (VEEGAN, PacGAN), ten seeds in one program.

  python -m jaxgan.feature_nets.lenet --workdir=workdirs/lenet_mnist   # the digit classifier, once
  jaxgan-train --config=experiments/stacked_mnist.py --workdir=workdirs/stacked \
      --config.eval.feature_net=workdirs/lenet_mnist
  jaxgan-train --config=experiments/stacked_mnist.py:pacgan2 --workdir=workdirs/stacked_pacgan2 \
      --config.eval.feature_net=workdirs/lenet_mnist
  jaxgan-train --config=experiments/stacked_mnist.py:smoke --workdir=/tmp/stacked_smoke

MNIST is prepared offline from the raw idx files: set JAXGAN_MNIST_DIR.

The protocol of PacGAN's "VEEGAN experiment" (Lin et al. 2018, Table 2; released
code fjxmlzn/PacGAN, stacked_MNIST_experiments/VEEGAN_experiment), which
follows VEEGAN (Srivastava et al. 2017, Table 2):
  data      128,000 images of 28x28x3, each channel an MNIST digit drawn
            independently (``jaxgan.data.stacked``; here from MNIST's
            60,000 training digits, where PacGAN pooled train and test)
  metric    26,000 samples; jaxgan's LeNet reads each channel's digit; the
            modes hit (of 1,000) and KL(samples' mode histogram || uniform)
  training  Adam(2e-4, beta1 = 0.5), batch 64, two G updates per D update,
            50 epochs (100,000 steps), 10 seeds (``train.num_seeds=10``)
  nets      DCGAN at 28x28 (jaxgan's ``dcgan`` model, as experiments/mnist_dcgan.py
            with 3 output channels and a third D layer): G 100-d uniform noise ->
            dense 7x7x256 -> 5x5 transposed convs to 128 (stride 1), 64 (stride 2),
            3 (stride 2), tanh; D 5x5 stride-2 convs to 64, 128, 256 with batch norm
            after the first, LeakyReLU(0.2) -> one logit. PacGAN used carpedm20's
            DCGAN (G 2x2x512 -> 256 -> 128 -> 64 -> 3; D 64 -> 512).

Variants: ``[method]`` from ``jaxgan.methods`` (e.g. ``pacgan2``, ``r1``), and
``smoke`` (tiny nets, a few steps; tests).
"""

from jaxgan.config import base_config, unknown_variant
from jaxgan.methods import METHODS, apply_method

VARIANTS = ("smoke", *METHODS)  # and none: the 2014 GAN's losses


def get_config(variant: str = ""):
  c = base_config(model="dcgan", data="stacked_mnist")
  c.model.update(
    base=7, g_channels=(256, 128, 64), g_strides=(1, 2, 2), kernel=5, d_channels=(64, 128, 256)
  )
  c.noise.update(dim=100, distribution="uniform", low=-1.0, high=1.0)
  for opt in (c.optim.g, c.optim.d):
    opt.update(name="adam", lr=2e-4, b1=0.5, b2=0.999)
  c.train.update(
    steps=100_000,
    batch_size=64,
    g_steps=2,
    steps_per_call=10,
    log_every=500,
    checkpoint_every=5_000,
    num_seeds=10,
  )
  c.eval.update(metrics="stacked_mnist_modes,samples", every=10_000, num_samples=26_000)
  if variant == "smoke":
    c.data.size = 512
    c.model.update(g_channels=(16, 8, 8), d_channels=(8, 8, 8))
    c.train.update(
      steps=2, batch_size=16, steps_per_call=1, log_every=1, checkpoint_every=2, num_seeds=2
    )
    c.eval.update(metrics="samples", every=2, num_samples=64)
  elif variant:
    if variant not in METHODS:
      raise unknown_variant(__file__, variant, VARIANTS)
    apply_method(c, variant)
  return c
