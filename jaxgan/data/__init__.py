"""Datasets by name (``config.data.name``) and the pipelines that feed them."""

from __future__ import annotations

from typing import Any, Callable

import ml_collections

from jaxgan.data.pipeline import Pipeline, Prefetcher
from jaxgan.data.spec import DataSpec
from jaxgan.data.synthetic import Gaussian1D, OnDeviceSampler
from jaxgan.registry import Registry

DATASETS: Registry[Callable[..., Any]] = Registry("dataset")
DATASETS.register("gaussian_1d")(Gaussian1D)

# Keys of config.data that are not the dataset builder's own arguments.
GENERAL_DATA_KEYS = ("name",)

__all__ = ["DATASETS", "DataSpec", "Pipeline", "Prefetcher", "build_dataset", "build_pipeline"]


def dataset_kwargs(data_config: ml_collections.ConfigDict) -> dict[str, Any]:
  return {k: v for k, v in data_config.items() if k not in GENERAL_DATA_KEYS}


def build_dataset(data_config: ml_collections.ConfigDict):
  """The dataset object named by ``config.data.name``, with its spec and sampler or reader."""
  return DATASETS.get(data_config.name)(**dataset_kwargs(data_config))


def build_pipeline(config: ml_collections.ConfigDict, dataset, *,
                   process_index: int = 0, process_count: int = 1) -> Pipeline:
  """The pipeline that feeds ``dataset`` to training, this process's share of each batch."""
  del process_index, process_count  # synthetic data is drawn on device, sliced per device
  return OnDeviceSampler(dataset, config.train.batch_size, config.train.d_steps, config.seed)
