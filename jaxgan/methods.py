"""The GAN zoo's methods as config edits, shared by the benchmark experiments.

``apply_method(config, name)`` changes only what the method is, so a benchmark
(``experiments/mixtures_2d.py``, ``experiments/stacked_mnist.py``) compares the
methods on the same nets, data and steps:

  wgan_gp   Wasserstein loss + gradient penalty 10, k = 5 critic updates per G
            update, Adam(1e-4, beta = (0.5, 0.9)): Gulrajani et al.'s settings
  r1        non-saturating loss + R1, gamma = 1 (Mescheder et al. 2018)
  sn_hinge  hinge loss + spectral normalisation of D (Miyato et al. 2018)
  lsgan     least squares (Mao et al. 2017)
  pacgan2   D judges 2 samples at a time (Lin et al. 2018)
  dragan    non-saturating loss + DRAGAN penalty 10 (Kodali et al. 2017)
  r3gan     RpGAN loss + R1 + R2, gamma = 1 (Huang et al. 2024)

Methods that take D's gradient per example (the penalties) or normalise D's
weights turn batch norm in D off where the model has it.
"""

from __future__ import annotations

import ml_collections

METHODS = ("wgan_gp", "r1", "sn_hinge", "lsgan", "pacgan2", "dragan", "r3gan")
_NO_D_BATCH_NORM = ("wgan_gp", "r1", "sn_hinge", "dragan", "r3gan")


def apply_method(c: ml_collections.ConfigDict, method: str) -> None:
  """Edits ``c`` in place into ``method``; raises ValueError naming the choices."""
  if method not in METHODS:
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
  if method in _NO_D_BATCH_NORM and "d_batch_norm" in c.model:
    c.model.d_batch_norm = False
  if method == "wgan_gp":
    c.loss.update(d="wasserstein", d_penalties="gp:10")  # loss.g=auto: wasserstein
    c.train.d_steps = 5
    for opt in (c.optim.g, c.optim.d):
      opt.update(lr=1e-4, b1=0.5, b2=0.9)
  elif method == "r1":
    c.loss.d_penalties = "r1:1"
  elif method == "sn_hinge":
    c.loss.d = "hinge"
    c.model.d_spectral_norm = True
  elif method == "lsgan":
    c.loss.d = "least_squares"
  elif method == "pacgan2":
    c.model.d_pack = 2
  elif method == "dragan":
    c.loss.d_penalties = "dragan:10"
  elif method == "r3gan":
    c.loss.update(d="rpgan", d_penalties="r1:1,r2:1")
