"""What a dataset looks like to the models, independent of where it is read from."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """Shape and label information that model builders need.

  Attributes:
    shape: one example's shape, e.g. (1,) for scalars or (28, 28, 1) for MNIST.
    num_classes: number of labels for conditional models; 0 when there are none.
    is_image: images are stored as uint8 and scaled to the model's output range.
    name: the dataset's registry name, for messages and figures.
  """

  shape: tuple[int, ...]
  num_classes: int = 0
  is_image: bool = False
  name: str = ""
