"""SIGTERM/SIGINT at any moment: a flag read at safe points, never an exception mid-call.

Cluster schedulers send SIGTERM whenever they like. A handler that raises
KeyboardInterrupt can fire inside a garbage-collector callback (where Python
prints "Exception ignored" and training goes on) or while XLA is compiling or a
call that donates the state is in flight (a segfault, or nothing left to save).
So the handler only sets a flag; the loop reads it between compiled calls, when
the state is whole, and start-up reads it between its phases. A second signal
still interrupts at once, for a user who really means it.

Under ``--distributed`` the processes must also agree on *when* to stop, or the
unsignalled ones wait forever in a collective. ``agreed`` is called by every
process before each compiled call, with the same call index, and answers the
same on all of them. Two routes feed it: ``jax.distributed.initialize`` hands
SIGTERM to JAX's own preemption notifier (Python's handler no longer sees it),
whose agreed sync point orbax's ``reached_preemption`` reports; and a flag set
here by SIGINT (or by SIGTERM before that notifier exists) is shared with one
tiny all-gather per call.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

# JAX and numpy are imported inside the functions that need them: ``jaxgan-train`` imports
# this module to install the handler before JAX loads (a signal while it loads must
# already be a request), and ``_process_count`` must not load JAX just to ask.

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(KeyboardInterrupt):
  """Raised at a safe point after SIGINT/SIGTERM; a KeyboardInterrupt so ``except`` chains agree."""


class StopRequest:
  """Turns SIGINT/SIGTERM into ``requested``; a context manager that restores the old handlers.

  Outside the main thread (some notebook runners) signals cannot be caught;
  the request then stays False and Ctrl-C behaves as Python's default.
  """

  def __init__(self):
    self.requested = False
    self.signum: int | None = None
    self._old: dict = {}

  def _handle(self, signum, frame):
    if self.requested:
      raise KeyboardInterrupt(f"signal {signum} (second)")
    self.requested, self.signum = True, signum

  def install(self) -> StopRequest:
    if threading.current_thread() is threading.main_thread() and not self._old:
      self._old = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
    return self

  def uninstall(self) -> None:
    for sig, handler in self._old.items():
      signal.signal(sig, handler)
    self._old = {}

  def __enter__(self) -> StopRequest:
    return self.install()

  def __exit__(self, *exc) -> None:
    self.uninstall()

  def check(self, where: str) -> None:
    """Raises StopRequested if a signal came; ``where`` names the phase for the message.

    A no-op in a multi-process run once JAX is up: one process stopping alone
    there would leave the others in a collective, so only ``agreed`` decides.
    """
    if self.requested and _process_count() == 1:
      raise StopRequested(f"signal {self.signum} {where}")

  def agreed(self, index: int, reached_preemption: Callable[[int], bool]) -> bool:
    """True on every process at once when any of them was signalled or preempted.

    ``index`` counts calls (the same sequence on every process);
    ``reached_preemption`` is orbax's ``CheckpointManager.reached_preemption``.
    """
    if _process_count() == 1:
      return self.requested
    import numpy as np
    from jax.experimental import multihost_utils

    notice = bool(reached_preemption(index))
    flags = np.asarray(multihost_utils.process_allgather(np.int32(self.requested)))
    return notice or bool(flags.any())

  def describe(self, step: int) -> str:
    """How the stop came, for the message every process prints."""
    if _process_count() == 1:
      return f"signal {self.signum} at step {step}"
    import jax

    return (
      f"a signal or preemption notice, agreed by all {jax.process_count()} processes, "
      f"at step {step} (this is process {jax.process_index()})"
    )


def _process_count() -> int:
  if "jax" not in sys.modules:  # before JAX loads there is only this process to stop
    return 1
  import jax

  return jax.process_count() if _distributed_initialized() else 1


def _distributed_initialized() -> bool:
  """Whether ``jax.distributed.initialize`` ran (without starting a backend just to ask)."""
  try:
    from jax._src import distributed

    return distributed.global_state.client is not None
  except (ImportError, AttributeError):  # a future JAX: ask the public API
    import jax

    return jax.process_count() > 1


def ignore_signals() -> Callable[[], None]:
  """Ignores SIGINT/SIGTERM (e.g. while the final checkpoint is written); returns the undo."""
  if threading.current_thread() is not threading.main_thread():
    return lambda: None
  old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in SIGNALS}
  return lambda: [signal.signal(sig, h) for sig, h in old.items()] and None
