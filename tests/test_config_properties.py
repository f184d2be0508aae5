"""Property: any mutation of a valid config either validates or raises a one-line ConfigError that
starts with a dotted key path present in the mutated data (or `config`), never anything else."""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import yaml
from helpers import tiny_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finetune_cli.config import (
    RunConfig,
    config_from_dict,
    config_to_dict,
    load_config,
)
from finetune_cli.errors import ConfigError

VALID = [tiny_config(), tiny_config("top"), config_to_dict(config_from_dict(tiny_config("full")))]
FIELDS = {section: list(values) for section, values in VALID[2].items() if isinstance(values, dict)}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # includes 0, negatives and the occasional huge one
    st.sampled_from([0, 1, -1, 2**32, 10**30, -(10**30), 10**400]),
    st.floats(),  # includes nan, inf, -inf, -0.0, subnormals
    st.text(max_size=12),
    st.sampled_from(["", " ", "no", "yes", "fp16", "bf16", "top", "imdb", "snli", "gelu", "sample",
                     "tiny-random-bert", "../x", "a/b", "1e-3", "\n", "[/x]"]),
    st.binary(max_size=4),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6,
)
keys = st.one_of(st.text(max_size=10), st.sampled_from(["lr", "epoch", "bottlenek", "Model", "name ", "a.b", ""]))


def paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in nested dicts (a path to a section as well as to its leaves)."""
    out = []
    if isinstance(data, dict):
        for key, value in data.items():
            out.append((*prefix, key))
            out.extend(paths(value, (*prefix, key)))
    return out


def spellings(path: tuple) -> set[str]:
    """How a key path may be written in a message: keys as written, or repr'd when not plain text."""
    out = {""}
    for key in path:
        forms = {key, repr(key)} if isinstance(key, str) else {repr(key), str(key)}
        out = {f"{p}.{f}" if p else f for p in out for f in forms}
    return out


@st.composite
def mutation(draw) -> tuple[Any, list[str]]:
    """A valid config with 1-3 random edits; also returns what was done (shown on failure)."""
    data = copy.deepcopy(draw(st.sampled_from(VALID)))
    done = []
    for _ in range(draw(st.integers(1, 3))):
        if not isinstance(data, dict):
            break
        kind = draw(st.sampled_from(["replace", "replace", "replace", "set_field", "unknown", "delete",
                                     "section", "root"]))
        sections = [k for k, v in data.items() if isinstance(v, dict)]
        if kind == "replace" and paths(data):  # any existing key (section or leaf) gets a random value
            path = draw(st.sampled_from(paths(data)))
            node = data
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = draw(values)
        elif kind == "set_field" and sections:  # a real field of a section, maybe not yet present
            section = draw(st.sampled_from(sections))
            name = draw(st.sampled_from(FIELDS.get(section, ["x"])))
            path = (section, name)
            data[section][name] = draw(values)
        elif kind == "unknown":  # a new key at the top or in a section
            where = draw(st.sampled_from([None, *sections]))
            node = data if where is None else data[where]
            key = draw(keys)
            node[key] = draw(values)
            path = (key,) if where is None else (where, key)
        elif kind == "delete" and data:
            path = draw(st.sampled_from(paths(data)))
            node = data
            for key in path[:-1]:
                node = node[key]
            del node[path[-1]]
        elif kind == "section":  # a whole section replaced by a scalar, list or null
            path = (draw(st.sampled_from(["model", "data", "method", "train"])),)
            data[path[0]] = draw(st.one_of(scalars, st.lists(scalars, max_size=2)))
        elif kind == "root":
            data, path = draw(st.one_of(scalars, st.lists(scalars, max_size=2))), ()
        else:
            continue
        done.append(f"{kind} {path}")
    return data, done


def check_outcome(data: Any) -> RunConfig | None:
    """The property itself: a RunConfig, or a one-line ConfigError starting with an existing key path."""
    try:
        cfg = config_from_dict(data)
    except ConfigError as e:
        message = str(e)
        assert message and len(message.splitlines()) == 1 and "\r" not in message, message
        starts = {"config"} | {s for path in paths(data) for s in spellings(path)}
        # a list field names the item too: `method.lora.target_modules[0]: ...`
        assert any(message.startswith(f"{s}: ") or re.match(rf"{re.escape(s)}\[\d+\]: ", message) for s in starts), \
            message
        return None
    assert isinstance(cfg, RunConfig)
    return cfg


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutation())
def test_mutated_configs_validate_or_fail_with_one_line_naming_the_key(case):
    data, _done = case
    cfg = check_outcome(data)
    if cfg is not None:  # what validates is clean and survives its own round trip
        assert config_from_dict(config_to_dict(cfg)) == cfg
        for section in (cfg.model, cfg.data, cfg.method, cfg.train):
            for value in vars(section).values():
                assert not isinstance(value, float) or math.isfinite(value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutation())
def test_the_same_mutations_written_as_yaml_load_or_fail_with_one_line(case, tmp_path_factory):
    """Through the file reader too: whatever `yaml.safe_dump` writes, load_config gives a RunConfig or
    a one-line ConfigError (dotted key, or the file name for YAML-level problems)."""
    data, _done = case
    try:
        text = yaml.safe_dump(data, allow_unicode=False)
    except yaml.YAMLError:
        return  # not representable as YAML
    path = tmp_path_factory.getbasetemp() / "mutated.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as e:
        assert len(str(e).splitlines()) == 1, str(e)


YAMLISH = st.lists(st.sampled_from(list("{}[]:,-&*!|>'\"#%@`?\n\t 0123456789.eE_xyz+~")
                                   + ["seed", "train", "epochs", "!!", "!!python/name:os.system", "&a", "*a",
                                      "<<", "---", ".nan", "2020-13-45", "0x", "yes", "\n  "]),
                   max_size=40).map("".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(st.text(max_size=200), YAMLISH))
def test_arbitrary_text_never_escapes_as_another_exception(text, tmp_path_factory):
    path = tmp_path_factory.getbasetemp() / "arbitrary.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path)
    except ConfigError as e:
        assert len(str(e).splitlines()) == 1, str(e)


def test_base_60_numbers_are_text_as_in_yaml_1_2():
    from finetune_cli.config_yaml import safe_load

    loaded = safe_load("a: 1:30\nb: -1:30.5\nc: 190\nd: 1_000\ne: 1.5e-3\nf: 0x10\n")
    assert loaded == {"a": "1:30", "b": "-1:30.5", "c": 190, "d": 1000, "e": 1.5e-3, "f": 16}
