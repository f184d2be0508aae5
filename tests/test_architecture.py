"""The layers of ARCHITECTURE.md hold: a module imports only modules of its own package or of a
lower layer, and no module or function outgrows the size a reader can hold in mind."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "finetune_cli"

# Rank of each part, top to bottom (ARCHITECTURE.md). The longest matching prefix decides. Parts of
# one rank above the bottom are independent: neither imports the other (data and methods, workflows
# and bench).
RANKS = {
    "finetune_cli.cli": 6, "finetune_cli.__main__": 7,
    "finetune_cli.workflows": 5, "finetune_cli.bench": 5,
    "finetune_cli.training": 4,
    "finetune_cli.runs": 3,
    "finetune_cli.methods": 2, "finetune_cli.data": 2,
    "finetune_cli.models": 1,
    # the bottom: typed config, errors, the method catalogue and the encoder families' layout table
    # (torch-free records the config's allowed modes and layouts come from; what a method *does*
    # lives in the rest of methods/)
    "finetune_cli.config": 0, "finetune_cli.config_schema": 0, "finetune_cli.config_yaml": 0, "finetune_cli.errors": 0,
    "finetune_cli.methods.registry": 0, "finetune_cli.models.families": 0, "finetune_cli.hub": 0,
    "finetune_cli": 0,  # __init__: the version
}
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 50


def part_of(module: str) -> str:
    """The RANKS key that owns a dotted module name."""
    matches = [key for key in RANKS if module == key or (key != "finetune_cli" and module.startswith(key + "."))]
    return max(matches, key=len) if matches else None  # None: a module no layer owns (add it to RANKS)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_or_package(dotted: str) -> str:
    """`dotted` when it names a module or package of ours, else its package (an imported name)."""
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return dotted if path.with_suffix(".py").exists() or path.is_dir() else dotted.rpartition(".")[0]


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import of the package in a file, in functions too (lazy ones)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from . import x`: x is a module, or (e.g. __version__) a name of the package itself
            targets = [target] if node.module else [module_or_package(f"{target}.{a.name}") for a in node.names]
            found += [(node.lineno, t) for t in targets]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, t) for line, t in found if t == "finetune_cli" or t.startswith("finetune_cli.")]


def violations(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported` (None: it may)."""
    a, b = part_of(importer), part_of(imported)
    if a == b or b == "finetune_cli":
        return None
    if RANKS[b] > RANKS[a]:
        return f"{importer} (layer {RANKS[a]}) imports {imported} (layer {RANKS[b]}, above it)"
    if RANKS[b] == RANKS[a] > 0:  # the bottom's few leaf modules may use each other (errors)
        return f"{importer} imports {imported}: parts of one layer are independent"
    return None


def test_the_checker_refuses_an_upward_import():
    assert violations("finetune_cli.data.tokens", "finetune_cli.training.loop") is not None
    assert violations("finetune_cli.methods.adapters", "finetune_cli.data.task") is not None
    assert violations("finetune_cli.config", "finetune_cli.methods.predicate") is not None
    assert violations("finetune_cli.config", "finetune_cli.methods.registry") is None
    assert violations("finetune_cli.training.loop", "finetune_cli.data.tokens") is None
    assert part_of("finetune_cli.newmodule") is None  # a new top-level module must be given its layer


def package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    names = [module_name(p) for p in package_files()]
    assert [n for n in names if part_of(n) is None] == []
    assert {part_of(n) for n in names} == set(RANKS)  # no stale entry either


@pytest.mark.parametrize("path", package_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down_the_layers(path):
    importer = module_name(path)
    bad = [f"line {line}: {why}" for line, target in imports_of(path) if (why := violations(importer, target))]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", package_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_stay_short(path):
    source = path.read_text()
    assert source.count("\n") <= MAX_MODULE_LINES, f"{path.name}: split it (one module, one job)"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.name}: {', '.join(long)}"


# The data path, in order (ARCHITECTURE.md): helpers first, then one stage per module; a stage is a
# function of the previous stage's value and imports no later stage.
DATA_ORDER = ["files", "cache", "subsets", "metrics", "balance", "objective",  # helpers
              "task", "sources", "checks", "splits", "tokens", "batches"]  # the stages


def test_every_data_module_has_its_place_in_the_data_path():
    assert sorted(p.stem for p in (PACKAGE / "data").glob("*.py") if p.stem != "__init__") == sorted(DATA_ORDER)


@pytest.mark.parametrize("stage", DATA_ORDER)
def test_no_data_stage_imports_a_later_one(stage):
    later = {f"finetune_cli.data.{s}" for s in DATA_ORDER[DATA_ORDER.index(stage) + 1:]}
    found = [(line, t) for line, t in imports_of(PACKAGE / "data" / f"{stage}.py") if t in later]
    assert not found, f"data/{stage}.py imports a later stage: {found}"
