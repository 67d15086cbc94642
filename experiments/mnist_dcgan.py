r"""The textbook's convolutional MNIST GAN, done as DCGAN (Radford et al., 2015).

  jaxgan-train --config=experiments/mnist_dcgan.py --workdir=workdirs/mnist_dcgan
  jaxgan-train --config=experiments/mnist_dcgan.py:wgan_gp --workdir=workdirs/mnist_dcgan_wgan_gp
  jaxgan-train --config=experiments/mnist_dcgan.py:sn_hinge --workdir=workdirs/mnist_dcgan_sn_hinge
  jaxgan-train --config=experiments/mnist_dcgan.py:smoke --workdir=/tmp/mnist_dcgan_smoke

MNIST is prepared offline from the raw idx files: set JAXGAN_MNIST_DIR.

G: 100-d uniform noise -> dense 7x7x256 -> BN, ReLU -> 5x5 transposed convs to
128 (stride 1), 64 (stride 2) with BN + ReLU -> 1 channel (stride 2), tanh.
D: 5x5 stride-2 convs to 64 (no BN) and 128 (BN), LeakyReLU(0.2) -> one logit.
N(0, 0.02) weights; Adam(2e-4, beta1 = 0.5); batch 64. The layer sizes are the
textbook's (the TensorFlow DCGAN tutorial); the rules are DCGAN's.

Variants (same nets and steps; D without batch norm, which both methods rule out):
  wgan_gp   Wasserstein loss + gradient penalty 10 (Gulrajani et al. 2017), with
            one critic update per G update and the two-time-scale rule of Heusel
            et al. 2017 (D 4e-4, G 1e-4, Adam beta = (0.5, 0.9)) instead of k = 5,
            which would cost 5x the D compute on a CPU
  sn_hinge  hinge loss + spectral normalisation of D (Miyato et al. 2018),
            DCGAN's Adam(2e-4, 0.5)
  smoke     tiny nets, a few steps (tests)
"""

from jaxgan.config import base_config, unknown_variant

VARIANTS = ("default", "wgan_gp", "sn_hinge", "smoke")


def get_config(variant: str = "default"):
  c = base_config(model="dcgan", data="mnist")
  c.model.update(
    base=7, g_channels=(256, 128, 64), g_strides=(1, 2, 2), kernel=5, d_channels=(64, 128)
  )
  c.noise.update(dim=100, distribution="uniform", low=-1.0, high=1.0)
  for opt in (c.optim.g, c.optim.d):
    opt.update(name="adam", lr=2e-4, b1=0.5, b2=0.999)
  c.train.update(
    steps=6_000, batch_size=64, steps_per_call=10, log_every=200, checkpoint_every=1_000
  )
  c.data.on_device = True
  c.eval.update(metrics="samples,interpolation,nearest_neighbours,loss_curves", every=1_000)

  if variant == "wgan_gp":
    c.model.d_batch_norm = False
    c.loss.update(d="wasserstein", d_penalties="gp:10")  # loss.g=auto: wasserstein
    c.optim.d.update(lr=4e-4, b1=0.5, b2=0.9)
    c.optim.g.update(lr=1e-4, b1=0.5, b2=0.9)
  elif variant == "sn_hinge":
    c.model.update(d_batch_norm=False, d_spectral_norm=True)
    c.loss.d = "hinge"  # loss.g=auto: hinge
  elif variant == "smoke":
    c.model.update(g_channels=(32, 16, 8), d_channels=(8, 16))
    c.train.update(steps=4, batch_size=16, steps_per_call=2, log_every=2, checkpoint_every=2)
    c.eval.update(every=4)
  elif variant != "default":
    raise unknown_variant(__file__, variant, VARIANTS)
  return c
