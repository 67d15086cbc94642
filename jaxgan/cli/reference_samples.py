r"""Sample files that no GAN drew, to calibrate a metric before trusting it.

  jaxgan-reference-samples --dataset=mnist --kind=kmeans --num=10000 \
      --train_range=0,50000 --output=workdirs/reference/mnist_kmeans.npz
  jaxgan-evaluate --samples=workdirs/reference/mnist_kmeans.npz --dataset=mnist --metrics=parzen

``train``: ``num`` training images, i.e. a model that memorised its data; its score
is the metric's ceiling for honest models. ``kmeans``: the centroids of ``num``-means
on the training images (Lloyd's algorithm from random training images, a local
optimum). Theis, van den Oord & Bethge (2016,
"A note on the evaluation of generative models") showed that such a codebook of
blurry prototypes beats real data under Goodfellow et al.'s Parzen protocol: a
score above the ``train`` one says the metric is rewarding something other than
sample quality. Files are ``.npz`` with ``samples`` float32 NHWC in [0, 1], as
``jaxgan-export`` writes and ``jaxgan-evaluate --samples`` reads.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from jaxgan import cli
from jaxgan import config as config_lib
from jaxgan.data import build_dataset
from jaxgan.data.image_pipeline import range_positions
from jaxgan.errors import ConfigError
from jaxgan.evaluators import figures
from jaxgan.run.writers import TaskProgress

KINDS = ("train", "kmeans")
_CHUNK = 2048  # points per distance block: 2048 x 10,000 float32 = 80 MB

_DATASET = _KIND = _NUM = _TRAIN_RANGE = _ITERATIONS = _SEED = _OUTPUT = _DATA_DIR = None


def _define_flags() -> None:
  global _DATASET, _KIND, _NUM, _TRAIN_RANGE, _ITERATIONS, _SEED, _OUTPUT, _DATA_DIR
  _DATASET = flags.DEFINE_string("dataset", "mnist", "Image dataset whose train split is used.")
  _KIND = flags.DEFINE_enum("kind", "kmeans", list(KINDS), "train images, or k-means centroids.")
  _NUM = flags.DEFINE_integer("num", 10_000, "Samples to write (k for kmeans).")
  _TRAIN_RANGE = flags.DEFINE_string(
    "train_range",
    "",
    "'start,stop': only train images at these original positions, e.g. "
    "0,50000 to leave Parzen's sigma-selection images (50,000-50,999) unseen.",
  )
  _ITERATIONS = flags.DEFINE_integer("iterations", 20, "Lloyd iterations (kmeans).")
  _SEED = flags.DEFINE_integer("seed", 0, "Which images are drawn (train) or start as centroids.")
  _OUTPUT = flags.DEFINE_string("output", None, "Output .npz path.", required=True)
  _DATA_DIR = flags.DEFINE_string("data_dir", "", "TFDS data dir (MNIST is prepared into it).")


@functools.partial(jax.jit, static_argnames=("chunk",))
def _lloyd_step(x: jax.Array, centroids: jax.Array, chunk: int = _CHUNK):
  """One assignment + update; returns (new centroids, mean squared distance before the update)."""
  k = centroids.shape[0]
  c_sq = jnp.sum(centroids**2, axis=1)

  def assign(block):
    d2 = jnp.sum(block**2, axis=1, keepdims=True) - 2 * block @ centroids.T + c_sq
    j = jnp.argmin(d2, axis=1)
    return j, jnp.maximum(jnp.take_along_axis(d2, j[:, None], axis=1)[:, 0], 0.0)

  n, dim = x.shape
  pad = -n % chunk
  blocks = jnp.pad(x, ((0, pad), (0, 0))).reshape(-1, chunk, dim)
  idx, dist = jax.lax.map(assign, blocks)
  idx, dist = idx.reshape(-1)[:n], dist.reshape(-1)[:n]
  sums = jax.ops.segment_sum(x, idx, num_segments=k)
  counts = jax.ops.segment_sum(jnp.ones((n,), x.dtype), idx, num_segments=k)
  # An empty cluster keeps its centroid, so the objective never rises.
  new = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1)[:, None], centroids)
  return new, jnp.mean(dist)


def kmeans(
  x: np.ndarray,
  k: int,
  *,
  iterations: int = 20,
  seed: int = 0,
  progress: Callable[[str, int, int], None] | None = None,
) -> tuple[np.ndarray, list[float]]:
  """Lloyd's k-means of rows of ``x`` from ``k`` distinct random rows.

  Returns (centroids [k, D], mean squared distance to the nearest centroid at
  each iteration's assignment: non-increasing).
  """
  x = np.asarray(x, np.float32).reshape(len(x), -1)
  if not 1 <= k <= len(x):
    raise ConfigError(f"k-means needs 1 <= k <= {len(x)} points; got k={k}. Lower --num.")
  rng = np.random.default_rng(seed)
  centroids = jnp.asarray(x[rng.choice(len(x), k, replace=False)])
  xd = jnp.asarray(x)
  history = []
  for i in range(iterations):
    centroids, inertia = _lloyd_step(xd, centroids)
    history.append(float(inertia))
    if progress:
      progress(f"k-means (k={k}, mean sq. distance {history[-1]:.3f})", i + 1, iterations)
  return np.asarray(centroids), history


def _parse_range(text: str) -> tuple[int, int] | tuple[()]:
  if not text:
    return ()
  try:
    start, stop = (int(v) for v in text.split(","))
  except ValueError:
    raise ConfigError(f"--train_range={text!r} must be 'start,stop', e.g. 0,50000.") from None
  return start, stop


def training_images(
  dataset: str, train_range: tuple[int, int] | tuple[()] = (), *, data_dir: str = ""
) -> np.ndarray:
  """The train split as float32 NHWC in [0, 1], in the original files' order
  (only positions in ``train_range`` when given)."""
  config = config_lib.base_config(model="mlp", data=dataset)  # also rejects unknown names
  if "data_dir" in config.data:
    config.data.data_dir = data_dir
  ds = build_dataset(config.data)
  if not ds.spec.is_image:
    raise ConfigError(f"--dataset={dataset} is not an image dataset.")
  data = ds.load_all()
  positions = (
    range_positions(ds, train_range)
    if train_range
    else np.argsort(np.asarray(data["index"]), kind="stable")
  )
  return data["x"][positions].astype(np.float32) / 255.0


def make(
  kind: str,
  images: np.ndarray,
  num: int,
  *,
  iterations: int = 20,
  seed: int = 0,
  progress: Callable[[str, int, int], None] | None = None,
) -> np.ndarray:
  """``num`` reference samples of ``kind`` from ``images`` (float NHWC in [0, 1])."""
  if kind not in KINDS:
    raise ConfigError(f"--kind={kind!r}: choose one of {', '.join(KINDS)}.")
  if not 1 <= num <= len(images):
    raise ConfigError(
      f"--num={num}: the training images hold {len(images)}; choose 1..{len(images)}."
    )
  if kind == "train":
    return images[np.sort(np.random.default_rng(seed).choice(len(images), num, replace=False))]
  centroids, _ = kmeans(images, num, iterations=iterations, seed=seed, progress=progress)
  return np.clip(centroids, 0.0, 1.0).reshape(num, *images.shape[1:])


def preview(samples: np.ndarray, path: str, *, side: int = 10) -> str:
  """The first side x side samples as one PNG grid (to look at before trusting a score)."""
  n = min(len(samples), side * side)
  rows = -(-n // side)
  return figures.save_png(figures.image_grid(samples[:n], rows, side, scale=2), path)


def main(argv: list[str]) -> None:
  cli.setup(argv)
  with cli.user_errors_exit():
    train_range = _parse_range(_TRAIN_RANGE.value)
    if _KIND.value == "kmeans" and _ITERATIONS.value < 1:
      raise ConfigError(f"--iterations={_ITERATIONS.value} must be at least 1.")
    images = training_images(_DATASET.value, train_range, data_dir=_DATA_DIR.value)
    samples = make(
      _KIND.value,
      images,
      _NUM.value,
      iterations=_ITERATIONS.value,
      seed=_SEED.value,
      progress=TaskProgress(),
    )
    os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
    np.savez(_OUTPUT.value, samples=samples.astype(np.float32))
    grid = preview(samples, os.path.splitext(_OUTPUT.value)[0] + ".png")
    print(
      f"{_OUTPUT.value}: {len(samples)} {_KIND.value} samples {samples.shape[1:]} from "
      f"{len(images)} {_DATASET.value} train images; the first 100 in {grid}"
    )


def run() -> None:
  """Console-script entry point (``jaxgan-reference-samples``)."""
  _define_flags()
  cli.show_as_main(__name__)
  app.run(main)


if __name__ == "__main__":
  run()
