r"""Conditional GAN on MNIST: the extension Goodfellow et al. (2014) name first.

  jaxgan-train --config=experiments/mnist_cgan.py --workdir=workdirs/mnist_cgan
  jaxgan-train --config=experiments/mnist_cgan.py:mlp --workdir=workdirs/mnist_cgan_mlp

Labels reach G as a one-hot vector beside z and D through a projection term
<embed(y), h> added to its logit (Miyato & Koyama, 2018). The default is the
DCGAN of experiments/mnist_dcgan.py; ``mlp`` conditions the paper's MLP nets.
The sample grid has one row per digit class.
"""

import os

from jaxgan.config import base_config, load_config, unknown_variant

VARIANTS = ("default", "mlp", "smoke")


def get_config(variant: str = "default"):
  if variant in ("default", "smoke"):  # mnist_dcgan's nets and schedule, plus the labels
    c = load_config(os.path.join(os.path.dirname(__file__), f"mnist_dcgan.py:{variant}"))
  elif variant == "mlp":
    c = base_config(model="mnist_mlp", data="mnist")
    for opt in (c.optim.g, c.optim.d):
      opt.update(name="adam", lr=2e-4, b1=0.5, b2=0.999)
    c.train.update(
      steps=20_000, batch_size=100, steps_per_call=50, log_every=500, checkpoint_every=5_000
    )
    c.noise.update(dim=100, distribution="uniform", low=-1.0, high=1.0)
    c.data.on_device = True
    c.eval.update(metrics="samples,interpolation,nearest_neighbours,loss_curves", every=1_000)
  else:
    raise unknown_variant(__file__, variant, VARIANTS)
  c.model.conditional = True
  return c
