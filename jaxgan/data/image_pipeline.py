"""Deterministic, sharded, prefetchable minibatches of images.

The example order is a stream of epochs, each a permutation keyed by
(seed, epoch); slot j of the stream is example perm_{j // N}[j % N]. Step s,
minibatch i and batch position b use slot (s * M + i) * B + b, M the step's real
minibatches (``train.d_steps``, one more with ``train.g_real_batch='fresh'``: D's
first, then G's, as consecutive batches of one stream), so any step's batch is
computed directly from s: resuming at step s is exact, and process p of P reads
only positions [p B/P, (p+1) B/P) of each global batch.

With ``train_range=(start, stop)`` (``config.data.train_range``) only the
examples whose position in the original files is in [start, stop) are drawn,
e.g. (0, 50000) for the 2014 GAN paper's MNIST (images 50,000-59,999 held out
for validation): N is their number, and slot j is ``train_positions[perm[...]]``
with ``train_positions`` their record positions sorted by original index, so the
order does not depend on how the records are stored. With () the whole split is
drawn, exactly as before the option existed.

With ``on_device=True`` the whole split lives on every device (MNIST: 47 MB as
uint8) and the host sends only int32 indices; the compiled step gathers and
scales the images itself.
"""

from __future__ import annotations

import numpy as np

from jaxgan.data.pipeline import Pipeline
from jaxgan.data.protocol import IndexedDataset
from jaxgan.errors import ConfigError


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch]).permutation(n)


def range_positions(dataset: IndexedDataset, train_range: tuple[int, int]) -> np.ndarray:
  """Record positions of the examples whose original index is in [start, stop),
  sorted by that index (reads the whole split once: ``load_all``)."""
  start, stop = (int(v) for v in train_range)
  original = np.asarray(dataset.load_all()["index"])
  what = f"config.data.train_range={(start, stop)!r}"
  split = f"{dataset.spec.name}'s {dataset.split} split" if dataset.split else dataset.spec.name
  top = int(original.max()) + 1 if len(original) else 0
  if stop > top:
    raise ConfigError(
      f"{what} asks for images up to {stop - 1:,} but {split} has {top:,}; "
      f"use a stop of at most {top:,}, or () for the whole split."
    )
  order = np.argsort(original, kind="stable")
  lo, hi = np.searchsorted(original[order], [start, stop], side="left")
  if hi <= lo:
    raise ConfigError(
      f"{what} selects no images of {split} (its original indices run "
      f"{int(original.min()):,}-{top - 1:,}); widen the range or use ()."
    )
  return order[lo:hi].astype(np.int64)


class ImagePipeline(Pipeline):
  """Feeds an ``IndexedDataset``, scaling pixels to ``value_range`` inside the step."""

  def __init__(
    self,
    dataset: IndexedDataset,
    *,
    global_batch: int,
    minibatches: int,
    seed: int,
    value_range: tuple[float, float],
    process_index: int = 0,
    process_count: int = 1,
    train_range: tuple[int, int] | tuple[()] = (),
  ):
    if global_batch % process_count:
      raise ValueError(f"batch {global_batch} does not split over {process_count} processes")
    self.dataset = dataset
    self.spec = dataset.spec
    self.global_batch, self.minibatches, self.seed = global_batch, minibatches, seed
    self.local_batch = global_batch // process_count
    self.process_index = process_index
    self.value_range = value_range
    self.on_device = dataset.on_device
    self.train_range = tuple(train_range)
    # Record positions training draws from (sorted by original index), or None: all of them.
    self.train_positions = range_positions(dataset, self.train_range) if self.train_range else None
    self.num_train_examples = (
      len(dataset) if self.train_positions is None else len(self.train_positions)
    )
    self._permutations: dict[int, np.ndarray] = {}

  def close(self) -> None:
    self.dataset.close()

  def example_indices(self, start: int, num_steps: int) -> np.ndarray:
    """Dataset positions for steps [start, start + n): int64 [n, minibatches, B_local]."""
    k, B, n = self.minibatches, self.global_batch, self.num_train_examples
    steps = np.arange(start, start + num_steps, dtype=np.int64)
    slots = (
      (steps[:, None, None] * k + np.arange(k)[None, :, None]) * B
      + self.process_index * self.local_batch
      + np.arange(self.local_batch)[None, None, :]
    )
    epochs, within = np.divmod(slots, n)
    out = np.empty_like(slots)
    for e in np.unique(epochs):
      mask = epochs == e
      out[mask] = self._permutation(int(e))[within[mask]]
    return out if self.train_positions is None else self.train_positions[out]

  def _permutation(self, epoch: int) -> np.ndarray:
    if epoch not in self._permutations:
      if len(self._permutations) > 4:
        self._permutations.pop(min(self._permutations))
      self._permutations[epoch] = epoch_permutation(self.seed, epoch, self.num_train_examples)
    return self._permutations[epoch]

  def host_inputs(self, start: int, num_steps: int):
    indices = self.example_indices(start, num_steps)
    if self.on_device:
      return {"index": indices.astype(np.int32)}
    return self.dataset.read(indices)

  def inputs_batch_axes(self):
    return {"index": 2} if self.on_device else {"x": 2, "y": 2}

  def device_data(self):
    if not self.on_device:
      return None
    data = self.dataset.load_all()
    return {"x": data["x"], "y": data["y"]}

  def materialize(self, step_inputs, device_data, axis_name):
    del axis_name  # inputs arrive already sharded
    if self.on_device:
      x, y = device_data["x"][step_inputs["index"]], device_data["y"][step_inputs["index"]]
    else:
      x, y = step_inputs["x"], step_inputs["y"]
    lo, hi = self.value_range
    batch = {"x": x.astype(np.float32) * ((hi - lo) / 255.0) + lo}
    if self.spec.num_classes:
      batch["y"] = y
    return batch
