"""What every jaxgan command line shares: no stray arguments, quiet absl, user errors.

Not in ``main.py``: importing that module defines its required flags.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from absl import app, flags, logging

from jaxgan.errors import UserError


def setup(argv: list[str], verbosity: int = logging.WARNING) -> None:
  """Rejects positional arguments; lowers absl's verbosity unless --verbosity was given."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(verbosity)  # orbax logs every save at INFO, warns on read-only use


@contextlib.contextmanager
def user_errors_exit() -> Iterator[None]:
  """A ``UserError`` is printed as one line, without a traceback, and exits with status 2."""
  try:
    yield
  except UserError as e:
    print(f"jaxgan: error: {e}", file=sys.stderr)
    sys.exit(2)
