r"""R3GAN (Huang et al. 2024, "The GAN is dead; long live the GAN!") on CIFAR-10.

  jaxgan-train --config=experiments/r3gan.py:cifar --workdir=workdirs/r3gan_cifar \
      --config.eval.inception_weights=/path/to/pt_inception-2015-12-05.npz
  jaxgan-train --config=experiments/r3gan.py:smoke --workdir=/tmp/r3gan_smoke

``cifar`` is brownvc/R3GAN's ``train.py --preset=CIFAR10 --cond=1 --batch=512 --aug=1`` as
far as jaxgan follows it: the ``r3gan`` nets (``model.name=r3gan``: four stages of 768
channels, 2 blocks each, expansion 2, cardinality 96, z of 64 from N(0, I), G's label embedding
64 wide and D's 768; G 20,781,952 and D 21,280,512 parameters, as the official modules); the
RpGAN loss with R1 and R2 on the reals and fakes before augmentation, every D update (no lazy
interval), at the official starting gamma 0.05: R3GAN adds (gamma / 2) (||grad D(x)||^2 +
||grad D(G(z))||^2) and jaxgan's r1/r2 are 1/2 E ||grad||^2, so weight gamma
(``loss.d_penalties="r1:0.05,r2:0.05"``); Adam(betas (0, 0.9), eps 1e-8) for both nets with
the learning rate on the official cosine from 2e-4 to 5e-5 over 20 M images (39,063 updates
of 512; optax's ``cosine_decay_schedule`` is the official ``cosine_decay_with_warmup`` without
warm-up: base at 0, final from the end on); batch 512; one D update then one G update, each on
its own real batch; the official augmentation pipe before D (below); G's last three stages and
D's first three in bfloat16 (``low_precision_stages=3``, the official ``FP16Stages``, float32
parameters); 39,063 steps, the end of the official schedules (the official ``--kimg`` runs
until stopped). CIFAR-10 is read from cifar-10-python.tar.gz in $JAXGAN_CIFAR10_DIR.

What jaxgan cannot yet follow, all scheduled over the same 20 M images by the official
``cosine_decay_with_warmup`` (a schedule for scalars other than the learning rate would cover
the first four):

* Adam's beta2 from 0.9 to 0.99: here fixed at its start, 0.9;
* gamma from 0.05 to 0.005: here fixed at its start, 0.05;
* the EMA half-life from 0 to 5 M images: here 5,000 kimg ramped up linearly as 0.25 x the
  images seen (``ema_kimg=5000, ema_rampup=0.25``), equal to the official at 10 M and 20 M
  images and longer before (the official ramp is a cosine, quadratic at first);
* the augmentation probability p from 0 to 0.55: here the official pipe (StyleGAN2-ADA's
  with xflip, rotate90, xint, scale, rotate, aniso, xfrac, cutout at 1 and brightness,
  contrast, lumaflip, hue, saturation at 0.5: ``loss.ada=AUGMENT``) at a fixed p of 0.275,
  the official schedule's mean over the 20 M images (``ada_target=0``); R1 and R2 are taken
  through it w.r.t. the images before it, as the official does;
* x-flips of the dataset (``--mirror=1``);
* G conditioned on the real batch's labels (``gen_c = real_c``): jaxgan draws fake labels
  uniformly, so RpGAN pairs reals and fakes of different classes;

``smoke`` is tiny (widths 8, 1 block per stage, groups of 4 channels, z of 8, batch 8, 4
steps, no augmentation) on MNIST padded to 32x32 (JAXGAN_MNIST_DIR), conditional, for tests and
a first look on a CPU.
"""

from jaxgan.config import base_config, unknown_variant

VARIANTS = ("cifar", "smoke")
DECAY_IMAGES = 20_000_000  # the official decay_nimg
GAMMA = 0.05
# The official train.py's --aug=1 pipe; its p is scheduled, here fixed at the schedule's mean.
AUGMENT = "bgc,brightness=0.5,contrast=0.5,lumaflip=0.5,hue=0.5,saturation=0.5,cutout=1"
AUGMENT_P = 0.275


def get_config(variant: str = "cifar"):
  if variant in ("cifar", "default"):
    c = base_config(model="r3gan", data="cifar10")
    batch = 512
  elif variant == "smoke":
    c = base_config(model="r3gan", data="mnist")
    c.data.update(pad=2)
    batch = 8
  else:
    raise unknown_variant(__file__, variant, VARIANTS)
  c.model.update(conditional=True, low_precision_stages=3 if variant != "smoke" else 0)
  c.noise.update(dim=64, distribution="normal", low=0.0, high=1.0)
  c.loss.update(d="rpgan", g="rpgan", d_penalties=f"r1:{GAMMA:g},r2:{GAMMA:g}")
  c.loss.update(ada=AUGMENT, ada_p=AUGMENT_P, ada_target=0.0)
  updates = -(-DECAY_IMAGES // batch)  # 39,063 at 512
  for opt in (c.optim.g, c.optim.d):
    opt.update(
      name="adam", lr=2e-4, b1=0.0, b2=0.9, eps=1e-8, schedule="cosine", min_lr=5e-5,
      decay_steps=updates,
    )  # fmt: skip
  c.train.update(
    steps=updates, batch_size=batch, d_steps=1, g_steps=1, ema_kimg=5000.0, ema_rampup=0.25,
    steps_per_call=10, log_every=500, checkpoint_every=5_000,
  )  # fmt: skip
  c.eval.update(metrics="samples,fid", every=5_000, num_samples=50_000)
  if variant == "smoke":
    c.model.update(widths=(8, 8, 8, 8), blocks=(1,), group_width=4, g_embed_dim=8)
    c.noise.dim = 8
    c.loss.ada = ""
    for opt in (c.optim.g, c.optim.d):
      opt.decay_steps = 4
    c.train.update(steps=4, steps_per_call=2, log_every=2, checkpoint_every=2, ema_kimg=0.01)
    c.eval.update(metrics="samples", every=4, num_samples=64)
  return c
