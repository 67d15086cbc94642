r"""DCGAN on CelebA at 64x64: the pytorch/examples DCGAN (nz 100, ngf = ndf = 64, 4x4 kernels).

  pip install -e '.[tf]' && tfds build celeb_a --file_format=array_record   # once, online
  jaxgan-train --config=experiments/celeba_dcgan.py --workdir=workdirs/celeba_dcgan

Images are centre-cropped to 108x108 and resized to 64x64 on the host.
"""

from jaxgan.config import base_config, unknown_variant

VARIANTS = ("default",)


def get_config(variant: str = "default"):
  c = base_config(model="dcgan", data="celeb_a")
  c.model.update(
    base=4,
    g_channels=(512, 256, 128, 64),
    g_strides=(2, 2, 2, 2),
    kernel=4,
    d_channels=(64, 128, 256, 512),
  )
  c.noise.update(dim=100, distribution="normal")
  for opt in (c.optim.g, c.optim.d):
    opt.update(name="adam", lr=2e-4, b1=0.5, b2=0.999)
  c.train.update(
    steps=30_000, batch_size=128, steps_per_call=5, log_every=100, checkpoint_every=2_000
  )
  c.eval.update(metrics="samples,interpolation,loss_curves", every=2_000)
  if variant != "default":
    raise unknown_variant(__file__, variant, VARIANTS)
  return c
