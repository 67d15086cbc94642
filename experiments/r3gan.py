r"""R3GAN (Huang et al. 2024, "The GAN is dead; long live the GAN!") on CIFAR-10.

  jaxgan-train --config=experiments/r3gan.py:cifar --workdir=workdirs/r3gan_cifar \
      --config.eval.inception_weights=/path/to/pt_inception-2015-12-05.npz
  jaxgan-train --config=experiments/r3gan.py:smoke --workdir=/tmp/r3gan_smoke

Your own images, a folder or .zip (docs/data.md), at 32, 64 or 256:

  jaxgan-prepare --source=~/data/faces.zip --resolution=64     # once; checks every image
  jaxgan-train --config=experiments/r3gan.py:folder64 --workdir=workdirs/r3gan_faces64 \
      --config.data.source=~/data/faces.zip --config.data.xflip=True \
      --config.eval.inception_weights=inception_fid.npz

``folder32``, ``folder64`` and ``folder256`` are train.py's ``CIFAR10`` (batch 512), ``FFHQ-64``
and ``FFHQ-256`` presets (batch 256, as the README's commands), unconditional, so G's fake
labels stay ``train.fake_labels='uniform'`` (``--config.model.conditional=True`` uses the
folder's labels: add ``--config.train.fake_labels=real`` for the official ``gen_c = real_c``);
``--config.data.xflip=True`` is ``--mirror=1``. FFHQ-64: widths 768 x 4 then 384, four bfloat16
stages, gamma 2 -> 0.2, p 0 -> 0.3, EMA half-life 0 -> 500 kimg; FFHQ-256: widths 768 x 4, 384,
192, 96, the same but gamma 150 -> 15; all over 20 M images as ``cifar`` (below). Parameter
counts equal the official modules': G 22,429,824 / D 22,381,440 at 64, 23,057,952 / 23,009,568
at 256 (at 32, those of ``cifar`` without labels: 20,732,160 / 20,683,776). The folder is
prepared at the variant's resolution (``data.net_resolution``); another ``data.resolution`` is
refused in one line.

``cifar`` is brownvc/R3GAN's ``train.py --preset=CIFAR10 --cond=1 --mirror=1 --batch=512
--aug=1`` as far as jaxgan follows it: the ``r3gan`` nets (``model.name=r3gan``: four stages of
768 channels, 2 blocks each, expansion 2, cardinality 96, z of 64 from N(0, I), G's label
embedding 64 wide and D's 768; G 20,781,952 and D 21,280,512 parameters, as the official
modules); the RpGAN loss with R1 and R2 on the reals and fakes before augmentation, every D
update (no lazy interval): R3GAN adds (gamma / 2) (||grad D(x)||^2 + ||grad D(G(z))||^2) and
jaxgan's r1/r2 are 1/2 E ||grad||^2, so weight gamma; Adam(b1 0, eps 1e-8) for both nets; batch
512; one D update then one G update, each on a real batch of its own (below); G's fakes take the
labels of the real batch their update sees (``train.fake_labels='real'``, the official
``gen_c = real_c``), so RpGAN pairs a real and a fake of the same class; the training set
doubled with its mirror images (``data.xflip=True``, ``--mirror=1``: 100,000 images, each image
and its left-right flip). Five scalars follow the official ``cosine_decay_with_warmup`` over
20 M images (``cosine(a,b,kimg=20000)``, see docs/design.md): the learning rate 2e-4 -> 5e-5,
Adam's beta2 0.9 -> 0.99, gamma 0.05 -> 0.005, the EMA half-life 0 -> 5,000 kimg
(``train.ema_kimg``) and the augmentation probability p 0 -> 0.55 of the official pipe before D
(StyleGAN2-ADA's with xflip, rotate90, xint, scale, rotate, aniso, xfrac, cutout at 1 and
brightness, contrast, lumaflip, hue, saturation at 0.5: ``loss.ada=AUGMENT``, ``ada_target=0``;
R1 and R2 are taken through it w.r.t. the images before it, as the official does). G's last
three stages and D's first three in bfloat16 (``low_precision_stages=3``, the official
``FP16Stages``, float32 parameters); 39,063 steps, the end of the official schedules (the
official ``--kimg`` runs until stopped). CIFAR-10 is read from cifar-10-python.tar.gz in
$JAXGAN_CIFAR10_DIR.

As the official, which fetches one real batch for D's phase and another for G's (whose labels
condition G's fakes there), G's update reads a real batch of its own, the next of the data
stream (``train.g_real_batch='fresh'``; also in the ``folder*`` variants and ``smoke``). Images
are counted as the official's ``cur_nimg``, ``batch_size`` a step, so the kimg schedules are
unchanged. ``mnist`` and ``stacked_mnist`` keep the default, the last of D's batches
(``'last_d'``), as the other families of that comparison.

``smoke`` is tiny (widths 8, 1 block per stage, groups of 4 channels, z of 8, batch 8, 4
steps, no augmentation) on MNIST padded to 32x32 (JAXGAN_MNIST_DIR), conditional, for tests and
a first look on a CPU.
"""

from jaxgan.config import base_config, small_mnist, unknown_variant

VARIANTS = ("cifar", "folder32", "folder64", "folder256", "mnist", "stacked_mnist", "smoke")
DECAY_IMAGES = 20_000_000  # the official decay_nimg
# The official train.py's --aug=1 pipe.
AUGMENT = "bgc,brightness=0.5,contrast=0.5,lumaflip=0.5,hue=0.5,saturation=0.5,cutout=1"
# train.py's presets: widths in G's order (4x4 first; groups of 16 channels throughout),
# bfloat16 stages, and the final values of the EMA half-life (kimg), p and gamma, each
# reached by a cosine over DECAY_IMAGES from 0, 0 and 10 x gamma's final value.
PRESETS = {
  "CIFAR10": dict(widths=(768,) * 4, fp16=3, ema_kimg=5000, p=0.55, gamma=0.005),
  "FFHQ-64": dict(widths=(768,) * 4 + (384,), fp16=4, ema_kimg=500, p=0.3, gamma=0.2),
  "FFHQ-256": dict(widths=(768,) * 4 + (384, 192, 96), fp16=4, ema_kimg=500, p=0.3, gamma=15),
}
FOLDERS = {"folder32": ("CIFAR10", 32, 512), "folder64": ("FFHQ-64", 64, 256),
           "folder256": ("FFHQ-256", 256, 256)}  # fmt: skip


def get_config(variant: str = "cifar"):
  if variant in ("cifar", "default"):
    c = base_config(model="r3gan", data="cifar10")
    preset, batch = PRESETS["CIFAR10"], 512
    c.model.conditional = True
    c.data.xflip = True  # --mirror=1
    c.train.fake_labels = "real"  # gen_c = real_c
  elif variant in FOLDERS:
    name, res, batch = FOLDERS[variant]
    preset = PRESETS[name]
    c = base_config(model="r3gan", data="image_folder")
    c.data.update(resolution=res, net_resolution=res)
  elif variant in ("mnist", "stacked_mnist", "smoke"):
    c = base_config(model="r3gan", data="stacked_mnist" if variant == "stacked_mnist" else "mnist")
    c.data.update(pad=2)
    preset, batch = PRESETS["CIFAR10"], 8 if variant == "smoke" else 64
    c.model.conditional = variant != "stacked_mnist"
  else:
    raise unknown_variant(__file__, variant, VARIANTS)
  c.model.update(widths=preset["widths"], blocks=(2,), low_precision_stages=preset["fp16"])
  c.noise.update(dim=64, distribution="normal", low=0.0, high=1.0)
  # The official cosine_decay_with_warmup over decay_nimg (a smoke run: over its 4 steps).
  kimg = DECAY_IMAGES / 1000 if variant != "smoke" else 4 * batch / 1000
  cosine = lambda a, b: f"cosine({a:g},{b:g},kimg={kimg:g})"
  gamma = cosine(10 * preset["gamma"], preset["gamma"])
  c.loss.update(d="rpgan", g="rpgan", d_penalties=f"r1:{gamma},r2:{gamma}")
  c.loss.update(ada=AUGMENT, ada_p=cosine(0, preset["p"]), ada_target=0.0)
  updates = -(-DECAY_IMAGES // batch)  # 39,063 at 512, 78,125 at 256
  for opt in (c.optim.g, c.optim.d):
    opt.update(name="adam", lr=cosine(2e-4, 5e-5), b1=0.0, b2=cosine(0.9, 0.99), eps=1e-8)
  c.train.update(
    steps=updates, batch_size=batch, d_steps=1, g_steps=1, ema_kimg=cosine(0, preset["ema_kimg"]),
    ema_rampup=0.0, steps_per_call=10, log_every=500, checkpoint_every=5_000,
    g_real_batch="fresh",  # the official's G phase reads its own real batch
  )  # fmt: skip
  c.eval.update(metrics="samples,fid", every=5_000, num_samples=50_000)
  if variant in ("mnist", "stacked_mnist"):
    # The CIFAR-10 preset's values at the start of its schedules, held: lr 2e-4, beta2 0.9,
    # gamma 0.05, no augmentation; a short fixed EMA half-life where its schedule starts at 0.
    small_mnist(c, stacked=variant == "stacked_mnist")
    c.model.update(widths=(64,) * 4, blocks=(1,), g_embed_dim=16, low_precision_stages=0)
    c.loss.update(d_penalties="r1:0.05,r2:0.05", ada="", ada_p=0.0)
    for opt in (c.optim.g, c.optim.d):
      opt.update(lr=2e-4, b2=0.9)
    c.train.update(ema_kimg=10.0, g_real_batch="last_d")
  if variant == "smoke":
    c.model.update(
      widths=(8, 8, 8, 8), blocks=(1,), group_width=4, g_embed_dim=8, low_precision_stages=0
    )
    c.noise.dim = 8
    c.loss.update(ada="", ada_p=0.0)
    c.train.update(steps=4, steps_per_call=2, log_every=2, checkpoint_every=2, ema_kimg=0.01)
    c.eval.update(metrics="samples", every=4, num_samples=64)
  return c
