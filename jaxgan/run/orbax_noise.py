"""Filters for orbax's noise, installed by a program for as long as it runs (``filtered()``).

Three kinds of output say nothing the run does not already say in one line:

* after a failed read of a damaged checkpoint, tensorstore completes its pending reads
  into orbax's closed asyncio loop and the abandoned read coroutines are collected
  later: dozens of tracebacks through ``sys.unraisablehook``, some long after the read
  returned (the run names the damaged step in one line);
* with a selection metric, steps saved between evaluations carry no metrics on purpose,
  and orbax warns "Requested `tracked_metric`..." for each;
* a full disk during an async save is logged by orbax's threads with a traceback each,
  four or more per save (the run stops with one line: ``jaxgan.run.disk_full``).

The filters are process-wide (a hook and a logger filter), so a library constructor must
not install them: the programs do (``jaxgan-train``, and ``jaxgan.train``/``open_run``,
which are the programs of a notebook), for their duration, and remove them on exit.
Nesting is fine. Standard library only, so a program can enter it before JAX loads.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

from jaxgan.run import disk_full

READ_NOISE = ("Event loop is closed", "Encountered error while reading array index")
NO_METRICS = "Requested `tracked_metric`"


class _DropReadNoise:
  """``sys.unraisablehook`` that drops only the noise of orbax's failed reads."""

  def __init__(self, chain: Callable[[Any], None]):
    self.chain = chain

  def __call__(self, unraisable: Any) -> None:
    if not str(unraisable.exc_value).startswith(READ_NOISE):
      self.chain(unraisable)


class _DropLogNoise(logging.Filter):
  """absl records of steps saved without metrics, and of a full disk in orbax's threads."""

  def filter(self, record: logging.LogRecord) -> bool:
    if str(record.msg).startswith(NO_METRICS):
      return False
    if record.exc_info and disk_full.errno_of(record.exc_info[1]) is not None:
      return False
    return disk_full.errno_of_text(record.getMessage()) is None


_depth = 0
_log_filter = _DropLogNoise()


@contextlib.contextmanager
def filtered() -> Iterator[None]:
  """Drops orbax's noise (above) inside the block; the outermost exit removes the filters,
  after collecting the abandoned read coroutines so their tracebacks are dropped too."""
  global _depth
  absl_logger = logging.getLogger("absl")
  if _depth == 0:
    sys.unraisablehook = _DropReadNoise(sys.unraisablehook)
    absl_logger.addFilter(_log_filter)
  _depth += 1
  try:
    yield
  finally:
    _depth -= 1
    if _depth == 0:
      gc.collect()
      hook = sys.unraisablehook
      if isinstance(hook, _DropReadNoise):  # else someone wrapped it since: leave theirs be
        sys.unraisablehook = hook.chain
      absl_logger.removeFilter(_log_filter)


def installed() -> bool:
  return _depth > 0
