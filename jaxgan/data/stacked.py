"""Stacked MNIST: three MNIST digits as one image's three channels, so 1,000 modes.

The mode-collapse benchmark of Metz et al. (Unrolled GAN, 2017), Srivastava et
al. (VEEGAN, 2017) and Lin et al. (PacGAN, 2018). Example j of a split holds
the digits at positions ``triples[j]`` of the MNIST split, drawn once from
``numpy.random.default_rng([seed, 0x57AC])`` (uniform, independent per
channel), so the dataset is a pure function of (seed, j) and the same for
every run, member and process. Its label is ``100 d_R + 10 d_G + d_B``: the mode.
"""

from __future__ import annotations

import threading

import numpy as np

from jaxgan.data import images
from jaxgan.data.images import ImageDataset

STREAM = 0x57AC


def triples(seed: int, size: int, num_digits: int) -> np.ndarray:
  """The MNIST positions behind each stacked example: int64 [size, 3]."""
  return np.random.default_rng([seed, STREAM]).integers(0, num_digits, (size, 3))


class StackedSource:
  """Random access to stacked examples, built from an MNIST split held in memory."""

  def __init__(self, mnist: ImageDataset, size: int, seed: int):
    self._mnist = mnist
    self.triples = triples(seed, size, len(mnist))
    self._lock = threading.Lock()  # reader threads share one in-memory copy of MNIST
    self._ordered: dict[str, np.ndarray] | None = None

  def __len__(self) -> int:
    return len(self.triples)

  def _digits(self) -> dict[str, np.ndarray]:
    """The MNIST split in its files' order (cached), so positions are LeCun's."""
    with self._lock:
      if self._ordered is None:
        data = self._mnist.load_all()
        order = np.argsort(data["index"], kind="stable")
        self._ordered = {"x": data["x"][order], "y": data["y"][order]}
    return self._ordered

  def close(self) -> None:
    self._mnist.close()

  def __getitem__(self, j: int) -> dict:
    data = self._digits()
    t = self.triples[j]
    image = np.concatenate([data["x"][i] for i in t], axis=-1)  # [H, W, 3]
    y = data["y"][t]
    return {"image": image, "label": int(100 * y[0] + 10 * y[1] + y[2]), "index": int(j)}

  def all(self) -> dict[str, np.ndarray]:
    """Every example at once (vectorised; what ``ImageDataset.load_all`` would build)."""
    data = self._digits()
    x = np.concatenate([data["x"][self.triples[:, c]] for c in range(3)], axis=-1)
    y = data["y"][self.triples]
    return {
      "x": x,
      "y": (100 * y[:, 0] + 10 * y[:, 1] + y[:, 2]).astype(np.int32),
      "index": np.arange(len(self.triples)),
    }


class StackedMNIST(ImageDataset):
  """An ``ImageDataset`` of stacked digits (load_all is vectorised)."""

  def load_all(self) -> dict[str, np.ndarray]:
    if self._all is None:
      self._all = self.source.all()
    return self._all

  def close(self) -> None:
    super().close()
    self.source.close()


def open_stacked(
  split: str, *, size: int, seed: int, mnist_options: dict, **options
) -> StackedMNIST:
  """Stacked MNIST over MNIST's ``split`` (train digits for train, test digits for test)."""
  mnist = images.open_idx("mnist", split, **mnist_options)
  reopen = lambda s: open_stacked(s, size=size, seed=seed, mnist_options=mnist_options, **options)
  return StackedMNIST(
    "stacked_mnist",
    split,
    StackedSource(mnist, size, seed),
    shape=(*mnist.spec.shape[:2], 3),  # 28x28, or larger with mnist_options' pad
    num_classes=1000,
    reopen=reopen,
    **options,
  )
