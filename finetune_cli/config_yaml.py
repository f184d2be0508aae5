"""Reading and writing config YAML: the safe loader, its dumper, `--set` overrides, one file.

Only `yaml.safe_load`'s loader (subclassed) is used, so a config can never construct Python objects
or import code. Booleans are YAML 1.2's `true`/`false` only (`no`, `off`, `yes` stay strings), `1:30`
is text, `1e-3` is a float, and a key given twice is an error rather than silently the last one.
Torch-free and below everything but errors.py: config.py builds the typed config from what this reads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, first_line, short_repr


def key_text(key: Any) -> str:
    """A user-written key as it appears in a message: itself, or its repr when not plain text (YAML
    keys may be numbers, null or lists: `1:`, `~:`, `? [a]`)."""
    if isinstance(key, str) and key and key.isprintable():
        return key
    return repr(key) if isinstance(key, str) else short_repr(key)


class _Loader(yaml.SafeLoader):
    """`yaml.SafeLoader` that also reads `1e-3` as a float (YAML 1.1 wants `1.0e-3`), takes only
    `true`/`false` as booleans and reads `1:30` as text, not 90 (both as YAML 1.2), rejects duplicate
    keys, and reports a scalar it cannot convert (`2020-13-45`, a 5000-digit integer) as a YAML
    error with its line instead of crashing."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ArithmeticError, AttributeError, IndexError, KeyError, TypeError, ValueError) as e:
            what = short_repr(node.value) if isinstance(node, yaml.ScalarNode) else "this value"
            tag = str(node.tag).rsplit(":", 1)[-1]
            reason = first_line(e, 80)
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {what} as {tag} ({reason})", node.start_mark) from None

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {short_repr(key)}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_BOOL, _INT, _FLOAT = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {  # YAML 1.1's booleans and numbers, replaced below
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _INT, _FLOAT)]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
# YAML 1.1's numbers without its base-60 ones (`1:30` would be 90), and with `1e-3` as a float
_Loader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"))
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


class _Dumper(yaml.SafeDumper):
    """Writes what `_Loader` reads back unchanged: a string such as `1e5` is quoted."""


_Dumper.yaml_implicit_resolvers = {k: list(v) for k, v in _Loader.yaml_implicit_resolvers.items()}
_Dumper.add_representer(tuple, yaml.SafeDumper.represent_list)  # list fields (target_modules) read back as lists


def safe_load(text: str) -> Any:
    """Parse YAML with the safe loader only: no Python tags, no code."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader (test_security checks it)


def dump_yaml(data: Any) -> str:
    """YAML text that `safe_load` reads back as the same data."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse `--set a.b=value`: the value is YAML (`16`, `true`, `null`, `[1, 2]`)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. method.bottleneck=16")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {text!r}: expected a dotted key such as train.epochs")
    try:
        value = safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, RecursionError):
        value = raw
    return parts, value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Return a copy of `data` with each `a.b=value` override set (validated later, with the file).

    Copy-on-write: only the mappings along an override's path are copied, so `data` is never
    changed and YAML aliases (shared, possibly exponentially many times) are never expanded."""
    out = dict(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{'.'.join(parts[: i + 1])}: is a value, not a section")
            node[part] = child = dict(child)
            node = child
        node[parts[-1]] = value
    return out


def read_yaml(path: Path) -> Any:
    """Parse a YAML file safely; any problem is a one-line ConfigError naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config ({e.__class__.__name__}: {e})") from None
    try:
        data = safe_load(text)
    except yaml.reader.ReaderError as e:  # a control character such as NUL (no line mark of its own)
        line = text.count("\n", 0, e.position) + 1
        column = e.position - text.rfind("\n", 0, e.position)
        char = e.character if isinstance(e.character, int) else ord(str(e.character)[:1] or "\0")
        raise ConfigError(f"{path}: not valid YAML at line {line}, column {column}: "
                          f"unacceptable character #x{char:04x} ({e.reason})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join((getattr(e, "problem", None) or e.__class__.__name__).split())
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
    if data is None:
        raise ConfigError(f"{path}: the config file is empty; expected sections model, data, method, train")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with sections model, data, method, train")
    if any(not isinstance(k, str) for k in data):
        raise ConfigError(f"{path}: top-level keys must be strings")
    return data
