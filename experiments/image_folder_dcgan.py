r"""DCGAN on a folder or .zip of your own images, at 32x32 (``r32``) or 64x64 (``r64``).

  jaxgan-prepare --source=~/data/faces.zip --resolution=64     # once; prints the overrides
  jaxgan-train --config=experiments/image_folder_dcgan.py:r64 --workdir=workdirs/faces_64 \
      --config.data.source=~/data/faces.zip

Training prepares the source on first use too (docs/data.md: labels, crops, bad files).
Add ``--config.data.xflip=True`` to double the data with mirror images,
``--config.data.channels=1`` for grey images, ``--config.model.conditional=True`` to use
the labels. r64 is the pytorch/examples DCGAN (nz 100, ngf = ndf = 64, 4x4 kernels); r32
drops its first G and last D stage. ``smoke`` is 16x16 and tiny, for tests. Each sets
``data.net_resolution`` to its side, so a folder prepared at another resolution is refused in
one line before anything is prepared; StyleGAN2, SNGAN and BigGAN on folders:
experiments/stylegan2.py (``folder32``, ``folder64``, ``folder256``), experiments/sngan.py and
experiments/biggan.py (``folder32``).
"""

from jaxgan.config import base_config, unknown_variant

VARIANTS = ("r32", "r64", "smoke")


def get_config(variant: str = "r64"):
  if variant not in VARIANTS and variant != "default":
    raise unknown_variant(__file__, variant, VARIANTS)
  c = base_config(model="dcgan", data="image_folder")
  c.model.update(
    base=4,
    g_channels=(512, 256, 128, 64),
    g_strides=(2, 2, 2, 2),
    kernel=4,
    d_channels=(64, 128, 256, 512),
  )
  c.data.resolution = 64
  if variant == "r32":
    c.model.update(g_channels=(256, 128, 64), g_strides=(2, 2, 2), d_channels=(64, 128, 256))
    c.data.resolution = 32
  c.noise.update(dim=100, distribution="normal")
  for opt in (c.optim.g, c.optim.d):
    opt.update(name="adam", lr=2e-4, b1=0.5, b2=0.999)
  c.train.update(
    steps=30_000, batch_size=128, steps_per_call=5, log_every=100, checkpoint_every=2_000
  )
  c.eval.update(metrics="samples,interpolation,loss_curves", every=2_000)
  if variant == "smoke":
    c.data.resolution = 16
    c.model.update(g_channels=(8, 4), g_strides=(2, 2), d_channels=(4, 8))
    c.noise.dim = 8
    c.train.update(steps=2, batch_size=4, steps_per_call=1, log_every=1, checkpoint_every=2)
    c.eval.update(metrics="samples", every=2)
  c.data.net_resolution = c.data.resolution
  return c
