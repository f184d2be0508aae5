"""Which compare rows (or runs) a figure draws as one series, and what the settings of runs are.

Rows of one mode that differ in a setting are separate series, labelled with what sets them apart
(`lora (train.learning_rate 0.001)`), so two learning rates are never joined into one line of one
colour. A setting that moves a point along the x axis (the bottleneck, against trained parameters)
is the series' own curve, not a split; so is a `--best-of` key, chosen per point."""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from .compare import run_config, value_order
from .read import Run

NOT_SETTINGS = ("seed", "name")  # a row is a group of seeds; the name only names the folder


def flat_settings(config: dict, prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted key -> value (a list is one value)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flat_settings(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def run_settings(run: Run) -> dict[str, Any]:
    """A run's config with today's defaults and its autos as recorded (compare.run_config), as dotted keys."""
    return flat_settings(run_config(run))


def differing_keys(settings: list[dict[str, Any]]) -> list[str]:
    """The dotted keys whose value is not the same in every mapping (absent in some: differs)."""
    keys = dict.fromkeys(k for s in settings for k in s)
    return [k for k in keys if len({json.dumps([k in s, s.get(k)], sort_keys=True) for s in settings}) > 1]


def setting_text(value: Any) -> str:
    """A config value in a legend or a table: 0.001, 3e-05, lora, ["query", "value"], true."""
    if isinstance(value, float):
        return f"{value:g}"
    return value if isinstance(value, str) else json.dumps(value)


def along_x(key: str, settings: list[dict[str, Any]], xs: list[Hashable]) -> bool:
    """Whether a key's values and the x values correspond one to one (e.g. method.bottleneck and
    trained parameters): the key moves points along the axis."""
    pairs = {(json.dumps(s.get(key), sort_keys=True), x) for s, x in zip(settings, xs, strict=True)}
    return len(pairs) == len({v for v, _ in pairs}) == len({x for _, x in pairs})


@dataclass(frozen=True)
class Series:
    mode: str
    values: dict[str, Any]  # the settings that set it apart from the mode's other series (dotted key -> value)
    members: list  # the rows (or runs) it draws, in the order given
    index: int  # its place among the mode's series: 0 is drawn in the method's own style

    def label(self, *notes: str) -> str:
        """`lora (train.learning_rate 0.001; n=2 seeds)`: the mode, its values and `notes`."""
        values = ", ".join(f"{k} {setting_text(v)}" for k, v in self.values.items())
        inside = "; ".join(part for part in (values, *notes) if part)
        return f"{self.mode} ({inside})" if inside else self.mode


def split_series(items: list, mode_of: Callable[[Any], str], settings_of: Callable[[Any], dict[str, Any]],
                 x_of: Callable[[Any], Hashable] | None = None, fixed: tuple[str, ...] = ()) -> list[Series]:
    """The items of each mode (in the order the modes first appear) split by the keys that
    differ among that mode's items, less NOT_SETTINGS, `fixed` and the keys along x (`x_of`)."""
    found = []
    for mode in dict.fromkeys(mode_of(i) for i in items):
        members = [i for i in items if mode_of(i) == mode]
        settings = [{k: v for k, v in settings_of(i).items() if k not in NOT_SETTINGS + fixed} for i in members]
        keys = [k for k in differing_keys(settings)
                if x_of is None or not along_x(k, settings, [x_of(i) for i in members])]
        groups: dict[str, tuple[dict[str, Any], list]] = {}
        for item, setting in zip(members, settings, strict=True):
            values = {k: setting.get(k) for k in keys}
            groups.setdefault(json.dumps(values, sort_keys=True), (values, []))[1].append(item)
        ordered = sorted(groups.values(), key=lambda g: value_order(g[0]))
        found += [Series(mode, values, group, index) for index, (values, group) in enumerate(ordered)]
    return found

