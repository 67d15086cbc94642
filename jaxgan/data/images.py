"""Image datasets read through ``tfds.data_source`` (array_record, random access, no TensorFlow)."""

from __future__ import annotations

import concurrent.futures
import importlib.util
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError, DatasetNotFoundError

Preprocess = Callable[[np.ndarray], np.ndarray]


def default_data_dir(data_dir: str = "") -> str:
  return os.path.expanduser(data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets"))


class ImageDataset:
  """One split of an image dataset: random access to uint8 HWC images and labels
  (a ``jaxgan.data.protocol.IndexedDataset``)."""

  def __init__(
    self,
    name: str,
    split: str,
    source: Any,
    *,
    shape: tuple[int, int, int],
    num_classes: int,
    on_device: bool = False,
    num_workers: int = 4,
    pixel_range: str = "auto",
    preprocess: Preprocess | None = None,
    label_key: str = "label",
    reopen: Callable[[str], ImageDataset] | None = None,
  ):
    self.name, self.split, self.source = name, split, source
    self.spec = DataSpec(shape=tuple(shape), num_classes=num_classes, is_image=True, name=name)
    self.on_device = on_device
    self.num_workers = num_workers
    self.pixel_range = pixel_range  # 'auto' (the generator's output range) or a named range
    self._preprocess = preprocess
    self._label_key = label_key
    self._pool: concurrent.futures.ThreadPoolExecutor | None = None  # made once, on first use
    self._reopen = reopen
    self._all: dict[str, np.ndarray] | None = None
    self._batched_reads = hasattr(source, "__getitems__")

  def __len__(self) -> int:
    return len(self.source)

  @property
  def in_memory(self) -> bool:
    """``load_all`` has run: the whole split is held, and reading it again is free."""
    return self._all is not None

  def other_split(self, split: str) -> ImageDataset:
    """The same dataset, another split (e.g. 'test' for evaluation)."""
    if self._reopen is None:
      raise ValueError(f"{self.name} cannot open split {split!r}")
    return self._reopen(split)

  def _convert(self, ex: dict, i: int) -> tuple[np.ndarray, int, int]:
    image = np.asarray(ex["image"], np.uint8)
    if image.ndim == 2:
      image = image[..., None]
    if self._preprocess is not None:
      image = self._preprocess(image)
    label = int(ex[self._label_key]) if self._label_key in ex else 0
    return image, label, int(ex.get("index", i))

  def _read_chunk(self, chunk: np.ndarray) -> list[tuple[np.ndarray, int, int]]:
    """One batched read where the source has one (array_record: ~5x faster than one by one)."""
    positions = [int(i) for i in chunk]
    examples = None
    if self._batched_reads:
      try:
        examples = self.source.__getitems__(positions)
      except TypeError:  # e.g. tfds.testing.mock_data's source, whose __getitems__ is unbound
        self._batched_reads = False
    if examples is None:
      examples = [self.source[i] for i in positions]
    return [self._convert(ex, i) for ex, i in zip(examples, positions)]

  def _read_examples(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    size = 64 if self._preprocess is not None else 1024  # decoding+resizing is the cost: spread it
    chunks = [flat[i : i + size] for i in range(0, len(flat), size)]
    if self.num_workers > 1 and len(chunks) > 1:
      if self._pool is None:
        self._pool = concurrent.futures.ThreadPoolExecutor(self.num_workers)
      parts = list(self._pool.map(self._read_chunk, chunks))
    else:
      parts = [self._read_chunk(c) for c in chunks]
    examples = [e for part in parts for e in part]
    x = (
      np.stack([e[0] for e in examples]) if examples else np.zeros((0, *self.spec.shape), np.uint8)
    )
    return x, np.asarray([e[1] for e in examples], np.int32), np.asarray([e[2] for e in examples])

  def close(self) -> None:
    if self._pool is not None:
      self._pool.shutdown()
      self._pool = None

  def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Examples at ``indices`` (any shape): {'x': uint8 [..., H, W, C], 'y': int32 [...]}."""
    x, y, _ = self._read_examples(np.asarray(indices).ravel())
    return {"x": x.reshape(*np.shape(indices), *self.spec.shape), "y": y.reshape(np.shape(indices))}

  def load_all(self) -> dict[str, np.ndarray]:
    """The whole split in memory (cached), in record order like ``read``.

    'index' is each example's position in the original files (for protocols that
    name examples by it); sort by it to recover the original order.
    """
    if self._all is None:
      x, y, original = self._read_examples(np.arange(len(self)))
      self._all = {"x": x, "y": y, "index": original}
    return self._all


def tfds_source(name: str, split: str, data_dir: str) -> Any:
  """``tfds.data_source`` for a stock TFDS dataset, failing fast with what to do."""
  import tensorflow_datasets as tfds  # slow to import; only image datasets need it

  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as e:  # unknown name
    raise DatasetNotFoundError(f"TFDS has no dataset {name!r}: {e}") from None
  try:  # first, so that tfds.testing.mock_data (which patches it) works in tests
    return builder.as_data_source(split=split)
  except (KeyError, ValueError) as e:
    raise DatasetNotFoundError(f"{name} has no split {split!r}: {e}") from None
  except Exception as e:
    if builder.is_prepared():
      raise DatasetNotFoundError(
        f"{name} under {data_dir} is prepared as TFRecord, which has no random access. "
        f"Re-prepare it: `tfds build {name} --file_format=array_record --data_dir={data_dir}`."
      ) from e
  has_tf = importlib.util.find_spec("tensorflow") is not None
  how = (
    "TensorFlow is installed, so run `tfds build {n} --file_format=array_record "
    "--data_dir={d}` once (it needs the network)"
    if has_tf
    else "preparing stock TFDS datasets needs TensorFlow: `pip install 'jaxgan[tf]'`, then "
    "`tfds build {n} --file_format=array_record --data_dir={d}` (it needs the network); "
    "or copy an array_record preparation of {n} into {d}"
  )
  raise DatasetNotFoundError(
    f"{name} is not prepared under {data_dir}. " + how.format(n=name, d=data_dir) + "."
  )


def tfds_image_shape(name: str, data_dir: str) -> tuple[int, int, int]:
  """The fixed (H, W, C) of a TFDS dataset's 'image' feature, from its metadata."""
  import tensorflow_datasets as tfds  # slow to import; only image datasets need it

  shape = tuple(
    tfds.builder(name, data_dir=default_data_dir(data_dir)).info.features["image"].shape
  )
  if None in shape:
    raise ConfigError(
      f"{name}'s images have no fixed size {shape}; set config.data.image_size "
      f"to crop and resize them."
    )
  return shape


def center_crop_resize(size: int, crop: int | None = None) -> Preprocess:
  """Square centre crop (default: the short side) then resize: DCGAN's CelebA recipe."""

  def fn(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    c = crop or min(h, w)
    top, left = (h - c) // 2, (w - c) // 2
    patch = image[top : top + c, left : left + c]
    pil = Image.fromarray(patch.squeeze(-1) if patch.shape[-1] == 1 else patch)
    out = np.asarray(pil.resize((size, size), Image.BICUBIC), np.uint8)
    return out[..., None] if out.ndim == 2 else out

  return fn


def pad_borders(pad: int) -> Preprocess:
  """Zero borders of ``pad`` pixels, the background's value: 28x28 MNIST to 32x32 for nets
  that need a power of two (StyleGAN2)."""

  def fn(image: np.ndarray) -> np.ndarray:
    return np.pad(image, ((pad, pad), (pad, pad), (0, 0)))

  return fn


def open_idx(
  name: str, split: str, *, data_dir: str, source_dir: str, pad: int = 0, **options
) -> ImageDataset:
  """MNIST-format data via ``mnist_builder`` (prepared on first use), ``pad`` zero pixels
  around each image. ``options``: on_device, num_workers, pixel_range."""
  from jaxgan.data import mnist_builder  # imports tensorflow_datasets (slow): MNIST only

  data_dir = default_data_dir(data_dir)
  builder = mnist_builder.prepare(name, data_dir, source_dir)
  if pad < 0:
    raise ConfigError(f"config.data.pad must be >= 0, got {pad}.")
  reopen = lambda s: open_idx(name, s, data_dir=data_dir, source_dir=source_dir, pad=pad, **options)
  return ImageDataset(
    name,
    split,
    builder.as_data_source(split=split),
    shape=(28 + 2 * pad, 28 + 2 * pad, 1),
    num_classes=10,
    reopen=reopen,
    preprocess=pad_borders(pad) if pad else None,
    **options,
  )


def open_cifar(
  name: str,
  split: str,
  *,
  data_dir: str,
  source_dir: str,
  label: str = "fine",
  xflip: bool = False,
  **options,
) -> ImageDataset:
  """CIFAR-10 or CIFAR-100 via ``cifar_builder`` (prepared on first use from the official
  tarball, no TensorFlow); ``label``: CIFAR-100's 'fine' (100) or 'coarse' (20) classes;
  ``xflip``: 'train' doubled with mirror images. ``options``: on_device, num_workers,
  pixel_range."""
  if name == "cifar100" and label not in ("fine", "coarse"):
    raise ConfigError(f"config.data.label={label!r}; valid: fine (100 classes), coarse (20).")
  from jaxgan.data import cifar_builder  # imports tensorflow_datasets (slow): image data only

  data_dir = default_data_dir(data_dir)
  builder = cifar_builder.prepare(name, data_dir, source_dir)
  coarse = name == "cifar100" and label == "coarse"
  reopen = lambda s: open_cifar(
    name, s, data_dir=data_dir, source_dir=source_dir, label=label, xflip=xflip, **options
  )
  return ImageDataset(
    name,
    split,
    cifar_builder.data_source(builder, split, xflip),
    shape=(32, 32, 3),
    num_classes=20 if coarse else 100 if name == "cifar100" else 10,
    label_key="coarse_label" if coarse else "label",
    reopen=reopen,
    **options,
  )


def open_tfds(name: str, split: str, *, data_dir: str, **options) -> ImageDataset:
  """A stock TFDS dataset prepared as array_record. ``options``: ImageDataset's keywords."""
  data_dir = default_data_dir(data_dir)
  reopen = lambda s: open_tfds(name, s, data_dir=data_dir, **options)
  return ImageDataset(name, split, tfds_source(name, split, data_dir), reopen=reopen, **options)


def open_image_folder(
  split: str,
  *,
  source: str,
  data_dir: str,
  resolution: int,
  crop: str,
  channels: int,
  xflip: bool,
  skip_bad: bool,
  upscale: bool,
  **options,
) -> ImageDataset:
  """A folder or .zip of images via ``folder_builder`` (prepared on first use; a source
  that changed since is a one-line error saying to re-prepare). One split of images:
  'test' reads the same images (metrics compare with the training set, as StyleGAN's
  FID does), never flipped; 'train' with ``xflip`` doubles them with mirror images.
  ``options``: on_device, num_workers, pixel_range."""
  if split not in ("train", "test"):
    raise ConfigError(f"image_folder has one split of images, 'train' (or 'test'), not {split!r}.")
  from jaxgan.data import folder_builder  # imports tensorflow_datasets (slow): image data only

  data_dir = default_data_dir(data_dir)
  how = folder_builder.Options(resolution, crop, channels, skip_bad, upscale)
  prepared = folder_builder.prepare(source, data_dir, how, new_source_ok=False)
  data = prepared.builder.as_data_source(split="train")
  if xflip and split == "train":
    data = folder_builder.XFlipped(data)
  num_classes = int(prepared.record["num_classes"])
  kwargs = dict(source=source, data_dir=data_dir, resolution=resolution, crop=crop)
  kwargs.update(channels=channels, xflip=xflip, skip_bad=skip_bad, upscale=upscale, **options)
  return ImageDataset(
    "image_folder",
    split,
    data,
    shape=how.shape,
    num_classes=num_classes,
    label_key="label" if num_classes else "",
    reopen=lambda s: open_image_folder(s, **kwargs),
    **options,
  )
