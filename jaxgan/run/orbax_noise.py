"""Filters for orbax's noise, installed by a program for as long as it runs (``filtered()``).

Three kinds of output say nothing the run does not already say in one line:

* after a failed read of a damaged checkpoint, tensorstore completes its pending reads
  into orbax's closed asyncio loop and the abandoned read coroutines are collected
  later: dozens of tracebacks through ``sys.unraisablehook``, some long after the read
  returned (the run names the damaged step in one line);
* with a selection metric, steps saved between evaluations carry no metrics on purpose,
  and orbax warns "Requested `tracked_metric`..." for each;
* a full disk during an async save is logged by orbax's threads with a traceback each,
  four or more per save, and asyncio logs the failed write tasks when they are collected
  (the run stops with one line: ``jaxgan.run.disk_full``).

The filters are process-wide (a hook and a logger filter), so a library constructor must
not install them: the programs do (``jaxgan-train``, and ``jaxgan.train``/``open_run``,
which are the programs of a notebook), for their duration, and remove them on exit.
Nesting is fine. A block left by a full disk keeps only the asyncio filter: the failed
save's tasks may be collected as late as the interpreter's exit. Standard library only, so
a program can enter it before JAX loads.
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
  """Records of steps saved without metrics, and of a full disk in orbax's threads or
  tasks."""

  def filter(self, record: logging.LogRecord) -> bool:
    if str(record.msg).startswith(NO_METRICS):
      return False
    if record.exc_info and disk_full.errno_of(record.exc_info[1]) is not None:
      return False
    return disk_full.errno_of_text(record.getMessage()) is None


_depth = 0
_log_filter = _DropLogNoise()
_LOGGERS = ("absl", "asyncio")


@contextlib.contextmanager
def filtered() -> Iterator[None]:
  """Drops orbax's noise (above) inside the block; the outermost exit removes the filters,
  after collecting the abandoned read coroutines so their tracebacks are dropped too."""
  global _depth
  if _depth == 0:
    sys.unraisablehook = _DropReadNoise(sys.unraisablehook)
    for name in _LOGGERS:
      logging.getLogger(name).addFilter(_log_filter)
  _depth += 1
  full = False
  try:
    yield
  except BaseException as e:
    full = disk_full.errno_of(e) is not None
    raise
  finally:
    _depth -= 1
    if _depth == 0:
      gc.collect()
      hook = sys.unraisablehook
      if isinstance(hook, _DropReadNoise):  # else someone wrapped it since: leave theirs be
        sys.unraisablehook = hook.chain
      logging.getLogger("absl").removeFilter(_log_filter)
      if not full:
        logging.getLogger("asyncio").removeFilter(_log_filter)


def installed() -> bool:
  return _depth > 0
