"""Domain errors: the CLI prints them as one line and exits non-zero (no traceback)."""

from __future__ import annotations

import math
import reprlib
from typing import Any


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


# ----------------------------------------------------------------------------------------------
# How values and exceptions appear inside a one-line message


class _ShortRepr(reprlib.Repr):
    """`repr` bounded in depth and length: one line, and cheap even for huge or aliased values."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxlist, self.maxtuple, self.maxdict, self.maxset = 3, 6, 6, 4, 4
        self.maxstring, self.maxother = 40, 40

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 128:  # repr() of a >4300-digit int raises; no one wants to read it anyway
            return f"{'-' if x < 0 else ''}<an integer of {int(abs(x).bit_length() * math.log10(2)) + 1} digits>"
        return super().repr_int(x, level)


_repr = _ShortRepr().repr


def short_repr(value: Any) -> str:
    """A value as it appears in a message: one line, at most 40 characters."""
    text = _repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def first_line(e: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message, or its class name when the message is empty (an
    error handler must not fail on `raise ValueError()`); cut to `limit` characters."""
    text = (str(e).splitlines() or [""])[0].strip() or e.__class__.__name__
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


def error_text(e: BaseException, limit: int | None = None) -> str:
    """`ClassName: first line` of an exception (only the class name when its message is empty)."""
    line = first_line(e, limit)
    return line if line == e.__class__.__name__ else f"{e.__class__.__name__}: {line}"
