"""What a dataset is: the contract every builder in ``jaxgan.data.DATASETS`` meets.

A builder (``config.data.name``) returns one of two kinds, told apart by
``spec.is_image``:

* ``SampledDataset`` (``gaussian_1d``, ``ring_2d``, ``grid_2d``): a distribution
  sampled inside the compiled step (``jaxgan.data.synthetic.OnDeviceSampler``);
  its evaluators read its own parameters (mean, centres, ...) as well.
* ``IndexedDataset`` (MNIST, CIFAR-10, CelebA, any TFDS image set): one split of
  stored uint8 images, read by record position (``jaxgan.data.image_pipeline``),
  held in memory whole by what compares against real images (``load_all``), with
  the other splits a call away (``other_split``) for test-set metrics.

``build_dataset`` checks what a builder returns (``check``): a member missing is
one line naming it, before anything compiles.
"""

from __future__ import annotations

import inspect
from typing import Generic, Protocol

import jax
import numpy as np

from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError


class Dataset(Protocol):
  """What every dataset gives: the shape and label information models are built for."""

  @property
  def spec(self) -> DataSpec: ...


class SampledDataset(Dataset, Protocol):
  """A distribution sampled on device (``spec.is_image`` False)."""

  def sample(self, key: jax.Array, n: int) -> dict[str, jax.Array]:
    """``n`` examples drawn with ``key`` alone: {'x': [n, *spec.shape]}."""
    ...


class IndexedDataset(Dataset, Protocol):
  """One split of stored images with random access (``spec.is_image`` True).

  Attributes:
    name: the registry name, for messages and cache file names.
    split: which split this is ('train', 'test', ...).
    on_device: training keeps the whole split on every device (``load_all`` once).
    pixel_range: 'auto' (the generator's output range) or a ``PIXEL_RANGES`` name.
  """

  name: str
  split: str
  on_device: bool
  pixel_range: str

  def __len__(self) -> int: ...

  @property
  def in_memory(self) -> bool:
    """The whole split is held already: ``load_all`` returns without reading."""
    ...

  def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Examples at record positions ``indices`` (any shape): {'x': uint8 [..., H, W, C],
    'y': int32 [...]}."""
    ...

  def load_all(self) -> dict[str, np.ndarray]:
    """The whole split in record order: 'x', 'y' and 'index' (each example's position in
    the original files, which protocols such as the Parzen validation split name)."""
    ...

  def other_split(self, split: str) -> IndexedDataset:
    """The same dataset, with the same options, for another split."""
    ...

  def close(self) -> None:
    """Releases reader threads and files; the object is not used afterwards."""
    ...


def members(protocol: type) -> tuple[str, ...]:
  """The names ``protocol`` (and the protocols it extends) require, in declaration order."""
  names: list[str] = []
  for cls in reversed(protocol.__mro__):
    if cls in (object, Protocol, Generic) or not getattr(cls, "_is_protocol", False):
      continue
    for name in (*inspect.get_annotations(cls), *vars(cls)):
      if (name == "__len__" or not name.startswith("_")) and name not in names:
        names.append(name)
  return tuple(names)


def kind(dataset: Dataset) -> type:
  """The protocol ``dataset`` must meet: by ``spec.is_image``."""
  return IndexedDataset if dataset.spec.is_image else SampledDataset


def check(dataset: object, name: str) -> None:
  """Raises a one-line ConfigError naming what ``dataset`` (built for ``name``) lacks."""
  where = f"dataset {name!r}: its builder returned a {type(dataset).__name__}"
  spec = getattr(dataset, "spec", None)
  if not isinstance(spec, DataSpec):
    raise ConfigError(
      f"{where}, whose spec is {type(spec).__name__}, not a jaxgan.data.spec.DataSpec "
      f"(jaxgan.data.protocol.Dataset)."
    )
  protocol = kind(dataset)
  missing = [m for m in members(protocol) if not hasattr(dataset, m)]
  if missing:
    raise ConfigError(
      f"{where}, which lacks {', '.join(missing)} of jaxgan.data.protocol.{protocol.__name__}."
    )
