"""Metrics that read a classifier's softmax on generated samples.

* Inception Score analogue (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))),
  mean and std over 10 splits, with the dataset's own classifier in place of
  Inception.
* Class coverage: the share of samples the classifier assigns to each class,
  and KL(share || uniform) in nats (0 when every class is equally frequent;
  log(C) when all samples are one class).
"""

from __future__ import annotations

import numpy as np


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
  probs = np.asarray(probs, np.float64)
  scores = []
  for part in np.array_split(probs, splits):
    marginal = part.mean(axis=0, keepdims=True)
    kl = np.sum(part * (np.log(part + 1e-12) - np.log(marginal + 1e-12)), axis=1)
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))


def class_coverage(probs: np.ndarray) -> tuple[np.ndarray, float]:
  """(share of argmax predictions per class, KL(share || uniform))."""
  probs = np.asarray(probs)
  c = probs.shape[1]
  share = np.bincount(probs.argmax(axis=1), minlength=c) / len(probs)
  nz = share > 0
  return share, float(np.sum(share[nz] * np.log(share[nz] * c)))
