"""Errors that are the user's to fix. The CLI prints them without a traceback."""


class UserError(Exception):
  """Base class: the message says what is wrong and what to do."""


class ConfigError(UserError, ValueError):
  """The config names something unknown, has a wrong type, or values that cannot work."""


class CheckpointMismatchError(UserError):
  """A workdir's checkpoint does not fit the current config."""


class CheckpointDamagedError(UserError):
  """A checkpoint step is unreadable, incomplete or fails its digest (``jaxgan.run.checkpointing``).

  ``step`` and ``reason`` (e.g. 'state digest mismatch in d.params.Dense_0.kernel')
  let a caller skip to an older step; the message alone says what to do.
  """

  def __init__(self, message: str, *, step: int | None = None, reason: str | None = None):
    super().__init__(message)
    self.step, self.reason = step, reason


class DatasetNotFoundError(UserError):
  """A dataset's files are not where the config says, and cannot be fetched."""


class NonFiniteLossError(UserError):
  """Training produced NaN or inf; the last good checkpoint is left intact."""


class FeatureNetNotFoundError(UserError):
  """A metric's feature network (trained LeNet, Inception weights) is missing."""


class FeatureNetMismatchError(UserError, ValueError):
  """A feature network's weight file does not have the expected layers or shapes."""
