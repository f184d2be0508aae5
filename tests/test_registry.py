"""The method registry is the one list of methods: every record is complete, and everything that
lists methods (config, surgery, export, plots, bench, ablate, CLI help, README) agrees with it."""

from __future__ import annotations

import dataclasses
import re
import typing

import pytest
import torch
from helpers import ROOT

from finetune_cli.config import MethodConfig, ModelConfig
from finetune_cli.methods.adapters import adapters_in, encoder_layers
from finetune_cli.methods.predicate import apply_method, count_params, part_prefixes
from finetune_cli.methods.registry import (
    EXPORT_FORMATS,
    METHOD_NAMES,
    METHODS,
    PARTS,
    SECTIONS,
    MethodSpec,
    check_spec,
    make_registry,
    names_where,
)
from finetune_cli.methods.surgery import SURGERIES
from finetune_cli.models.backbones import load_backbone
from finetune_cli.models.families import FAMILIES
from finetune_cli.training.frozen_encoder import find_cut

COMPLETE = MethodSpec("new", "a new method", ("head",), "dc+c", "transformers", "tab:cyan", "o", learning_rate=1e-3)


def tiny(mode: str, bottleneck: int = 8):
    torch.manual_seed(0)
    backbone = load_backbone(ModelConfig(name="tiny-random-bert"), 2)
    return backbone, apply_method(backbone.model, MethodConfig(mode=mode, bottleneck=bottleneck))


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_every_record_is_complete(name):
    assert check_spec(METHODS[name]) is METHODS[name] and METHODS[name].name == name


@pytest.mark.parametrize("field", ["summary", "formula", "color", "marker"])
def test_a_record_missing_a_field_is_refused(field):
    check_spec(COMPLETE)  # the complete one passes
    with pytest.raises(ValueError, match=f"method 'new': {field} is missing"):
        check_spec(dataclasses.replace(COMPLETE, **{field: ""}))


@pytest.mark.parametrize(("field", "value"), [("export", ""), ("export", "onnx"), ("trains", ()),
                                              ("trains", ("head", "everything")), ("section", "dora"),
                                              ("name", "new method"), ("summary", "two\nlines"),
                                              ("formula", "a | b"), ("learning_rate", 0.0),
                                              ("learning_rate", 1.0)])
def test_a_record_with_a_wrong_field_is_refused(field, value):
    with pytest.raises(ValueError, match=f"method '.*': {field} is missing or invalid"):
        check_spec(dataclasses.replace(COMPLETE, **{field: value}))


def test_a_method_registered_twice_is_refused():
    assert list(make_registry(COMPLETE)) == ["new"]
    with pytest.raises(ValueError, match="registered twice"):
        make_registry(COMPLETE, COMPLETE)


def test_the_config_allows_exactly_the_registered_methods_in_order():
    mode = typing.get_type_hints(MethodConfig)["mode"]
    assert typing.get_args(mode) == METHOD_NAMES == tuple(METHODS)
    assert MethodConfig().mode in METHODS


def test_config_sections_belong_to_methods():
    sub_sections = {f.name for f in dataclasses.fields(MethodConfig) if dataclasses.is_dataclass(f.type)
                    or dataclasses.is_dataclass(typing.get_type_hints(MethodConfig)[f.name])}
    assert sub_sections == set(SECTIONS) == {s.section for s in METHODS.values() if s.section}


def test_surgeries_cover_the_registry_exactly():
    assert {s.surgery for s in METHODS.values() if s.surgery} == set(SURGERIES)


def test_every_part_is_known_to_the_predicate():
    backbone = load_backbone(ModelConfig(name="tiny-random-bert"), 2)
    for part in PARTS:
        part_prefixes(backbone.model, part, MethodConfig())  # raises ValueError on a part it does not know


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_frozen_encoder_cache_flag_agrees_with_find_cut(name):
    backbone, is_trained = tiny(name)
    assert (find_cut(backbone.model, is_trained) is not None) == METHODS[name].frozen_encoder_cache


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_sized_by_bottleneck_flag_agrees_with_the_counts(name):
    counts = [count_params(m.model, p, 0).trainable for m, p in (tiny(name, 4), tiny(name, 8))]
    assert (counts[0] != counts[1]) == METHODS[name].sized_by_bottleneck


@pytest.mark.parametrize("name", names_where("ablatable"))
def test_ablatable_methods_have_adapters_in_every_layer(name):
    backbone, _ = tiny(name)
    assert all(adapters_in(layer) for _, layer in encoder_layers(backbone.model, FAMILIES["bert"]))


def test_export_formats_have_a_writer_and_adapterhub_methods_a_config():
    from finetune_cli.methods.adapterhub import ADAPTERHUB_CONFIGS
    from finetune_cli.workflows.export import SAVERS

    assert set(SAVERS) == set(EXPORT_FORMATS) == set(typing.get_args(typing.get_type_hints(MethodSpec)["export"]))
    assert set(ADAPTERHUB_CONFIGS) == {n for n, s in METHODS.items() if s.export == "adapterhub"}


def test_plot_colours_and_markers_are_matplotlibs_and_distinct():
    from matplotlib.colors import is_color_like
    from matplotlib.markers import MarkerStyle

    from finetune_cli.runs.plots import UNKNOWN_STYLE, style

    for name, spec in METHODS.items():
        assert is_color_like(spec.color) and style(name) == (spec.color, spec.marker)
        MarkerStyle(spec.marker)  # raises on a marker matplotlib does not know
    colours = [s.color for s in METHODS.values()] + [UNKNOWN_STYLE[0]]
    assert len(set(colours)) == len(colours)
    assert style("a-newer-method") == UNKNOWN_STYLE


def test_bench_ablate_and_cli_help_read_the_registry():
    from typer.testing import CliRunner

    from finetune_cli.bench.run import DEFAULT_MODES, parse_modes
    from finetune_cli.cli import app

    assert DEFAULT_MODES == names_where("benched") == ("full", "top", "layerwise", "head")
    assert names_where("ablatable") == ("layerwise",)
    assert parse_modes(",".join(METHOD_NAMES)) == list(METHOD_NAMES)
    runner = CliRunner()
    text = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "300"}).output
    assert all(f"{s.name}: {s.summary}" in text for s in METHODS.values())
    bench = runner.invoke(app, ["bench", "--help"], env={"COLUMNS": "300"}).output
    assert "full,top,layerwise,head" in bench and ", ".join(METHODS) in bench


def readme_modes() -> dict[str, str]:
    """The README's "Modes" table: mode -> trainable-parameter formula, in the table's order."""
    section = (ROOT / "README.md").read_text().split("## Modes (`method.mode`)", 1)[1].split("\n## ", 1)[0]
    section = section.split("\n### ", 1)[0]  # the modes table, not the learning rates after it
    rows = re.findall(r"^\| `(\w+)` \|.*\| ([^|]+) \|$", section, re.M)
    return {name: formula.strip() for name, formula in rows}


def test_the_readme_table_is_the_registry():
    assert readme_modes() == {name: spec.formula for name, spec in METHODS.items()}
    assert list(readme_modes()) == list(METHOD_NAMES)


def test_the_readme_learning_rate_table_is_the_registry():
    section = (ROOT / "README.md").read_text().split("### Learning rates (`train.learning_rate: auto`)", 1)[1]
    table = section.split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| ([0-9.e-]+) \| ([0-9.e-]+)\.\.([0-9.e-]+) \|", table, re.M)
    assert {name: float(rate) for name, rate, _, _ in rows} == {n: s.learning_rate for n, s in METHODS.items()}
    assert {name: (float(lo), float(hi)) for name, _, lo, hi in rows} == {n: s.tune_range for n, s in METHODS.items()}
