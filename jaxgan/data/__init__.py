"""Datasets by name (``config.data.name``) and the pipelines that feed them.

Each registered builder's keyword arguments are the other keys of
``config.data``; what it returns meets ``jaxgan.data.protocol`` (a
``SampledDataset`` or an ``IndexedDataset``), which ``build_dataset`` checks.
Image datasets are read through ``tfds.data_source``;
``mnist`` and ``fashion_mnist`` (raw idx files, ``mnist_builder``) and ``cifar10`` and
``cifar100`` (the official python tarballs, ``cifar_builder``) are prepared without
TensorFlow; other TFDS datasets need the ``[tf]`` extra once, to prepare them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_collections

from jaxgan.data import images, protocol
from jaxgan.data import stacked as sm
from jaxgan.data.image_pipeline import ImagePipeline
from jaxgan.data.mixtures import grid_2d, ring_2d
from jaxgan.data.pipeline import Pipeline, Prefetcher, real_minibatches
from jaxgan.data.protocol import Dataset, IndexedDataset, SampledDataset
from jaxgan.data.spec import DataSpec
from jaxgan.data.synthetic import Gaussian1D, OnDeviceSampler
from jaxgan.errors import ConfigError
from jaxgan.registry import Registry

DATASETS: Registry[Callable[..., Dataset]] = Registry("dataset")
DATASETS.register("gaussian_1d")(Gaussian1D)
DATASETS.register("ring_2d")(ring_2d)
DATASETS.register("grid_2d")(grid_2d)

# Keys of config.data that are not the dataset builder's own arguments.
GENERAL_DATA_KEYS = ("name", "train_range")
PIXEL_RANGES = {"zero_one": (0.0, 1.0), "minus_one_one": (-1.0, 1.0)}

__all__ = [
  "DATASETS",
  "DataSpec",
  "Dataset",
  "IndexedDataset",
  "Pipeline",
  "Prefetcher",
  "SampledDataset",
  "build_dataset",
  "build_pipeline",
]


@DATASETS.register("mnist")
def mnist(
  *,
  split: str = "train",
  data_dir: str = "",
  source_dir: str = "",
  on_device: bool = False,
  num_workers: int = 4,
  pixel_range: str = "auto",
  pad: int = 0,
):
  """MNIST from raw idx files in ``source_dir`` (or $JAXGAN_MNIST_DIR); no TensorFlow.
  ``pad``: zero pixels around each image (2: 32x32, for StyleGAN2)."""
  return images.open_idx(
    "mnist",
    split,
    data_dir=data_dir,
    source_dir=source_dir,
    pad=pad,
    on_device=on_device,
    num_workers=num_workers,
    pixel_range=pixel_range,
  )


@DATASETS.register("fashion_mnist")
def fashion_mnist(
  *,
  split: str = "train",
  data_dir: str = "",
  source_dir: str = "",
  on_device: bool = False,
  num_workers: int = 4,
  pixel_range: str = "auto",
):
  """Fashion-MNIST from raw idx files in ``source_dir`` (or $JAXGAN_FASHION_MNIST_DIR)."""
  return images.open_idx(
    "fashion_mnist",
    split,
    data_dir=data_dir,
    source_dir=source_dir,
    on_device=on_device,
    num_workers=num_workers,
    pixel_range=pixel_range,
  )


@DATASETS.register("stacked_mnist")
def stacked_mnist(
  *,
  split: str = "train",
  size: int = 128_000,
  seed: int = 0,
  data_dir: str = "",
  source_dir: str = "",
  on_device: bool = True,
  num_workers: int = 4,
  pixel_range: str = "auto",
  pad: int = 0,
):
  """Stacked MNIST (28x28x3, 1,000 modes): ``size`` examples, each three MNIST digits of
  ``split`` chosen by (``seed``, index); see ``jaxgan.data.stacked``. ``pad``: zero pixels
  around each digit (2: 32x32x3, for StyleGAN2)."""
  return sm.open_stacked(
    split,
    size=size,
    seed=seed,
    mnist_options=dict(data_dir=data_dir, source_dir=source_dir, num_workers=num_workers, pad=pad),
    on_device=on_device,
    num_workers=num_workers,
    pixel_range=pixel_range,
  )


@DATASETS.register("cifar10")
def cifar10(
  *,
  split: str = "train",
  data_dir: str = "",
  source_dir: str = "",
  on_device: bool = False,
  num_workers: int = 4,
  pixel_range: str = "auto",
  xflip: bool = False,
):
  """CIFAR-10 (32x32x3, 10 classes) from cifar-10-python.tar.gz in ``source_dir`` (or
  $JAXGAN_CIFAR10_DIR), prepared once as array_record; no TensorFlow (``cifar_builder``).
  ``xflip`` doubles the training split with mirror images (StyleGAN's ``--mirror``)."""
  return images.open_cifar(
    "cifar10",
    split,
    data_dir=data_dir,
    source_dir=source_dir,
    xflip=xflip,
    on_device=on_device,
    num_workers=num_workers,
    pixel_range=pixel_range,
  )


@DATASETS.register("cifar100")
def cifar100(
  *,
  split: str = "train",
  label: str = "fine",
  data_dir: str = "",
  source_dir: str = "",
  on_device: bool = False,
  num_workers: int = 4,
  pixel_range: str = "auto",
  xflip: bool = False,
):
  """CIFAR-100 (32x32x3) from cifar-100-python.tar.gz in ``source_dir`` (or
  $JAXGAN_CIFAR100_DIR); ``label``: 'fine' (100 classes) or 'coarse' (20 superclasses);
  ``xflip`` doubles the training split with mirror images."""
  return images.open_cifar(
    "cifar100",
    split,
    data_dir=data_dir,
    source_dir=source_dir,
    xflip=xflip,
    label=label,
    on_device=on_device,
    num_workers=num_workers,
    pixel_range=pixel_range,
  )


@DATASETS.register("image_folder")
def image_folder(
  *,
  source: str = "",
  resolution: int = 64,
  net_resolution: int = 0,
  crop: str = "center",
  channels: int = 3,
  xflip: bool = False,
  skip_bad: bool = False,
  upscale: bool = False,
  split: str = "train",
  data_dir: str = "",
  on_device: bool = False,
  num_workers: int = 4,
  pixel_range: str = "auto",
):
  """A folder or .zip of PNG/JPEG/WebP images (StyleGAN2-ADA's dataset_tool input),
  prepared once as array_record at ``resolution`` (``crop``: center | pad; ``channels``:
  3 | 1); labels from dataset.json or first-level folders; ``xflip`` doubles it with
  mirror images; ``skip_bad`` skips unreadable files; ``upscale`` enlarges small ones.
  ``net_resolution``: the side an experiment's nets are made for (0: any); another
  ``resolution`` is refused before anything is prepared."""
  from jaxgan.data import folder_builder  # imports tensorflow_datasets (slow): image data only

  folder_builder.check_net_resolution(resolution, net_resolution)
  return images.open_image_folder(
    split,
    source=source,
    data_dir=data_dir,
    resolution=resolution,
    crop=crop,
    channels=channels,
    xflip=xflip,
    skip_bad=skip_bad,
    upscale=upscale,
    on_device=on_device,
    num_workers=num_workers,
    pixel_range=pixel_range,
  )


@DATASETS.register("celeb_a")
def celeb_a(
  *,
  split: str = "train",
  data_dir: str = "",
  image_size: int = 64,
  crop: int = 108,
  num_workers: int = 8,
  pixel_range: str = "auto",
):
  """CelebA faces, centre-cropped to ``crop`` and resized (DCGAN's recipe); no labels."""
  return images.open_tfds(
    "celeb_a",
    split,
    data_dir=data_dir,
    shape=(image_size, image_size, 3),
    num_classes=0,
    on_device=False,
    num_workers=num_workers,
    pixel_range=pixel_range,
    label_key="",
    preprocess=images.center_crop_resize(image_size, crop),
  )


@DATASETS.register("tfds")
def tfds_images(
  *,
  tfds_name: str = "",
  split: str = "train",
  data_dir: str = "",
  image_size: int = 0,
  channels: int = 3,
  num_classes: int = 0,
  on_device: bool = False,
  num_workers: int = 4,
  pixel_range: str = "auto",
):
  """Any TFDS image dataset prepared as array_record; ``image_size`` > 0 crops and resizes."""
  if not tfds_name:
    raise ConfigError("config.data.tfds_name is required with data.name='tfds'")
  size = image_size
  shape = (size, size, channels) if size else images.tfds_image_shape(tfds_name, data_dir)
  return images.open_tfds(
    tfds_name,
    split,
    data_dir=data_dir,
    shape=shape,
    num_classes=num_classes,
    on_device=on_device,
    num_workers=num_workers,
    pixel_range=pixel_range,
    label_key="label" if num_classes else "",
    preprocess=images.center_crop_resize(size) if size else None,
  )


def dataset_kwargs(data_config: ml_collections.ConfigDict) -> dict[str, Any]:
  return {k: v for k, v in data_config.items() if k not in GENERAL_DATA_KEYS}


def build_dataset(data_config: ml_collections.ConfigDict, **overrides) -> Dataset:
  """The dataset named by ``config.data.name`` (``overrides``, e.g. split='test'),
  checked against its ``jaxgan.data.protocol``."""
  dataset = DATASETS.get(data_config.name)(**{**dataset_kwargs(data_config), **overrides})
  protocol.check(dataset, data_config.name)
  return dataset


def resolve_pixel_range(
  dataset: IndexedDataset, model_range: tuple[float, float] | None
) -> tuple[float, float]:
  """The range real images are scaled to: the model's output range unless configured."""
  name = dataset.pixel_range
  if name == "auto":
    if model_range is None:
      raise ConfigError(
        "config.data.pixel_range='auto' needs a model with a bounded output (sigmoid or tanh); "
        f"set it to one of {', '.join(PIXEL_RANGES)}."
      )
    return model_range
  if name not in PIXEL_RANGES:
    raise ConfigError(f"config.data.pixel_range={name!r}; valid: auto, {', '.join(PIXEL_RANGES)}.")
  if model_range is not None and tuple(model_range) != PIXEL_RANGES[name]:
    raise ConfigError(
      f"config.data.pixel_range={name!r} {PIXEL_RANGES[name]} does not match the "
      f"generator's output range {tuple(model_range)}; use 'auto'."
    )
  return PIXEL_RANGES[name]


def build_pipeline(
  config: ml_collections.ConfigDict,
  dataset: Dataset,
  *,
  model_range: tuple[float, float] | None = None,
  process_index: int = 0,
  process_count: int = 1,
) -> Pipeline:
  """The pipeline that feeds ``dataset`` to training: this process's share of each batch."""
  train_range = tuple(config.data.get("train_range", ()))
  minibatches = real_minibatches(config.train.d_steps, config.train.get("g_real_batch", "last_d"))
  if dataset.spec.is_image:
    return ImagePipeline(
      dataset,
      global_batch=config.train.batch_size,
      minibatches=minibatches,
      seed=config.seed,
      value_range=resolve_pixel_range(dataset, model_range),
      process_index=process_index,
      process_count=process_count,
      train_range=train_range,
    )
  if train_range:
    raise ConfigError(
      f"config.data.train_range={train_range!r} applies to image datasets only; "
      f"{config.data.name!r} is sampled, so leave it ()."
    )
  return OnDeviceSampler(dataset, config.train.batch_size, minibatches, config.seed)
