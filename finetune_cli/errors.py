"""Domain errors: the CLI prints them as one line and exits non-zero (no traceback)."""


class FtcliError(Exception):
    """An error the user can fix; `exit_code` is what the CLI exits with."""

    exit_code = 1


class ConfigError(FtcliError):
    """A config file or override is malformed; always names the dotted key."""

    exit_code = 2


class DataError(FtcliError):
    """A data set cannot be loaded or is malformed; names the file (and row) where it applies."""

    exit_code = 2


class ModelError(FtcliError):
    """A backbone cannot be loaded or does not have the structure a mode needs."""

    exit_code = 2


class StorageError(FtcliError):
    """A file or folder cannot be written: a full disk, a read-only folder, a file where a folder goes."""

    exit_code = 2
