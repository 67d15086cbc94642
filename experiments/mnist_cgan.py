r"""Conditional GAN on MNIST: the extension Goodfellow et al. (2014) name first.

  python -m jaxgan.main --config=experiments/mnist_cgan.py --workdir=workdirs/mnist_cgan
  python -m jaxgan.main --config=experiments/mnist_cgan.py:mlp --workdir=workdirs/mnist_cgan_mlp

Labels reach G as a one-hot vector beside z and D through a projection term
<embed(y), h> added to its logit (Miyato & Koyama, 2018). The default is the
DCGAN of experiments/mnist_dcgan.py; ``mlp`` conditions the paper's MLP nets.
The sample grid has one row per digit class.
"""

from jaxgan.config import base_config


def get_config(variant: str = "default"):
  if variant in ("default", "smoke"):
    c = base_config(model="dcgan", data="mnist")
    c.model.update(base=7, g_channels=(256, 128, 64), g_strides=(1, 2, 2), kernel=5,
                   d_channels=(64, 128))
    for opt in (c.optim.g, c.optim.d):
      opt.update(name="adam", lr=2e-4, b1=0.5, b2=0.999)
    c.train.update(steps=6_000, batch_size=64, steps_per_call=10, log_every=200,
                   checkpoint_every=1_000)
  elif variant == "mlp":
    c = base_config(model="mnist_mlp", data="mnist")
    for opt in (c.optim.g, c.optim.d):
      opt.update(name="adam", lr=2e-4, b1=0.5, b2=0.999)
    c.train.update(steps=20_000, batch_size=100, steps_per_call=50, log_every=500,
                   checkpoint_every=5_000)
  else:
    raise ValueError(f"unknown variant {variant!r}; choose default, mlp or smoke")
  c.model.conditional = True
  c.noise.update(dim=100, distribution="uniform", low=-1.0, high=1.0)
  c.data.on_device = True
  c.eval.update(metrics="samples,interpolation,nearest_neighbours,loss_curves", every=1_000)
  if variant == "smoke":
    c.model.update(g_channels=(32, 16, 8), d_channels=(8, 16))
    c.train.update(steps=4, batch_size=16, steps_per_call=2, log_every=2, checkpoint_every=2)
    c.eval.update(every=4)
  return c
