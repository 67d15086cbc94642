r"""Mode coverage on the 2-D mixtures: a ring of 8 Gaussians and a 5x5 grid of 25.

  jaxgan-train --config=experiments/mixtures_2d.py:ring --workdir=workdirs/ring_2d
  jaxgan-train --config=experiments/mixtures_2d.py:grid --workdir=workdirs/grid_2d
  jaxgan-train --config=experiments/mixtures_2d.py:grid,wgan_gp --workdir=workdirs/grid_wgan_gp

The mode-collapse benchmarks of Unrolled GANs (Metz et al.), VEEGAN and PacGAN.
Metrics on 2,500 samples: modes covered (>= 20 high-quality samples), the share
of high-quality samples (within 3 std of a mode) and the KL of the mode
histogram from uniform; the figure shows samples over the data.

Variants are ``<data>[,<method>]``: data ``ring`` or ``grid`` (or ``smoke``), and
one method of the GAN zoo (``jaxgan.methods``: wgan_gp, r1, sn_hinge, lsgan,
pacgan2, dragan, r3gan), each changing only what the method is. Without one:
the 2014 GAN with the non-saturating loss; MLPs 128x3, Adam(1e-3, 0.5).

Ten seeds in one program (jaxgan.core.population), reported as mean +- std:
  jaxgan-train --config=experiments/mixtures_2d.py:grid,r1 --workdir=workdirs/grid_r1_s10 \
      --config.train.num_seeds=10
"""

from jaxgan.config import base_config, unknown_variant
from jaxgan.methods import METHODS, apply_method

DATA = ("ring", "grid", "smoke")
VARIANTS = tuple(d + tail for d in DATA for tail in ("", *(f",{m}" for m in METHODS)))
VARIANT_CHOICES = (
  f"{', '.join(DATA)}, each optionally followed by ,<method> with <method> one of "
  f"{', '.join(METHODS)}"
)


def get_config(variant: str = "ring"):
  if variant not in VARIANTS:
    raise unknown_variant(__file__, variant, VARIANTS, VARIANT_CHOICES)
  data_name, _, method = variant.partition(",")
  data = "grid_2d" if data_name == "grid" else "ring_2d"
  c = base_config(model="mlp", data=data)
  c.noise.update(dim=16, distribution="normal")
  c.model.update(
    g_hidden=(128, 128, 128),
    g_activations=("relu",) * 3,
    g_output="linear",
    d_hidden=(128, 128, 128),
    d_activations=("leaky_relu",) * 3,
  )
  for opt in (c.optim.g, c.optim.d):
    opt.update(name="adam", lr=1e-3, b1=0.5, b2=0.999)
  c.train.update(
    steps=20_000,
    batch_size=512,
    d_steps=1,
    steps_per_call=250,
    log_every=2_000,
    checkpoint_every=5_000,
    ema_decay=0.0,
  )
  c.eval.update(metrics="mode_coverage,mixture_2d", every=5_000, num_samples=2_500)
  if method:
    apply_method(c, method)
  if data_name == "smoke":
    c.train.update(steps=20, steps_per_call=10, log_every=10, checkpoint_every=20)
    c.eval.update(every=20)
  return c
