"""The input-pipeline contract, and a background prefetcher.

A pipeline's batches are a pure function of the iteration index: the inputs of
steps [start, start + n) are ``host_inputs(start, n)``. That makes the data
position trivially part of a checkpoint (it is the step) and resumed runs see
exactly the batches an uninterrupted run would have seen.

Work is split between the host and the compiled step:
  * ``host_inputs`` returns numpy arrays with leading [n, ...] (one entry per
    fused step): images, indices into an on-device dataset, or just iteration
    numbers for data sampled on device.
  * ``materialize`` runs inside the compiled per-device step and turns one
    step's inputs into the real batch ``{'x': [M, B_local, ...], 'y': ...}``: M =
    ``real_minibatches(train.d_steps, train.g_real_batch)`` minibatches, one per D
    update and, with ``g_real_batch='fresh'``, one more that only G's updates see.
"""

from __future__ import annotations

import abc
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax

from jaxgan.data.spec import DataSpec

PyTree = Any


def real_minibatches(d_steps: int, g_real_batch: str = "last_d") -> int:
  """Real minibatches a step reads: one per D update, plus G's own with ``'fresh'``
  (``config.train.g_real_batch``; ``jaxgan.core.train_step``)."""
  return d_steps + (g_real_batch == "fresh")


class Pipeline(abc.ABC):
  """Feeds ``minibatches`` real minibatches of ``global_batch`` examples per step."""

  spec: DataSpec
  global_batch: int
  minibatches: int

  @abc.abstractmethod
  def host_inputs(self, start: int, num_steps: int) -> PyTree:
    """Inputs for steps [start, start + num_steps): numpy arrays, leading axis num_steps."""

  @abc.abstractmethod
  def inputs_batch_axes(self) -> PyTree:
    """For each leaf of ``host_inputs``: the axis holding examples (sharded over
    devices), or None for leaves every device needs whole."""

  def device_data(self) -> PyTree | None:
    """Arrays placed on every device once (e.g. a whole small dataset), or None."""
    return None

  @abc.abstractmethod
  def materialize(
    self, step_inputs: PyTree, device_data: PyTree | None, axis_name: str | None
  ) -> dict[str, jax.Array]:
    """Inside the compiled step: one step's inputs -> {'x': [minibatches, B_local, ...], ...}."""

  def close(self) -> None:  # noqa: B027 (an optional hook, not abstract)
    """Releases files or threads; pipelines without any need not override it."""


class Prefetcher:
  """Produces device-ready inputs for a fixed list of (start, n) chunks, ahead of use."""

  def __init__(
    self, produce: Callable[[int, int], PyTree], chunks: Sequence[tuple[int, int]], depth: int = 2
  ):
    self._queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, args=(produce, list(chunks)), daemon=True)
    self._thread.start()

  def _run(self, produce, chunks):
    for start, n in chunks:
      if self._stop.is_set():
        return
      try:
        item = produce(start, n)
      except BaseException as e:  # surfaced in the consumer's thread
        item = e
      while not self._stop.is_set():
        try:
          self._queue.put(item, timeout=0.1)
          break
        except queue.Full:
          continue
      if isinstance(item, BaseException):
        return

  def __iter__(self) -> Iterator[PyTree]:
    return self

  def __next__(self) -> PyTree:
    item = self._queue.get()
    if isinstance(item, BaseException):
      raise item
    return item

  def close(self) -> None:
    self._stop.set()
    self._thread.join(timeout=10)
