"""A TFDS builder that prepares MNIST (and Fashion-MNIST) from the raw idx files.

Stock TFDS builders need TensorFlow to prepare; this one does not. It reads the
four idx files (gzipped or not) from a local directory and writes array_record
files that ``tfds.data_source`` reads with random access. Online and with no
local directory, it downloads the same files from their usual mirror.

Examples keep their position in the original files as ``index``, because TFDS
shuffles records when it prepares them and protocols such as the Parzen
estimate's validation split (train images 50,000-59,999) refer to that order.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import urllib.parse
import zlib

import numpy as np
import tensorflow_datasets as tfds

from jaxgan.errors import DatasetNotFoundError

SOURCE_DIR_ENV = "JAXGAN_MNIST_DIR"
FASHION_SOURCE_DIR_ENV = "JAXGAN_FASHION_MNIST_DIR"

FILES = {
  "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
  "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# SHA-256 of the uncompressed files (LeCun's MNIST); checked when preparing.
MNIST_SHA256 = {
  "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
  "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
  "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
  "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
URLS = {
  "mnist": "https://storage.googleapis.com/cvdf-datasets/mnist/",
  "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}


def find_idx_file(directory: str, name: str) -> str | None:
  for candidate in (name, name + ".gz"):
    path = os.path.join(directory, candidate)
    if os.path.exists(path):
      return path
  return None


def read_idx(path: str, expected_sha256: str | None = None) -> np.ndarray:
  """Reads an idx1/idx3 file (optionally gzipped), checking magic, size and hash."""
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      raw = f.read()
  except (
    EOFError,
    OSError,
    zlib.error,
  ) as e:  # a truncated or damaged .gz (BadGzipFile is an OSError)
    raise DatasetNotFoundError(
      f"{path} cannot be read ({type(e).__name__}: {e}); it is truncated or damaged: "
      f"replace it with a fresh copy."
    ) from None
  if expected_sha256 and hashlib.sha256(raw).hexdigest() != expected_sha256:
    raise DatasetNotFoundError(
      f"{path} is corrupt or not the standard file: its SHA-256 (uncompressed) is "
      f"{hashlib.sha256(raw).hexdigest()}, expected {expected_sha256}. Replace it."
    )
  magic = int.from_bytes(raw[:4], "big")
  ndim = magic & 0xFF
  if magic >> 8 != 0x08 or ndim not in (1, 3):
    raise DatasetNotFoundError(f"{path} is not an idx file of uint8 (magic {magic:#x}).")
  dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
  data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
  if data.size != int(np.prod(dims)):
    raise DatasetNotFoundError(f"{path} is truncated: {data.size} bytes for shape {dims}.")
  return data.reshape(dims)


def host_reachable(url: str, timeout: float = 3.0) -> bool:
  """A quick TCP probe, so offline runs fail in seconds instead of retrying for minutes."""
  parts = urllib.parse.urlparse(url)
  port = parts.port or (443 if parts.scheme == "https" else 80)
  try:
    with socket.create_connection((parts.hostname, port), timeout=timeout):
      return True
  except OSError:
    return False


class IdxImages(tfds.core.GeneratorBasedBuilder):
  """MNIST-format datasets (28x28 grey images, 10 classes) from idx files."""

  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = [  # noqa: RUF012 (TFDS reads this class attribute)
    tfds.core.BuilderConfig(name="mnist", description="LeCun et al. handwritten digits"),
    tfds.core.BuilderConfig(name="fashion_mnist", description="Zalando article images"),
  ]

  def __init__(self, *, source_dir: str | None = None, **kwargs):
    self._source_dir = source_dir
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
          "label": tfds.features.ClassLabel(num_classes=10),
          "index": tfds.features.Scalar(dtype=np.int64),
        }
      ),
      supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    paths = self._local_paths() if self._source_dir else self._download(dl_manager)
    return {split: self._generate_examples(paths[split]) for split in FILES}

  def _local_paths(self) -> dict[str, tuple[str, str]]:
    out = {}
    for split, names in FILES.items():
      found = [find_idx_file(self._source_dir, n) for n in names]
      if None in found:
        missing = [n for n, p in zip(names, found) if p is None]
        raise DatasetNotFoundError(
          f"{self.builder_config.name}: {', '.join(missing)} (or .gz) not found in "
          f"{self._source_dir}. Put the four idx files there."
        )
      out[split] = tuple(found)
    return out

  def _download(self, dl_manager) -> dict[str, tuple[str, str]]:
    base = URLS[self.builder_config.name]
    files = dl_manager.download({n: base + n + ".gz" for names in FILES.values() for n in names})
    return {split: tuple(os.fspath(files[n]) for n in names) for split, names in FILES.items()}

  def _generate_examples(self, paths):
    images_path, labels_path = paths
    check = self.builder_config.name == "mnist"
    name = lambda p: os.path.basename(p).removesuffix(".gz")
    images = read_idx(images_path, MNIST_SHA256.get(name(images_path)) if check else None)
    labels = read_idx(labels_path, MNIST_SHA256.get(name(labels_path)) if check else None)
    if len(images) != len(labels):
      raise DatasetNotFoundError(
        f"{images_path} and {labels_path} hold different numbers of examples."
      )
    for i in range(len(labels)):
      yield i, {"image": images[i][..., None], "label": int(labels[i]), "index": i}


def prepare(name: str, data_dir: str, source_dir: str = "") -> IdxImages:
  """The prepared builder for ``name`` ('mnist' or 'fashion_mnist'), preparing it if needed.

  ``source_dir`` falls back to $JAXGAN_MNIST_DIR (or $JAXGAN_FASHION_MNIST_DIR).
  Raises DatasetNotFoundError within seconds when the files are neither prepared,
  nor local, nor downloadable.
  """
  env = SOURCE_DIR_ENV if name == "mnist" else FASHION_SOURCE_DIR_ENV
  source_dir = source_dir or os.environ.get(env, "")
  builder = IdxImages(config=name, data_dir=data_dir, source_dir=source_dir or None)
  if builder.is_prepared():
    return builder
  if source_dir and not os.path.isdir(source_dir):
    raise DatasetNotFoundError(
      f"{name}: the raw-file directory {source_dir} does not exist. Point "
      f"config.data.source_dir (or ${env}) at the directory holding the four idx files."
    )
  if not source_dir and not host_reachable(URLS[name]):
    raise DatasetNotFoundError(
      f"{name} is not prepared under {data_dir} and there is no network to download it. "
      f"Put the four raw idx files ({', '.join(n for ns in FILES.values() for n in ns)}, "
      f"gzipped or not) in a directory and set config.data.source_dir=DIR or "
      f"${env}=DIR; jaxgan prepares them offline (a few seconds)."
    )
  builder.download_and_prepare(file_format="array_record")
  return builder
