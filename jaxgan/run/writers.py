"""Where scalars and images go: ``metrics.jsonl``, TensorBoard files, and a progress line."""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

import numpy as np
from tensorboardX import summary as tb_summary  # writes TensorBoard files without TensorFlow
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto import event_pb2

from jaxgan.run import disk_full


def now() -> float:
  """The clock of progress lines, rates and flushes (looked up at each call: tests replace it)."""
  return time.time()


def write_json(path: str, obj: Any, **dump_options: Any) -> None:
  """Writes ``path`` whole or not at all (a temporary file, then a rename): a full disk
  leaves the previous version, never a truncated one."""
  tmp = f"{path}.tmp"
  try:
    with open(tmp, "w") as f:
      json.dump(obj, f, **dump_options)
    os.replace(tmp, path)
  except OSError:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def read_jsonl(path: str) -> list[dict[str, Any]]:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


class MetricWriter:
  """Appends one JSON object per logged step and mirrors it to TensorBoard.

  On resume from step s, records with step > s (logged after the last
  checkpoint by a run that then died) are dropped: the resumed run logs them
  again, identically, so ``metrics.jsonl`` never holds a step twice.

  Writes happen in the caller's thread and a failed append leaves no partial record,
  so a full disk stops the run with one line (``jaxgan.run.disk_full``) and the file
  still parses. TensorBoard events are flushed at most every ``flush_secs`` (and by
  ``flush``/``close``), as tensorboardX's own writer does.
  """

  def __init__(
    self,
    workdir: str,
    *,
    resume_step: int = 0,
    enabled: bool = True,
    tensorboard: bool = True,
    flush_secs: float = 30.0,
    clock: Callable[[], float] | None = None,
  ):
    self.enabled = enabled
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.tensorboard_dir = os.path.join(workdir, "tensorboard")
    self._tb: _EventFile | None = None
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    with disk_full.writing(self.path, "metrics"):
      _keep_through(self.path, resume_step)
    if tensorboard:
      with disk_full.writing(self.tensorboard_dir, "TensorBoard events"):
        self._tb = _EventFile(self.tensorboard_dir, flush_secs, clock or now)

  def write_scalars(self, step: int, scalars: dict[str, Any]) -> None:
    if not self.enabled:
      return
    record = {"step": int(step), **{k: _jsonable(v) for k, v in scalars.items()}}
    with disk_full.writing(self.path, "metrics"):
      _append(self.path, (json.dumps(record) + "\n").encode())
    if self._tb is not None:
      with disk_full.writing(self.tensorboard_dir, "TensorBoard events"):
        for k, v in record.items():
          if k != "step" and isinstance(v, (int, float)):
            self._tb.add(step, tb_summary.scalar(k, v))
        self._tb.flush_if_due()

  def write_images(self, step: int, images: dict[str, np.ndarray]) -> None:
    if self.enabled and self._tb is not None:
      with disk_full.writing(self.tensorboard_dir, "TensorBoard events"):
        for k, image in images.items():
          self._tb.add(step, tb_summary.image(k, np.asarray(image, np.uint8), dataformats="HWC"))
        self._tb.flush_if_due()

  def flush(self) -> None:
    if self._tb is not None:
      with disk_full.writing(self.tensorboard_dir, "TensorBoard events"):
        self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      tb, self._tb = self._tb, None
      with disk_full.writing(self.tensorboard_dir, "TensorBoard events"):
        tb.close()

  def __enter__(self) -> MetricWriter:
    return self

  def __exit__(self, exc_type, *exc) -> None:
    try:
      self.close()
    except disk_full.DiskFull:
      if exc_type is None:  # else the error on its way says it (the same disk)
        raise


class _EventFile:
  """A TensorBoard event file written in the caller's thread.

  tensorboardX's ``SummaryWriter`` writes from a thread: a full disk kills that thread
  (a traceback on stderr) and its bounded queue then blocks the loop for good. Its
  ``EventsWriter`` writes the same file format synchronously, so errors surface here.
  """

  def __init__(self, logdir: str, flush_secs: float, clock: Callable[[], float]):
    os.makedirs(logdir, exist_ok=True)
    self._writer = EventsWriter(os.path.join(logdir, "events"))
    self._flush_secs, self._clock = flush_secs, clock
    self._flushed = clock()

  def add(self, step: int, summary: Any) -> None:
    self._writer.write_event(event_pb2.Event(summary=summary, wall_time=time.time(), step=step))

  def flush_if_due(self) -> None:
    if self._clock() - self._flushed >= self._flush_secs:
      self.flush()

  def flush(self) -> None:
    self._writer.flush()
    self._flushed = self._clock()

  def close(self) -> None:
    self._writer.close()


def _append(path: str, data: bytes) -> None:
  """Appends ``data`` whole or not at all: a failed write (a full disk) is cut off again."""
  fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
  try:
    size = os.fstat(fd).st_size
    try:
      view = memoryview(data)
      while view:
        view = view[os.write(fd, view) :]
    except OSError:
      os.ftruncate(fd, size)  # shrinking needs no space
      raise
  finally:
    os.close(fd)


def _keep_through(path: str, step: int) -> None:
  """Drops the records of ``path`` past ``step``, and a last line a crash cut short (each
  record is appended with its newline in one write, so a line without one is cut short).

  The kept records are normally the file's first lines: then the file is cut after them
  (no space needed). Otherwise it is rewritten through a temporary file and a rename.
  """
  if not os.path.exists(path):
    _append(path, b"")
    return
  with open(path, "rb") as f:
    lines = f.read().splitlines(keepends=True)
  size = sum(len(line) for line in lines)
  if lines and not lines[-1].endswith(b"\n"):
    lines.pop()
  kept, end, offset, past, in_order = [], 0, 0, False, True
  for line in lines:
    offset += len(line)
    record = json.loads(line) if line.strip() else None
    if record is not None and record.get("step", 0) > step:
      past = True
      continue
    if record is not None:
      kept.append(record)
      in_order = in_order and not past
    if not past:
      end = offset
  if in_order:
    if end < size:
      os.truncate(path, end)
    return
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in kept)
  os.replace(tmp, path)


def _jsonable(v: Any) -> Any:
  v = v.item() if hasattr(v, "item") else v
  if isinstance(v, float) and not math.isfinite(v):
    return str(v)  # JSON has no NaN/inf
  return v


class Progress:
  """One line per update: step, losses, D outputs, steps/s and ETA.

  D's outputs are shown as the loss reads them: ``D(x)`` for a probability
  (sigmoid losses), ``critic(x)`` for a raw critic value (``d_output``).
  On a terminal the line is redrawn in place; in logs each update is a line.
  Between updates (a long ``train.log_every``), ``heartbeat`` shows step, rate and ETA
  once nothing was shown for ``heartbeat_s``.
  """

  def __init__(
    self,
    total_steps: int,
    stream: IO[str] | None = None,
    enabled: bool = True,
    d_output: str = "probability",
    members: int = 1,
    *,
    heartbeat_s: float = 30.0,
    clock: Callable[[], float] | None = None,
  ):
    name = "D" if d_output == "probability" else "critic"
    self.KEYS = (
      ("d_loss", "d_loss"),
      ("g_loss", "g_loss"),
      ("d_real", f"{name}(x)"),
      ("d_fake", f"{name}(G(z))"),
    )
    self.total = total_steps
    self.members = members  # a population's line shows the mean over its members
    self.stream = stream or sys.stderr
    self.enabled = enabled
    self.heartbeat_s = heartbeat_s
    self._clock = clock or now
    self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
    self._shown = self._clock()  # when the last line was written

  def _where(self, step: int) -> str:
    return f"step {step:>{len(str(self.total))}}/{self.total} ({100 * step / self.total:3.0f}%)"

  def _speed(self, step: int, steps_per_sec: float) -> list[str]:
    if steps_per_sec <= 0:  # none yet when the first (compiling) call ends on a log step
      return []
    eta = datetime.timedelta(seconds=round((self.total - step) / steps_per_sec))
    return [f"{steps_per_sec:,.1f} steps/s", f"ETA {eta}"]

  def _line(self, line: str) -> None:
    if self._tty:
      self.stream.write("\r\033[K" + line)
    else:
      self.stream.write(line + "\n")
    self.stream.flush()
    self._shown = self._clock()

  def update(self, step: int, scalars: dict[str, Any], steps_per_sec: float) -> None:
    if not self.enabled:
      return
    parts = [self._where(step)]
    if self.members > 1:
      parts.append(f"mean of {self.members}")
    parts += [f"{label} {float(scalars[k]):.4f}" for k, label in self.KEYS if k in scalars]
    self._line(" | ".join(parts + self._speed(step, steps_per_sec)))

  def heartbeat(self, step: int, steps_per_sec: float) -> None:
    """Step, rate and ETA if nothing was shown for ``heartbeat_s`` (no losses: those are
    aggregated, and written to metrics.jsonl, only at ``train.log_every``)."""
    if self.enabled and self._clock() - self._shown >= self.heartbeat_s:
      self._line(" | ".join([self._where(step), *self._speed(step, steps_per_sec)]))

  def message(self, text: str) -> None:
    if self.enabled:
      self.stream.write(("\n" if self._tty else "") + text + "\n")
      self.stream.flush()
      self._shown = self._clock()

  def finish(self) -> None:
    if self.enabled and self._tty:
      self.stream.write("\n")
      self.stream.flush()


class StepRate:
  """Steps per second since ``reset``, not counting the time spent in ``paused()`` blocks
  (evaluation, saving)."""

  def __init__(self, step: int = 0, clock: Callable[[], float] | None = None):
    self._clock = clock or now
    self.reset(step)

  def reset(self, step: int) -> None:
    self._start, self._step, self._paused = self._clock(), step, 0.0

  @contextlib.contextmanager
  def paused(self) -> Iterator[None]:
    start = self._clock()
    yield
    self._paused += self._clock() - start

  def rate(self, step: int) -> float:
    if step <= self._step:
      return 0.0
    return (step - self._step) / max(self._clock() - self._start - self._paused, 1e-9)


class TaskProgress:
  """Progress of long evaluations: 'label: done/total (rate/s, ETA)', at most ~4 lines/s.

  Call it as ``progress(label, done, total)``; a finished task ends its line. A task's
  rate and ETA count from its own start: a new label, a count that went back, or any
  call after the task finished starts a new task (the next evaluation's task of the
  same name).
  """

  def __init__(
    self,
    stream: IO[str] | None = None,
    enabled: bool = True,
    min_interval: float = 0.25,
    clock: Callable[[], float] | None = None,
  ):
    self.stream = stream or sys.stderr
    self.enabled = enabled
    self.min_interval = min_interval
    self._clock = clock or now
    self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
    self._label, self._start, self._last = None, 0.0, 0.0
    self._done, self._finished = 0, True

  def __call__(self, label: str, done: int, total: int) -> None:
    if not self.enabled:
      return
    now = self._clock()
    if label != self._label or self._finished or done < self._done:
      self._label, self._start, self._last = label, now, 0.0
    self._done, self._finished = done, done >= total
    if not self._finished and now - self._last < self.min_interval:
      return
    self._last = now
    rate = done / max(now - self._start, 1e-9)
    eta = (total - done) / rate if rate > 0 else 0.0
    speed = f"{rate:,.0f}/s" if rate >= 10 else f"{rate:.2g}/s"  # slow tasks: 0.19/s, not 0/s
    line = f"{label}: {done}/{total} ({speed}, ETA {eta:.0f}s)"
    if self._tty:
      self.stream.write("\r\033[K" + line + ("\n" if self._finished else ""))
    elif now - self._start > 2:  # logs: nothing for short tasks
      self.stream.write(line + "\n")
    self.stream.flush()
