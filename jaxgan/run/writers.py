"""Where scalars and images go: ``metrics.jsonl``, TensorBoard files, and a progress line."""

from __future__ import annotations

import datetime
import json
import math
import os
import sys
import time
from typing import IO, Any

import numpy as np


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
  """

  def __init__(
    self, workdir: str, *, resume_step: int = 0, enabled: bool = True, tensorboard: bool = True
  ):
    self.enabled = enabled
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    kept = [r for r in read_jsonl(self.path) if r.get("step", 0) <= resume_step]
    with open(self.path, "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in kept)
    if tensorboard:
      from tensorboardX import SummaryWriter  # no TensorFlow needed

      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"), flush_secs=30)

  def write_scalars(self, step: int, scalars: dict[str, Any]) -> None:
    if not self.enabled:
      return
    record = {"step": int(step), **{k: _jsonable(v) for k, v in scalars.items()}}
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")
    if self._tb is not None:
      for k, v in record.items():
        if k != "step" and isinstance(v, (int, float)):
          self._tb.add_scalar(k, v, step)

  def write_images(self, step: int, images: dict[str, np.ndarray]) -> None:
    if self.enabled and self._tb is not None:
      for k, image in images.items():
        self._tb.add_image(k, np.asarray(image, np.uint8), step, dataformats="HWC")

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None

  def __enter__(self) -> MetricWriter:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


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
  """

  def __init__(
    self,
    total_steps: int,
    stream: IO[str] | None = None,
    enabled: bool = True,
    d_output: str = "probability",
    members: int = 1,
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
    self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
    self._start = time.time()

  def update(self, step: int, scalars: dict[str, Any], steps_per_sec: float) -> None:
    if not self.enabled:
      return
    parts = [f"step {step:>{len(str(self.total))}}/{self.total} ({100 * step / self.total:3.0f}%)"]
    if self.members > 1:
      parts.append(f"mean of {self.members}")
    parts += [f"{label} {float(scalars[k]):.4f}" for k, label in self.KEYS if k in scalars]
    if steps_per_sec > 0:  # none yet when the first (compiling) call ends on a log step
      eta = datetime.timedelta(seconds=round((self.total - step) / steps_per_sec))
      parts += [f"{steps_per_sec:,.1f} steps/s", f"ETA {eta}"]
    line = " | ".join(parts)
    if self._tty:
      self.stream.write("\r\033[K" + line)
    else:
      self.stream.write(line + "\n")
    self.stream.flush()

  def message(self, text: str) -> None:
    if self.enabled:
      self.stream.write(("\n" if self._tty else "") + text + "\n")
      self.stream.flush()

  def finish(self) -> None:
    if self.enabled and self._tty:
      self.stream.write("\n")
      self.stream.flush()


class TaskProgress:
  """Progress of long evaluations: 'label: done/total (rate/s, ETA)', at most ~4 lines/s.

  Call it as ``progress(label, done, total)``; a finished task ends its line.
  """

  def __init__(
    self, stream: IO[str] | None = None, enabled: bool = True, min_interval: float = 0.25
  ):
    self.stream = stream or sys.stderr
    self.enabled = enabled
    self.min_interval = min_interval
    self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
    self._label, self._start, self._last = None, 0.0, 0.0

  def __call__(self, label: str, done: int, total: int) -> None:
    if not self.enabled:
      return
    now = time.time()
    if label != self._label:
      self._label, self._start, self._last = label, now, 0.0
    finished = done >= total
    if not finished and now - self._last < self.min_interval:
      return
    self._last = now
    rate = done / max(now - self._start, 1e-9)
    eta = (total - done) / rate if rate > 0 else 0.0
    speed = f"{rate:,.0f}/s" if rate >= 10 else f"{rate:.2g}/s"  # slow tasks: 0.19/s, not 0/s
    line = f"{label}: {done}/{total} ({speed}, ETA {eta:.0f}s)"
    if self._tty:
      self.stream.write("\r\033[K" + line + ("\n" if finished else ""))
    elif now - self._start > 2:  # logs: nothing for short tasks
      self.stream.write(line + "\n")
    self.stream.flush()
