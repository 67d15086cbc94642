"""orbax's noise is filtered by the programs for as long as they run, and only then."""

import errno
import logging
import sys
import types

from jaxgan.run import checkpointing, orbax_noise


def unraisable(message):
  return types.SimpleNamespace(exc_value=RuntimeError(message))


def test_the_filters_are_installed_by_a_program_and_removed_when_it_ends(caplog):
  before = sys.unraisablehook
  seen = []
  sys.unraisablehook = seen.append
  try:
    absl = logging.getLogger("absl")
    with orbax_noise.filtered():
      with orbax_noise.filtered():  # nested programs (the CLI, then jaxgan.train) share them
        assert orbax_noise.installed()
      assert orbax_noise.installed()
      sys.unraisablehook(unraisable("Event loop is closed"))
      sys.unraisablehook(unraisable("something else"))
      with caplog.at_level(logging.WARNING, logger="absl"):
        absl.warning("Requested `tracked_metric`: v is not in the metrics")
        try:
          raise ValueError(
            "RESOURCE_EXHAUSTED: Failed to write 100 bytes to file 12: No space left on "
            f"device [os_error_code='{errno.ENOSPC}']"
          )
        except ValueError:
          absl.exception("Save Finalize thread failed.")
        absl.warning("a warning that matters")
    assert not orbax_noise.installed() and sys.unraisablehook == seen.append
    assert [str(u.exc_value) for u in seen] == ["something else"]
    assert [r.getMessage() for r in caplog.records] == ["a warning that matters"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="absl"):
      absl.warning("Requested `tracked_metric`: v is not in the metrics")  # not filtered now
    assert len(caplog.records) == 1
  finally:
    sys.unraisablehook = before


def test_constructing_a_checkpointer_installs_nothing(tmp_path):
  hook, filters = sys.unraisablehook, list(logging.getLogger("absl").filters)
  with checkpointing.Checkpointer(str(tmp_path)):
    assert sys.unraisablehook is hook and logging.getLogger("absl").filters == filters


def _disk_full_task_record(caplog):
  """asyncio's record of a collected save task that met a full disk."""
  asyncio_logger = logging.getLogger("asyncio")
  with caplog.at_level(logging.ERROR, logger="asyncio"):
    try:
      raise RuntimeError(
        "RESOURCE_EXHAUSTED: Failed to write 582 bytes to file 6: No space left on device "
        f"[os_error_code='{errno.ENOSPC}']"
      )
    except RuntimeError:
      asyncio_logger.exception("Task exception was never retrieved\nfuture: <Task finished>")
    asyncio_logger.error("Task exception was never retrieved\nfuture: <Task other>")
  messages = [r.getMessage().splitlines()[-1] for r in caplog.records]
  caplog.clear()
  return messages


def test_a_block_left_by_a_full_disk_keeps_dropping_its_collected_save_tasks(caplog):
  asyncio_logger = logging.getLogger("asyncio")
  try:
    with orbax_noise.filtered():
      assert _disk_full_task_record(caplog) == ["future: <Task other>"]
    assert _disk_full_task_record(caplog) == ["future: <Task finished>", "future: <Task other>"]
    try:
      with orbax_noise.filtered():
        try:
          raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as e:
          raise SystemExit(2) from e  # as the programs exit on a full disk
    except SystemExit:
      pass
    assert not orbax_noise.installed() and logging.getLogger("absl").filters == []
    assert _disk_full_task_record(caplog) == ["future: <Task other>"]
  finally:
    for f in list(asyncio_logger.filters):
      asyncio_logger.removeFilter(f)
