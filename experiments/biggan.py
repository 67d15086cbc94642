r"""BigGAN (Brock et al. 2019) for 32x32 images, as PyTorch-StudioGAN trains it on CIFAR-10.

  jaxgan-train --config=experiments/biggan.py:cifar --workdir=workdirs/biggan_cifar \
      --config.eval.inception_weights=/path/to/pt_inception-2015-12-05.npz
  jaxgan-train --config=experiments/biggan.py:cifar_ortho --workdir=workdirs/biggan_cifar_ortho
  jaxgan-train --config=experiments/biggan.py:cifar_biggan_pytorch --workdir=workdirs/biggan_pt
  jaxgan-train --config=experiments/biggan.py:smoke --workdir=/tmp/biggan_smoke

Your own images, a folder or .zip (docs/data.md), at 32x32:

  jaxgan-prepare --source=~/data/faces.zip --resolution=32     # once; checks every image
  jaxgan-train --config=experiments/biggan.py:folder32 --workdir=workdirs/biggan_faces32 \
      --config.data.source=~/data/faces.zip --config.eval.inception_weights=inception_fid.npz

``cifar`` is StudioGAN's ``src/configs/CIFAR10/BigGAN.yaml`` over its ``config.py`` defaults:
the ``big_resnet`` backbone at 32x32 with g/d_conv_dim 96 (``model.name=biggan``; G 9,416,196
and D 2,415,170 parameters, as StudioGAN's), z of 80 from N(0, I) split into 4 chunks of 20, a
shared class embedding of 128, class-conditional batch norm in G, self-attention after G's
second and D's first block, projection D, spectral norm on both nets by torch's legacy
``spectral_norm`` (``spectral_norm_order='legacy'``); hinge loss; Adam(lr 2e-4, betas (0.5,
0.999), eps 1e-6) for both; batch 64; 5 D updates per G update, 100,000 steps; an EMA of G
with decay 0.9999 that averages its batch-norm running statistics too
(``train.ema_buffers='average'``, as StudioGAN's ``Ema`` lerps its buffers), started at step
1,000 as StudioGAN's ``g_ema_start: 1000`` (``train.ema_start=1000``: a copy of G, buffers
included, after each of steps 0-999; StudioGAN counts steps from 0 too). CIFAR-10 is read
from cifar-10-python.tar.gz in $JAXGAN_CIFAR10_DIR (docs/data.md). docs/biggan.md lists
where the run differs from StudioGAN's.

``cifar_ortho`` adds BigGAN's orthogonal regularization of G at BigGAN's strength 1e-4
(``loss.g_penalties='ortho:1e-4'``; StudioGAN has the function but its configs leave it off).

``cifar_biggan_pytorch`` is BigGAN-PyTorch's ``scripts/launch_cifar_ema.sh`` over its
``utils.py`` defaults: ``arch[32]`` with G_ch = D_ch = 64, i.e. 256 channels in every G and D
block (``g_conv_dim=64``, ``d_conv_dim=128``: jaxgan's G has 4x, D 2x), no attention
(``G_attn 0``, ``D_attn 0``), no shared embedding and no hierarchical z (``G_shared``,
``hier`` off: G's class-conditional batch norms take per-class gain and bias tables, all of z,
128 from N(0, I), goes to the first linear map), batch norm eps 1e-5, D's pre-activation
shortcuts on the unrectified input, N(0, 0.02) weights (``--G_init N02 --D_init N02``),
projection D, BigGAN-PyTorch's ``SN`` on every conv and linear of both nets and D's embedding
(``spectral_norm_order='biggan'``; not on G's class tables); G 4,304,387 and D 4,207,361
parameters, as its modules (``jaxgan.models.biggan.VARIANTS['biggan_pytorch']``). Hinge loss;
Adam(lr 2e-4, betas (0.0, 0.999), eps 1e-8) for both; batch 50; 4 D updates per G update; 500
epochs of 50,000 images at 200 per G step (50 x 4 D steps) = 125,000 steps; an EMA of G with
decay 0.9999 that averages its running statistics too, used for sampling (``--ema --use_ema``),
started as ``--ema_start 1000``: BigGAN-PyTorch counts iterations from 1 and copies G while
``itr < 1000``, so its itr 1,000, the first averaged, is jaxgan's step 999
(``train.ema_start=999``); checkpoints every 2,000 steps, FID/IS every 5,000. What jaxgan does
not follow: its sampling (``G_eval_mode`` off: BigGAN-PyTorch samples, for IS/FID too, with G in
training mode, so batch statistics and a moving ``u``; jaxgan samples with running statistics
and the stored ``u``); ``--parallel`` on two GPUs (DataParallel: each GPU's batch norm sees its
own 25 images; jaxgan normalises over the whole batch); G's ``u`` and running statistics move
once per step, in G's update (BigGAN-PyTorch's G is in training mode when it makes D's fakes
too, 5 moves per step); spectral norm divides by ``||.|| + 1e-12``, not ``max(||.||, 1e-8)``;
``--num_best_copies``/``--num_save_copies``; the seed's random numbers.

``folder32`` is ``cifar`` (its EMA start included) on an image folder prepared at 32x32,
unconditional (no shared embedding, no projection) unless ``--config.model.conditional=True``
uses the folder's labels. The port has the ``big_resnet`` backbone at 32x32 only: StudioGAN
defines its 64 to 512 forms (other block counts, attention elsewhere), which jaxgan does not
build, so ``folder64``, ``folder128`` and ``folder256`` are refused in one line naming what to
use (experiments/stylegan2.py's ``folder64`` and ``folder256``,
experiments/image_folder_dcgan.py:r64); a folder prepared at another resolution than 32 is
refused too (``data.net_resolution``).

``smoke`` is tiny (g_conv_dim 2, d_conv_dim 4, z of 8, shared embedding of 4, batch 8, 2 D
updates per step, 4 steps) on MNIST padded to 32x32 (JAXGAN_MNIST_DIR), for tests and a first
look on a CPU.
"""

from jaxgan.config import base_config, small_mnist, unknown_variant
from jaxgan.models.biggan import VARIANTS as NETS

VARIANTS = (
  "cifar", "cifar_ortho", "cifar_biggan_pytorch", "folder32", "mnist", "stacked_mnist", "smoke"
)  # fmt: skip
# The port builds StudioGAN's 32x32 net only: a folder64 or folder256 gets this in its one line.
VARIANT_CHOICES = (
  f"{', '.join(VARIANTS)} (folder32 only: jaxgan builds StudioGAN's big_resnet at 32x32, "
  "not its 64 to 256 forms; at 64 or 256 use experiments/stylegan2.py:folder64 or :folder256, or "
  "experiments/image_folder_dcgan.py:r64)"
)


def get_config(variant: str = "cifar"):
  if variant in ("cifar", "cifar_ortho", "cifar_biggan_pytorch", "default"):
    c = base_config(model="biggan", data="cifar10")
  elif variant == "folder32":
    c = base_config(model="biggan", data="image_folder")
    c.data.update(resolution=32, net_resolution=32)
  elif variant in ("mnist", "stacked_mnist", "smoke"):
    c = base_config(model="biggan", data="stacked_mnist" if variant == "stacked_mnist" else "mnist")
    c.data.update(pad=2)
  else:
    raise unknown_variant(__file__, variant, VARIANTS)
  c.model.update(
    conditional=variant not in ("folder32", "stacked_mnist"), d_spectral_norm=True,
    g_spectral_norm=True, spectral_norm_order="legacy", g_conv_dim=96, d_conv_dim=96,
    g_shared_dim=128,
  )  # fmt: skip
  c.noise.update(dim=80, distribution="normal")
  c.loss.update(d="hinge", g="hinge")
  if variant == "cifar_ortho":
    c.loss.g_penalties = "ortho:1e-4"
  for opt in (c.optim.g, c.optim.d):
    opt.update(name="adam", lr=2e-4, b1=0.5, b2=0.999, eps=1e-6)
  c.train.update(
    steps=100_000, batch_size=64, d_steps=5, g_steps=1, steps_per_call=10, log_every=500,
    checkpoint_every=5_000, ema_decay=0.9999, ema_buffers="average", ema_start=1000,
  )  # fmt: skip
  c.eval.update(metrics="samples,fid,is", every=10_000, num_samples=50_000)
  if variant == "folder32":  # IS measures ImageNet classes: not a folder's images
    c.eval.metrics = "samples,fid"
  if variant == "cifar_biggan_pytorch":
    c.model.update(spectral_norm_order="biggan", g_conv_dim=64, d_conv_dim=128)
    c.model.update(NETS["biggan_pytorch"])
    c.noise.dim = 128
    for opt in (c.optim.g, c.optim.d):
      opt.update(b1=0.0, eps=1e-8)
    c.train.update(steps=125_000, batch_size=50, d_steps=4, checkpoint_every=2_000, ema_start=999)
    c.eval.every = 5_000
  if variant in ("mnist", "stacked_mnist"):
    small_mnist(c, stacked=variant == "stacked_mnist")
    c.model.update(g_conv_dim=16, d_conv_dim=32, g_shared_dim=32)
    c.train.update(ema_decay=0.999, ema_start=250)  # a horizon of 1,000 steps, not 10,000
  if variant == "smoke":
    c.model.update(g_conv_dim=2, d_conv_dim=4, g_shared_dim=4)
    c.noise.dim = 8
    c.train.update(
      steps=4, batch_size=8, d_steps=2, steps_per_call=2, log_every=2, checkpoint_every=2,
      ema_start=0,
    )  # fmt: skip
    c.eval.update(metrics="samples", every=4, num_samples=64)
  return c
