"""The exceptions that decide a command's exit code.

- :class:`UserError` (exit 2): bad usage or bad input; the message names the file, key or
  argument and is printed as one ``error: ...`` line.
- :class:`BlocksFailed` (exit 3): some blocks failed after their retries; finished blocks
  are kept and a re-run completes the job.
- anything else (exit 1): an unexpected failure.
"""


class AlfineError(Exception):
    """Base of alfine's own errors."""

    exit_code = 1


class UserError(AlfineError):
    """Bad usage or bad input: the user can fix it from the message alone."""

    exit_code = 2


class ConfigError(UserError):
    """A config file or value is invalid; the message names the file and key path."""


class VolumeError(UserError):
    """A volume cannot be opened, read or written as asked; the message names the URL."""


class StoreError(UserError):
    """A named config cannot be stored or found."""


class BlocksFailed(AlfineError):
    """Some blocks of a blockwise job failed; the finished ones are kept."""

    exit_code = 3
