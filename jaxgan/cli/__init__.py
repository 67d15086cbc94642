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


def show_as_main(module_name: str) -> None:
  """absl's ``--help``/``--helpshort`` describe ``__main__``'s docstring and the flags of
  ``sys.argv[0]``: for a console script both are a generated wrapper's. This points them
  at ``module_name``, the program's own module."""
  module, main = sys.modules[module_name], sys.modules["__main__"]
  if main is module:
    return
  main.__doc__ = module.__doc__
  for flag in flags.FLAGS.get_flags_for_module(module_name):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def moved_program(old: str, script: str, module: str, name: str, library: str = "") -> None:
  """An old program path: run as ``python -m`` it says where the program went (exit 2);
  imported, it raises ImportError naming the program and where its functions now live."""
  message = f"`python -m {old}` is now `{script}` (or `python -m {module}`), with the same flags."
  if name == "__main__":
    print(f"jaxgan: error: {message}", file=sys.stderr)
    sys.exit(2)
  where = f"; its functions are in {library}" if library else ""
  raise ImportError(f"{old} moved: {message[0].upper()}{message[1:-1]}{where}.")
