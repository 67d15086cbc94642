r"""The MNIST GAN of Goodfellow et al. (2014): the paper's MLP nets and training rule.

  python -m jaxgan.main --config=experiments/mnist_gan.py --workdir=workdirs/mnist_gan
  python -m jaxgan.main --config=experiments/mnist_gan.py --workdir=workdirs/mnist_gan_125k \
      --config.train.steps=125000   # the paper's 250 epochs: Parzen 175 vs 148 at 30,000 (README)
  python -m jaxgan.main --config=experiments/mnist_gan.py:smoke --workdir=/tmp/mnist_gan_smoke

MNIST is prepared offline from the raw idx files: set JAXGAN_MNIST_DIR (or
--config.data.source_dir) to the directory holding them.

As in the authors' released pylearn2 config: G 100 -> ReLU 1200 -> ReLU 1200 ->
sigmoid 784 (weights U(+-0.05)); D maxout 240x5 -> maxout 240x5 -> 1 (weights
U(+-0.005)) with dropout keep 0.8 on D's input and 0.5 on its hidden layers;
100-d uniform noise of unit variance; batch 100; SGD, learning rate 0.1 divided
by 1.000004 every update (floor 1e-6), momentum rising linearly from 0.5 to 0.7
over 250 epochs of 500 updates; k = 1. Not reproduced: G's output bias
initialised from the data's pixel marginals.

Variants: ``adam`` swaps SGD for Adam(2e-4, beta1 = 0.5), which gets there in
far fewer steps on a CPU budget; ``smoke`` runs a few steps for tests.
"""

import math

from jaxgan.config import base_config


def get_config(variant: str = "default"):
  c = base_config(model="mnist_mlp", data="mnist")
  c.noise.update(dim=100, distribution="uniform", low=-math.sqrt(3), high=math.sqrt(3))
  c.loss.g = "non_saturating"
  for opt in (c.optim.g, c.optim.d):
    opt.update(name="sgd", lr=0.1, momentum=0.5, momentum_end=0.7, momentum_steps=250 * 500,
               schedule="exponential", decay_rate=1 / 1.000004, decay_steps=1, min_lr=1e-6)
  c.train.update(steps=30_000, batch_size=100, d_steps=1, g_steps=1, steps_per_call=50,
                 log_every=500, checkpoint_every=5_000)
  c.data.on_device = True
  c.eval.update(metrics="samples,interpolation,nearest_neighbours,loss_curves", every=5_000)

  if variant == "adam":
    for opt in (c.optim.g, c.optim.d):
      opt.update(name="adam", lr=2e-4, b1=0.5, b2=0.999, schedule="constant")
  elif variant == "smoke":
    c.model.update(g_hidden=(64, 64), d_units=(32, 32))
    c.train.update(steps=6, steps_per_call=3, log_every=3, checkpoint_every=3)
    c.eval.update(every=6, metrics="samples,interpolation,nearest_neighbours,loss_curves")
  elif variant != "default":
    raise ValueError(f"unknown variant {variant!r}; choose default, adam or smoke")
  return c
