"""One writer per workdir: an advisory ``flock`` held for the whole run.

Two launches on one workdir used to interleave ``metrics.jsonl``, race orbax
saves and leave checkpoints without their config. The lock is ``flock`` on
``<workdir>/.lock``: the kernel releases it when the holder dies, even by
``kill -9``, so a stale lock never blocks the next run. The file keeps the
holder's pid, host and command so the refusal can name it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator

from absl import logging

from jaxgan.errors import UserError

LOCK_NAME = ".lock"


class WorkdirBusyError(UserError):
  """Another process is training in this workdir."""


def _holder(path: str) -> str:
  try:
    with open(path) as f:
      info = json.load(f)
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started"]))
    return f"process {info['pid']} on {info['host']} (started {started}: {info['command']})"
  except (OSError, ValueError, KeyError, TypeError):
    return "another process"


@contextlib.contextmanager
def hold(workdir: str) -> Iterator[None]:
  """Holds ``<workdir>/.lock`` until the block exits; raises WorkdirBusyError if taken.

  Filesystems without ``flock`` (some network mounts) get a warning, not a refusal.
  """
  path = os.path.join(workdir, LOCK_NAME)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        raise WorkdirBusyError(
          f"{workdir} is in use by {_holder(path)}; wait for it to finish, stop it, "
          f"or use another --workdir."
        ) from None
      logging.warning(
        "jaxgan: cannot lock %s (%s); make sure no other run uses this workdir.", path, e
      )
    info = {
      "pid": os.getpid(),
      "host": socket.gethostname(),
      "started": time.time(),
      "command": " ".join(sys.argv) or sys.executable,
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    yield
  finally:
    os.close(fd)  # releases the lock
