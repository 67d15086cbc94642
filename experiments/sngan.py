r"""SNGAN (Miyato et al. 2018) with its ResNet, as PyTorch-StudioGAN trains it on CIFAR-10.

  jaxgan-train --config=experiments/sngan.py:cifar --workdir=workdirs/sngan_cifar \
      --config.eval.inception_weights=/path/to/pt_inception-2015-12-05.npz
  jaxgan-train --config=experiments/sngan.py:cifar_uncond --workdir=workdirs/sngan_cifar_uncond
  jaxgan-train --config=experiments/sngan.py:smoke --workdir=/tmp/sngan_smoke

Your own images, a folder or .zip (docs/data.md), at 32x32:

  jaxgan-prepare --source=~/data/faces.zip --resolution=32     # once; checks every image
  jaxgan-train --config=experiments/sngan.py:folder32 --workdir=workdirs/sngan_faces32 \
      --config.data.source=~/data/faces.zip --config.eval.inception_weights=inception_fid.npz

``cifar`` is StudioGAN's ``src/configs/CIFAR10/SNGAN.yaml`` over its ``config.py`` defaults:
the ``resnet`` backbone at 32x32 with g/d_conv_dim 64 (``model.name=sngan_resnet``; G
4,304,387 and D 1,055,105 parameters, as StudioGAN's), z of 128 from N(0, I), G conditioned by
class-conditional batch norm and D by projection, spectral norm on every D layer by torch's
legacy ``spectral_norm`` (``spectral_norm_order='legacy'``) and none in G; hinge loss;
Adam(lr 2e-4, betas (0.5, 0.999), eps 1e-6) for both; batch 64; 5 D updates per G update
(each on its own real batch), 100,000 steps; no EMA of G. ``cifar_uncond`` is the same without
labels. CIFAR-10 is read from cifar-10-python.tar.gz in $JAXGAN_CIFAR10_DIR, prepared once
without TensorFlow (docs/data.md). docs/sngan.md lists where the run differs from StudioGAN's
(no random horizontal flips of the reals; one power iteration per D update).

``folder32`` is ``cifar_uncond`` on an image folder prepared at 32x32
(``--config.model.conditional=True``: ``cifar``'s conditioning on the folder's labels). The
port has the ``resnet`` backbone at 32x32 only: StudioGAN defines its 64 to 512 forms (other
block counts), which jaxgan does not build, so ``folder64``, ``folder128`` and ``folder256``
are refused in one line naming what to use (experiments/stylegan2.py's ``folder64`` and
``folder256``, experiments/image_folder_dcgan.py:r64); a folder prepared at another resolution
than 32 is refused too (``data.net_resolution``).

``smoke`` is tiny (g/d_conv_dim 2, batch 8, 2 D updates per step, 4 steps) on MNIST padded to
32x32 (JAXGAN_MNIST_DIR), for tests and a first look on a CPU.
"""

from jaxgan.config import base_config, small_mnist, unknown_variant

VARIANTS = ("cifar", "cifar_uncond", "folder32", "mnist", "stacked_mnist", "smoke")
# The port builds StudioGAN's 32x32 net only: a folder64 or folder256 gets this in its one line.
VARIANT_CHOICES = (
  f"{', '.join(VARIANTS)} (folder32 only: jaxgan builds StudioGAN's resnet at 32x32, "
  "not its 64 to 256 forms; at 64 or 256 use experiments/stylegan2.py:folder64 or :folder256, or "
  "experiments/image_folder_dcgan.py:r64)"
)


def get_config(variant: str = "cifar"):
  if variant in ("cifar", "cifar_uncond", "default"):
    c = base_config(model="sngan_resnet", data="cifar10")
  elif variant == "folder32":
    c = base_config(model="sngan_resnet", data="image_folder")
    c.data.update(resolution=32, net_resolution=32)
  elif variant in ("mnist", "stacked_mnist", "smoke"):
    data = "stacked_mnist" if variant == "stacked_mnist" else "mnist"
    c = base_config(model="sngan_resnet", data=data)
    c.data.update(pad=2)
  else:
    raise unknown_variant(__file__, variant, VARIANTS)
  c.model.update(
    conditional=variant not in ("cifar_uncond", "folder32", "stacked_mnist"),
    d_spectral_norm=True,
    spectral_norm_order="legacy",
  )
  c.noise.update(dim=128, distribution="normal")
  c.loss.update(d="hinge", g="hinge")
  for opt in (c.optim.g, c.optim.d):
    opt.update(name="adam", lr=2e-4, b1=0.5, b2=0.999, eps=1e-6)
  c.train.update(
    steps=100_000, batch_size=64, d_steps=5, g_steps=1, steps_per_call=10, log_every=500,
    checkpoint_every=5_000,
  )  # fmt: skip
  c.eval.update(metrics="samples,fid,is", every=10_000, num_samples=50_000)
  if variant == "folder32":  # IS measures ImageNet classes: not a folder's images
    c.eval.metrics = "samples,fid"
  if variant in ("mnist", "stacked_mnist"):
    small_mnist(c, stacked=variant == "stacked_mnist")
    c.model.update(g_conv_dim=16, d_conv_dim=32)
  if variant == "smoke":
    c.model.update(g_conv_dim=2, d_conv_dim=2)
    c.noise.dim = 8
    c.train.update(
      steps=4, batch_size=8, d_steps=2, steps_per_call=2, log_every=2, checkpoint_every=2
    )
    c.eval.update(metrics="samples", every=4, num_samples=64)
  return c
