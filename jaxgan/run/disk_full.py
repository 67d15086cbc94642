"""A full disk during a run: one line naming the device, the free space and the checkpoint.

Every write of a run can meet a full disk (ENOSPC) or an exhausted quota (EDQUOT): a
checkpoint, ``metrics.jsonl``, the TensorBoard events, a figure, the files written at
launch. Python reports it as an ``OSError``; orbax reports a failed checkpoint from its
save thread as tensorstore's ``RESOURCE_EXHAUSTED`` (``... No space left on device
[os_error_code='28']``), raised at the next save or wait. Nothing is lost either way: orbax
commits a step by renaming its temporary folder, so every step folder with a bare number
for a name is complete, and the next launch clears the temporary ones.

``writing(path, what)`` marks which write failed; ``stops_the_run(workdir)`` turns a full
disk anywhere inside it into one ``DiskFullError`` line. Standard library only: the
programs' log filters (``jaxgan.run.orbax_noise``) use ``errno_of`` before JAX loads.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator

from jaxgan.errors import UserError

REASONS = {errno.ENOSPC: "no space left", errno.EDQUOT: "disk quota exceeded"}
_TEXT = {
  errno.ENOSPC: ("No space left on device", f"os_error_code='{errno.ENOSPC}'"),
  errno.EDQUOT: ("Disk quota exceeded", f"os_error_code='{errno.EDQUOT}'"),
}


class DiskFullError(UserError):
  """The run stopped because a write found no space; the message says what to free."""


class DiskFull(Exception):
  """Raised by ``writing``: which write met the full disk, for ``stops_the_run``'s message."""

  def __init__(self, path: str, what: str, code: int):
    super().__init__(f"{REASONS[code]} while writing {what} to {path}")
    self.path, self.what, self.code = path, what, code


def errno_of_text(text: str) -> int | None:
  """ENOSPC or EDQUOT if ``text`` (an error message) reports one, else None."""
  for code, marks in _TEXT.items():
    if any(m in text for m in marks):
      return code
  return None


def errno_of(e: BaseException | None) -> int | None:
  """ENOSPC or EDQUOT if ``e`` or an exception it was raised from is a full disk, else None."""
  seen = 0
  while e is not None and seen < 20:
    if isinstance(e, DiskFull):
      return e.code
    if isinstance(e, OSError) and e.errno in REASONS:
      return e.errno
    code = errno_of_text(str(e)) if isinstance(e, (OSError, ValueError, RuntimeError)) else None
    if code is not None:
      return code
    e, seen = e.__cause__ or e.__context__, seen + 1
  return None


@contextlib.contextmanager
def writing(path: str, what: str) -> Iterator[None]:
  """Turns a full disk met inside the block into ``DiskFull(path, what)``."""
  try:
    yield
  except DiskFull:
    raise
  except Exception as e:
    code = errno_of(e)
    if code is None:
      raise
    raise DiskFull(path, what, code) from e


def free_mib(path: str) -> float:
  """Free space, in MiB, on the device holding ``path`` (or its nearest existing parent)."""
  while path and not os.path.exists(path):
    path = os.path.dirname(path)
  try:
    st = os.statvfs(path or ".")
  except OSError:
    return float("nan")
  return st.f_bavail * st.f_frsize / 2**20


def newest_checkpoint(workdir: str) -> int | None:
  """The newest complete checkpoint step in ``workdir``: a step folder with a bare number for
  a name (orbax writes into ``<step>.orbax-checkpoint-tmp*`` and renames it when complete)."""
  try:
    names = os.listdir(os.path.join(workdir, "checkpoints"))
  except OSError:
    return None
  steps = [int(n) for n in names if re.fullmatch(r"\d+", n)]
  return max(steps) if steps else None


def message(full: DiskFull, workdir: str) -> str:
  newest = newest_checkpoint(workdir)
  kept = (
    f"the newest complete checkpoint is step {newest}; re-run the same command to resume from it"
    if newest is not None
    else "no checkpoint was complete yet"
  )
  return (
    f"{REASONS[full.code]} on the device holding {full.path} ({free_mib(full.path):,.1f} MiB "
    f"free) while writing {full.what}: free space there or use another --workdir; {kept}."
  )


@contextlib.contextmanager
def stops_the_run(workdir: str) -> Iterator[None]:
  """A full disk met inside the block becomes one ``DiskFullError`` line (writes that no
  ``writing`` marked are named by the workdir)."""
  try:
    yield
  except Exception as e:
    if isinstance(e, DiskFullError):
      raise
    code = errno_of(e)
    if code is None:
      raise
    raise DiskFullError(
      message(_marked(e) or DiskFull(workdir, "the run's files", code), workdir)
    ) from e


def _marked(e: BaseException | None) -> DiskFull | None:
  """The ``writing`` mark in ``e``'s chain (a later error, e.g. while closing, may sit above)."""
  seen = 0
  while e is not None and seen < 20:
    if isinstance(e, DiskFull):
      return e
    e, seen = e.__cause__ or e.__context__, seen + 1
  return None
