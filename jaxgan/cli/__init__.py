"""What every jaxgan command line shares: no stray arguments, quiet absl, user errors, and
orbax's noise filtered while it runs.

Not in a program's module (``jaxgan/cli/train.py``, ...): importing one defines its flags.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Iterator

from absl import app, flags, logging

from jaxgan.errors import UserError
from jaxgan.run import orbax_noise


def setup(argv: list[str], verbosity: int = logging.WARNING) -> None:
  """Rejects positional arguments; lowers absl's verbosity unless --verbosity was given."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(verbosity)  # orbax logs every save at INFO, warns on read-only use


TRACEBACK_ENV = "JAXGAN_TRACEBACK"


def show_tracebacks(argv: list[str] | None = None) -> bool:
  """Full tracebacks for bug reports: ``--verbosity=1`` (or more) or ``JAXGAN_TRACEBACK=1``."""
  if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
    return True
  if flags.FLAGS.is_parsed():
    return flags.FLAGS.verbosity >= 1
  return any(a in ("-v=1", "--verbosity=1", "-v=2", "--verbosity=2") for a in (argv or ()))


def fail(message: str, argv: list[str] | None = None) -> None:
  """Prints ``jaxgan: error: message`` (after the traceback, if asked for) and exits with 2."""
  if show_tracebacks(argv) and sys.exc_info()[0] is not None:
    traceback.print_exc()
  print(f"jaxgan: error: {message}", file=sys.stderr)
  sys.exit(2)


@contextlib.contextmanager
def user_errors_exit() -> Iterator[None]:
  """A ``UserError`` is printed as one line, without a traceback, and exits with status 2."""
  try:
    yield
  except UserError as e:
    fail(str(e))


@contextlib.contextmanager
def program() -> Iterator[None]:
  """What a program's work runs in: a ``UserError`` as one line (``user_errors_exit``), and
  orbax's noise filtered until it exits (``jaxgan.run.orbax_noise``)."""
  with orbax_noise.filtered(), user_errors_exit():
    yield


def moved_program(old: str, script: str, module: str, name: str) -> None:
  """An old program path: run as ``python -m`` it says where the program went (exit 2);
  imported, it raises ImportError saying the same."""
  message = f"`python -m {old}` is now `{script}` (or `python -m {module}`), with the same flags."
  if name == "__main__":
    print(f"jaxgan: error: {message}", file=sys.stderr)
    sys.exit(2)
  raise ImportError(f"{old} moved: {message}")
