r"""Classifier-based class conditioning of D, as PyTorch-StudioGAN trains it on CIFAR-10.

  jaxgan-train --config=experiments/conditioning.py:acgan --workdir=workdirs/acgan_cifar \
      --config.eval.inception_weights=/path/to/pt_inception-2015-12-05.npz
  jaxgan-train --config=experiments/conditioning.py:tacgan --workdir=workdirs/tacgan_cifar
  jaxgan-train --config=experiments/conditioning.py:adcgan --workdir=workdirs/adcgan_cifar
  jaxgan-train --config=experiments/conditioning.py:reacgan --workdir=workdirs/reacgan_cifar
  jaxgan-train --config=experiments/conditioning.py:smoke --workdir=/tmp/conditioning_smoke

Each is StudioGAN's CIFAR-10 yaml over its ``config.py`` defaults, on the BigGAN-32 backbone
(``big_resnet``, ``model.name=biggan``: experiments/biggan.py's ``cifar`` with D's projection
replaced by a class head, ``model.d_cond``; jaxgan.core.conditioning has the terms):

* ``acgan``: ``ACGAN-Mod-Big.yaml``: d_cond ``ac``, ``ac:1`` in D's and G's objectives
  (cond_lambda 1; D's classifier learns the reals only, as StudioGAN's ACGAN-Mod). Adding
  ``ac_fake:1`` to ``loss.d_penalties`` gives the original ACGAN's D.
* ``tacgan``: ``ACGAN-Mod-Big-TAC.yaml``: d_cond ``tac``, D ``ac:1,tac:1`` and G
  ``ac:1,tac:1`` (cond_lambda, tac_dis_lambda, tac_gen_lambda 1).
* ``adcgan``: ``ACGAN-Mod-Big-ADC.yaml``: d_cond ``adc``, ``adc:1`` on both (cond_lambda 1).
* ``reacgan``: ``ReACGAN.yaml``: d_cond ``d2dce`` (d_embed_dim 512, normalised), ``d2dce:0.5``
  on both (cond_lambda 0.5; temperature 0.5 and m_p 0.98 are the term's constants), batch 128,
  Adam lr 2.8284271e-4 for both.

All four: hinge loss, z of 80 from N(0, I), shared embedding 128, g/d_conv_dim 96, attention
after G's second and D's first block, spectral norm on both nets (legacy order), Adam betas
(0.5, 0.999) eps 1e-6, lr 2e-4 and batch 64 unless said, 5 D updates per G update, 100,000
steps, an EMA of G (decay 0.9999, buffers averaged). CIFAR-10 is read from
cifar-10-python.tar.gz in $JAXGAN_CIFAR10_DIR (docs/data.md). docs/conditioning.md lists where
the runs differ from StudioGAN's.

``smoke`` (TACGAN, the method with the most terms) and ``acgan_smoke``, ``adcgan_smoke``,
``reacgan_smoke`` are tiny (g_conv_dim 2, d_conv_dim 4, z of 8, d_embed_dim 8, batch 8, 2 D
updates per step, 4 steps) on MNIST padded to 32x32 (JAXGAN_MNIST_DIR), for tests and a first
look on a CPU.
"""

from jaxgan.config import base_config, unknown_variant

METHODS = {  # variant -> (model.d_cond, D's terms, G's terms)
  "acgan": ("ac", "ac:1", "ac:1"),
  "tacgan": ("tac", "ac:1,tac:1", "ac:1,tac:1"),
  "adcgan": ("adc", "adc:1", "adc:1"),
  "reacgan": ("d2dce", "d2dce:0.5", "d2dce:0.5"),
}
VARIANTS = (*METHODS, "smoke", *(f"{m}_smoke" for m in METHODS if m != "tacgan"))


def get_config(variant: str = "acgan"):
  method = {"smoke": "tacgan", "default": "acgan"}.get(variant, variant.removesuffix("_smoke"))
  smoke = variant == "smoke" or variant.endswith("_smoke")
  if method not in METHODS or variant == "tacgan_smoke":
    raise unknown_variant(__file__, variant, VARIANTS)
  c = base_config(model="biggan", data="mnist" if smoke else "cifar10")
  if smoke:
    c.data.update(pad=2)
  d_cond, d_terms, g_terms = METHODS[method]
  c.model.update(
    conditional=True, d_spectral_norm=True, g_spectral_norm=True, spectral_norm_order="legacy",
    g_conv_dim=96, d_conv_dim=96, g_shared_dim=128, d_cond=d_cond, d_embed_dim=512,
  )  # fmt: skip
  c.noise.update(dim=80, distribution="normal")
  c.loss.update(d="hinge", g="hinge", d_penalties=d_terms, g_penalties=g_terms)
  lr, batch = (2.8284271e-4, 128) if method == "reacgan" else (2e-4, 64)
  for opt in (c.optim.g, c.optim.d):
    opt.update(name="adam", lr=lr, b1=0.5, b2=0.999, eps=1e-6)
  c.train.update(
    steps=100_000, batch_size=batch, d_steps=5, g_steps=1, steps_per_call=10, log_every=500,
    checkpoint_every=5_000, ema_decay=0.9999, ema_buffers="average",
  )  # fmt: skip
  c.eval.update(metrics="samples,fid,is", every=10_000, num_samples=50_000)
  if smoke:
    c.model.update(g_conv_dim=2, d_conv_dim=4, g_shared_dim=4, d_embed_dim=8)
    c.noise.dim = 8
    c.train.update(
      steps=4, batch_size=8, d_steps=2, steps_per_call=2, log_every=2, checkpoint_every=2
    )
    c.eval.update(metrics="samples", every=4, num_samples=64)
  return c
