r"""R3GAN (Huang et al. 2024, "The GAN is dead; long live the GAN!") on CIFAR-10.

  jaxgan-train --config=experiments/r3gan.py:cifar --workdir=workdirs/r3gan_cifar \
      --config.eval.inception_weights=/path/to/pt_inception-2015-12-05.npz
  jaxgan-train --config=experiments/r3gan.py:smoke --workdir=/tmp/r3gan_smoke

``cifar`` is brownvc/R3GAN's ``train.py --preset=CIFAR10 --cond=1 --batch=512 --aug=1`` as
far as jaxgan follows it: the ``r3gan`` nets (``model.name=r3gan``: four stages of 768
channels, 2 blocks each, expansion 2, cardinality 96, z of 64 from N(0, I), G's label embedding
64 wide and D's 768; G 20,781,952 and D 21,280,512 parameters, as the official modules); the
RpGAN loss with R1 and R2 on the reals and fakes before augmentation, every D update (no lazy
interval): R3GAN adds (gamma / 2) (||grad D(x)||^2 + ||grad D(G(z))||^2) and jaxgan's r1/r2
are 1/2 E ||grad||^2, so weight gamma; Adam(b1 0, eps 1e-8) for both nets; batch 512; one D
update then one G update, each on its own real batch. Five scalars follow the official
``cosine_decay_with_warmup`` over 20 M images (``cosine(a,b,kimg=20000)``, see
docs/design.md): the learning rate 2e-4 -> 5e-5, Adam's beta2 0.9 -> 0.99, gamma 0.05 ->
0.005, the EMA half-life 0 -> 5,000 kimg (``train.ema_kimg``) and the augmentation
probability p 0 -> 0.55 of the official pipe before D (StyleGAN2-ADA's with xflip, rotate90,
xint, scale, rotate, aniso, xfrac, cutout at 1 and brightness, contrast, lumaflip, hue,
saturation at 0.5: ``loss.ada=AUGMENT``, ``ada_target=0``; R1 and R2 are taken through it
w.r.t. the images before it, as the official does). G's last three stages and
D's first three in bfloat16 (``low_precision_stages=3``, the official ``FP16Stages``, float32
parameters); 39,063 steps, the end of the official schedules (the official ``--kimg`` runs
until stopped). CIFAR-10 is read from cifar-10-python.tar.gz in $JAXGAN_CIFAR10_DIR.

What jaxgan cannot yet follow:

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
# The official train.py's --aug=1 pipe.
AUGMENT = "bgc,brightness=0.5,contrast=0.5,lumaflip=0.5,hue=0.5,saturation=0.5,cutout=1"


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
  # The official cosine_decay_with_warmup over decay_nimg (a smoke run: over its 4 steps).
  kimg = DECAY_IMAGES / 1000 if variant != "smoke" else 4 * batch / 1000
  cosine = lambda a, b: f"cosine({a:g},{b:g},kimg={kimg:g})"
  gamma = cosine(GAMMA, GAMMA / 10)
  c.loss.update(d="rpgan", g="rpgan", d_penalties=f"r1:{gamma},r2:{gamma}")
  c.loss.update(ada=AUGMENT, ada_p=cosine(0, 0.55), ada_target=0.0)
  updates = -(-DECAY_IMAGES // batch)  # 39,063 at 512
  for opt in (c.optim.g, c.optim.d):
    opt.update(name="adam", lr=cosine(2e-4, 5e-5), b1=0.0, b2=cosine(0.9, 0.99), eps=1e-8)
  c.train.update(
    steps=updates, batch_size=batch, d_steps=1, g_steps=1, ema_kimg=cosine(0, 5000),
    ema_rampup=0.0, steps_per_call=10, log_every=500, checkpoint_every=5_000,
  )  # fmt: skip
  c.eval.update(metrics="samples,fid", every=5_000, num_samples=50_000)
  if variant == "smoke":
    c.model.update(widths=(8, 8, 8, 8), blocks=(1,), group_width=4, g_embed_dim=8)
    c.noise.dim = 8
    c.loss.update(ada="", ada_p=0.0)
    c.train.update(steps=4, steps_per_call=2, log_every=2, checkpoint_every=2, ema_kimg=0.01)
    c.eval.update(metrics="samples", every=4, num_samples=64)
  return c
