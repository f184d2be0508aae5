"""Validation of plain data (parsed YAML) into typed frozen dataclasses: every key checked against
its field's type and range, errors as one line naming the dotted key and what is allowed. Generic:
config.py declares the fields; this module knows nothing of ftcli's sections."""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import field
from typing import Any, Literal

from .config_yaml import key_text
from .errors import ConfigError, short_repr


def fld(default: Any, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
       pattern: re.Pattern | None = None) -> Any:
    """A dataclass field with its allowed range (checked by `check_value`)."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "lo_open": lo_open, "pattern": pattern})


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        args = typing.get_args(tp)
        return repr(args[0]) if len(args) == 1 else "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        text = " or ".join(_type_name(a) for a in inner)
        return text + " or null" if len(inner) < len(typing.get_args(tp)) else text
    if origin is tuple:
        return "a list of " + _plural(typing.get_args(tp)[0])
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _plural(tp: Any) -> str:
    """What a list holds: `strings`, or `values from 'a', 'b'` for a Literal."""
    if typing.get_origin(tp) is Literal:
        return "values from " + ", ".join(repr(a) for a in typing.get_args(tp))
    return {str: "strings", int: "integers", float: "numbers"}.get(tp, str(tp))


def check_value(key: str, tp: Any, meta: dict, value: Any) -> Any:
    """Return `value` converted to `tp`, or raise ConfigError naming `key`."""
    origin = typing.get_origin(tp)
    or_null = ""
    if origin in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(arms) < len(typing.get_args(tp)):
            return None
        if len(arms) > 1:  # e.g. str | tuple[str, ...]: the first arm the value fits
            return _first_arm(key, tp, arms, meta, value)
        (tp,) = arms
        origin, or_null = typing.get_origin(tp), " or null"
    expected = _type_name(tp)
    if origin is tuple:  # tuple[X, ...]: a YAML list (or the tuple config_to_dict gives back) of X
        if isinstance(value, str) and typing.get_args(tp)[0] is str:
            value = [value]  # `text: article` is the list of one column `text: [article]`
        least = meta.get("lo") or 0
        if not isinstance(value, (list, tuple)) or len(value) < least:
            raise ConfigError(f"{key}: got {short_repr(value)}, expected {'a non-empty' if least else 'a'} list of "
                              f"{_plural(typing.get_args(tp)[0])}")
        return tuple(check_value(f"{key}[{i}]", typing.get_args(tp)[0], {}, v) for i, v in enumerate(value))
    if origin is Literal:
        if value not in typing.get_args(tp) or isinstance(value, bool):
            raise ConfigError(f"{key}: got {short_repr(value)}, expected {expected}{or_null}")
        return value
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if not ok:
        raise ConfigError(f"{key}: got {short_repr(value)}, expected {expected}{or_null}")
    if tp is float:
        try:
            value = float(value)
        except OverflowError:  # an integer beyond float range, e.g. 1 followed by 400 zeros
            raise RangeError(f"{key}: got {short_repr(value)}, expected a finite number") from None
        if not math.isfinite(value):
            raise RangeError(f"{key}: got {short_repr(value)}, expected a finite number")
    return _check_range(key, tp, expected, meta, value)


class RangeError(ConfigError):
    """A value of the right type outside its field's range."""


def _first_arm(key: str, tp: Any, arms: list, meta: dict, value: Any) -> Any:
    for arm in arms:
        try:
            return check_value(key, arm, meta, value)
        except RangeError:
            raise  # a number of the right kind out of range: say the range, not every arm's type
        except ConfigError:
            pass
    raise ConfigError(f"{key}: got {short_repr(value)}, expected {_type_name(tp)}")


def _check_range(key: str, tp: Any, expected: str, meta: dict, value: Any) -> Any:
    """`value` within its field's range and pattern (and a string not blank)."""
    lo, hi, lo_open = meta.get("lo"), meta.get("hi"), meta.get("lo_open")
    if lo is not None and (value < lo or (lo_open and value == lo)):
        bound = f"> {lo}" if lo_open else f">= {lo}"
        raise RangeError(f"{key}: got {short_repr(value)}, expected {expected} {bound}")
    if hi is not None and value > hi:
        raise RangeError(f"{key}: got {short_repr(value)}, expected {expected} <= {hi}")
    pattern = meta.get("pattern")
    if pattern is not None and not pattern.match(value):
        raise ConfigError(f"{key}: got {short_repr(value)}, expected letters, digits and . _ = + - "
                          "(at most 128, starting with a letter or digit)")
    if tp is str and not value.strip():
        raise ConfigError(f"{key}: must not be empty")
    return value


def build(cls: type, data: Any, prefix: str) -> Any:
    """Build dataclass `cls` from a mapping, validating every key; `prefix` is the dotted path."""
    where = prefix.rstrip(".") or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {short_repr(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            allowed = ", ".join(fields)
            raise ConfigError(f"{prefix}{key_text(key)}: unknown key; allowed keys here: {allowed}")
    values = {}
    for name, f in fields.items():
        if name not in data:
            continue
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            values[name] = build(tp, data[name], f"{prefix}{name}.")
        else:
            values[name] = check_value(prefix + name, tp, dict(f.metadata), data[name])
    return cls(**values)
