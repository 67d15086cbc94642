r"""StyleGAN2-ADA (Karras et al. 2020), as NVlabs/stylegan2-ada-pytorch trains it, in float32.

  jaxgan-train --config=experiments/stylegan2.py:cifar --workdir=workdirs/sg2_cifar \
      --config.eval.inception_weights=/path/to/pt_inception-2015-12-05.npz
  jaxgan-train --config=experiments/stylegan2.py:cifar_cond --workdir=workdirs/sg2_cifar_cond
  jaxgan-train --config=experiments/stylegan2.py:ffhq256 --workdir=workdirs/sg2_ffhq256 \
      --config.data.tfds_name=<your FFHQ prepared as TFDS array_record>
  jaxgan-train --config=experiments/stylegan2.py:mnist --workdir=workdirs/sg2_mnist
  jaxgan-train --config=experiments/stylegan2.py:mnist_ada1k --workdir=workdirs/sg2_mnist_ada1k
  jaxgan-train --config=experiments/stylegan2.py:stacked_mnist --workdir=workdirs/sg2_stacked
  jaxgan-train --config=experiments/stylegan2.py:smoke --workdir=/tmp/sg2_smoke

Your own images, a folder or .zip (docs/data.md), at 32, 64 or 256:

  jaxgan-prepare --source=~/data/faces.zip --resolution=256     # once; checks every image
  jaxgan-train --config=experiments/stylegan2.py:folder256 --workdir=workdirs/sg2_faces256 \
      --config.data.source=~/data/faces.zip --config.eval.inception_weights=inception_fid.npz

CIFAR-10 is read from cifar-10-python.tar.gz in $JAXGAN_CIFAR10_DIR, prepared on first use
without TensorFlow (docs/data.md); MNIST from the raw idx files (JAXGAN_MNIST_DIR), padded to
32x32 (``data.pad=2``).

``folder32``, ``folder64`` and ``folder256`` are the official default for a dataset of your
own, ``--cfg=auto`` on one GPU (``--gpus=1``), with ``--fp32=1``: batch min(4096 / res, 32)
(32, 32, 16), minibatch std over 4, channel_base 16384 (512 channels up to 32, 256 at 64, 64
at 256), a 2-layer mapping network, G ``skip``, D ``resnet``, lr 0.0025, R1 gamma 0.0002 *
res^2 / batch (0.0064, 0.0256, 0.8192) every 16, path length weight 2 every 4, style mixing
0.9, EMA of batch * 10 / 32 kimg (10, 10, 5) ramped up over 5%, ADA ``bgc`` to 0.6, 25,000
kimg. Parameter counts equal the official modules': G 19,947,539 / D 21,507,073 at 32,
22,243,608 / 23,407,361 at 64, 23,191,522 / 24,001,089 at 256 (with 10 classes: 20,215,315 /
23,876,096, 22,511,384 / 25,776,384, 23,459,298 / 26,370,112). ``--config.data.xflip=True``
is ``--mirror=1``; ``--config.model.conditional=True`` (``--cond=1``) uses the folder's labels.
The folder is prepared at the variant's resolution (``data.net_resolution``); another
``data.resolution`` is refused in one line before anything is prepared.

``cifar`` is the official ``--cfg=cifar --fp32=1`` (train.py's cfg_specs): G and D with 512
channels at 4 to 32 (channel_base 32768), z = w = 512, a 2-layer mapping network (lr
multiplier 0.01, w_avg tracked with beta 0.995), G ``skip``, D ``orig``, minibatch std over
groups of 32; batch 64; Adam(lr 0.0025, betas (0, 0.99), eps 1e-8) for both, gradients'
NaN/inf cleaned; R1 gamma 0.01 on reals every 16 D updates as its own step, and G's
optimizer corrected for a path-length interval of 4 with the path length off
(``pl:0@4``: G lr x 4/5, betas ** 4/5), as the official loop does; no style mixing; EMA of G
with a 500 kimg half-life, ramped up over 5% of the images seen; ADA ``bgc`` with target
0.6, p moved every 4 steps by 64 * 4 / 500,000; 100,000 kimg (1,562,500 steps). Parameter
counts equal the official modules': G 19,947,539 / D 20,720,641 (``cifar_cond``, 10
classes: 20,215,315 / 23,089,664). The official run computes its 4 highest resolutions in
float16 with conv_clamp 256; ``--fp32=1`` (these nets) runs float32 without the clamp.

``ffhq256`` is the paper's ``paper256`` at 256x256: channel_base 16384, an 8-layer mapping
network, G ``skip``, D ``resnet``, minibatch std over 8, R1 gamma 1 every 16, path length
weight 2 every 4, style mixing 0.9, EMA 20 kimg without ramp-up, 25,000 kimg.

``mnist`` is a small StyleGAN2 for this CPU, measured against the DCGAN at equal wall-clock
time (docs/results/stylegan2_mnist.md): 32x32x1, z = w = 64, channels 128 at 4 and 8, 64 at
16, 32 at 32 (channel_base 1024, channel_max 128), G ``skip``, D ``resnet``, minibatch std
over 4, batch 32, R1 gamma 0.01 every 16, EMA 10 kimg (the official heuristic, batch * 10 /
32) ramped up over 5%, no ADA; ``stacked_mnist`` is the same net on Stacked MNIST padded to
32x32x3, its 1,000 modes counted on 26,000 samples (experiments/stacked_mnist.py's protocol).
``mnist_ada1k`` trains it on MNIST's first 1,000 images with ADA ``bgc`` (target 0.6, p moved
every 4 steps by 32 * 4 / 100,000), against ``mnist_1k`` without it. ``smoke`` is tiny, for
tests.
"""

from jaxgan.config import base_config, unknown_variant

VARIANTS = (
  "cifar", "cifar_cond", "ffhq256", "folder32", "folder64", "folder256", "mnist", "mnist_1k",
  "mnist_ada1k", "stacked_mnist", "smoke",
)  # fmt: skip
FOLDER_RESOLUTIONS = {"folder32": 32, "folder64": 64, "folder256": 256}


def _stylegan2(c, *, gamma: float, pl_weight: float, lr: float, batch: int) -> None:
  """What every StyleGAN2-ADA config shares: its losses, lazy regularization as separate
  steps, Adam(0, 0.99) with NaN cleaning, a normal prior."""
  c.noise.update(dim=c.model.z_dim, distribution="normal", low=0.0, high=1.0)
  c.loss.update(
    d="bce",
    g="non_saturating",
    d_reduction="sum",
    d_penalties=f"r1:{gamma:g}@16",
    g_penalties=f"pl:{pl_weight:g}@4",
    lazy="separate",
  )
  for opt in (c.optim.g, c.optim.d):
    opt.update(name="adam", lr=lr, b1=0.0, b2=0.99, eps=1e-8, nan_to_num=True)
  c.train.update(batch_size=batch)


def _ada(c, kimg: float = 500.0) -> None:
  c.loss.update(ada="bgc", ada_p=0.0, ada_target=0.6, ada_interval=4, ada_kimg=kimg)


def _folder(res: int):
  """train.py's ``--cfg=auto`` for one GPU at resolution ``res`` (its spec, computed the same)."""
  batch = min(4096 // res, 32)
  c = base_config(model="stylegan2", data="image_folder")
  c.data.update(resolution=res, net_resolution=res)
  c.model.update(
    channel_base=16384, mapping_layers=2, d_architecture="resnet", mbstd_group_size=min(batch, 4),
    style_mixing_prob=0.9,
  )  # fmt: skip
  _stylegan2(c, gamma=0.0002 * res**2 / batch, pl_weight=2.0, lr=0.0025, batch=batch)
  _ada(c)
  snapshot = 200_000 // batch  # the official metrics every 50 ticks of 4 kimg
  c.train.update(
    steps=25_000_000 // batch, ema_kimg=batch * 10 / 32, ema_rampup=0.05,
    steps_per_call=10 if res <= 32 else 1, log_every=100, checkpoint_every=snapshot // 2,
  )  # fmt: skip
  c.eval.update(metrics="samples,fid", every=snapshot, num_samples=50_000)
  return c


def get_config(variant: str = "cifar"):
  if variant in ("cifar", "cifar_cond", "default"):
    c = base_config(model="stylegan2", data="cifar10")
    c.model.conditional = variant == "cifar_cond"
    _stylegan2(c, gamma=0.01, pl_weight=0.0, lr=0.0025, batch=64)
    _ada(c)
    c.train.update(
      steps=1_562_500, ema_kimg=500.0, ema_rampup=0.05, steps_per_call=10, log_every=500,
      checkpoint_every=10_000,
    )  # fmt: skip
    c.eval.update(metrics="samples,fid,is", every=50_000, num_samples=50_000)
  elif variant == "ffhq256":
    c = base_config(model="stylegan2", data="tfds")
    c.data.update(tfds_name="ffhq", image_size=256, channels=3)
    c.model.update(
      channel_base=16384, mapping_layers=8, d_architecture="resnet", mbstd_group_size=8,
      style_mixing_prob=0.9,
    )  # fmt: skip
    _stylegan2(c, gamma=1.0, pl_weight=2.0, lr=0.0025, batch=64)
    _ada(c)
    c.train.update(
      steps=390_625, ema_kimg=20.0, ema_rampup=0.0, steps_per_call=1, log_every=100,
      checkpoint_every=5_000,
    )  # fmt: skip
    c.eval.update(metrics="samples,fid", every=25_000, num_samples=50_000)
  elif variant in FOLDER_RESOLUTIONS:
    c = _folder(FOLDER_RESOLUTIONS[variant])
  elif variant in ("mnist", "mnist_1k", "mnist_ada1k", "stacked_mnist", "smoke"):
    c = base_config(
      model="stylegan2", data="stacked_mnist" if variant == "stacked_mnist" else "mnist"
    )
    c.data.update(pad=2, on_device=True)
    c.model.update(
      z_dim=64, w_dim=64, mapping_layers=2, channel_base=1024, channel_max=128,
      d_architecture="resnet", mbstd_group_size=4,
    )  # fmt: skip
    _stylegan2(c, gamma=0.01, pl_weight=0.0, lr=0.0025, batch=32)
    # One step per call: a StyleGAN2 step is long enough on a CPU that unrolling saves nothing,
    # and 10 unrolled steps take minutes to compile.
    c.train.update(
      steps=20_000, ema_kimg=10.0, ema_rampup=0.05, steps_per_call=1, log_every=500,
      checkpoint_every=2_000,
    )  # fmt: skip
    c.eval.update(metrics="samples,fid,loss_curves", every=2_000, num_samples=10_000)
    if variant == "stacked_mnist":  # 1,000 modes, counted on 26,000 samples as VEEGAN/PacGAN
      c.eval.update(metrics="samples,stacked_mnist_modes", num_samples=26_000)
    if variant in ("mnist_1k", "mnist_ada1k"):
      c.data.train_range = (0, 1000)
    if variant == "mnist_ada1k":
      _ada(c, kimg=100.0)
    if variant == "smoke":  # every StyleGAN2-ADA feature, tiny
      c.model.update(z_dim=8, w_dim=8, channel_base=64, channel_max=8, style_mixing_prob=0.9)
      c.noise.dim = 8
      c.train.update(
        steps=4, batch_size=8, steps_per_call=2, log_every=2, checkpoint_every=2, ema_kimg=0.01
      )
      c.loss.update(d_penalties="r1:0.01@2", g_penalties="pl:2@2")
      _ada(c, kimg=0.1)
      c.eval.update(metrics="samples", every=4)
  else:
    raise unknown_variant(__file__, variant, VARIANTS)
  return c
