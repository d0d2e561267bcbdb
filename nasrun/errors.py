"""Errors a user can fix. The CLI prints them as one line and exits non-zero, without a traceback."""


class NasrunError(Exception):
    """A problem with the user's input (config, data, files), explained in one line."""

    exit_code = 2


class ConfigError(NasrunError):
    """A config value that is missing, of the wrong type or out of range."""


class InvalidArchitecture(NasrunError, ValueError):
    """An architecture that does not belong to its search space."""


class DatasetMissing(NasrunError):
    """Dataset files that are not on disk (and may not be downloaded)."""


class DataError(NasrunError):
    """A dataset that cannot give a meaningful result (fewer than 2 classes, an empty split) or holds a
    file that cannot be read."""


class CheckpointError(NasrunError):
    """A checkpoint or run-directory file that is missing, truncated or corrupt."""


class RunDirError(NasrunError):
    """A run directory that cannot be used safely: a link leading out of it, another command using it,
    a file too big to read, or a write that failed (read-only, disk full)."""


class NoResult(NasrunError):
    """A run that finished (its run directory written) without one successful, feasible trial."""

    exit_code = 1
