"""Security: configs are data, never code.

The package source only parses YAML with the safe loader, never unpickles (no pickle, no plain
torch.load; weights are safetensors), never imports what a string names, and a config's fields
are plain values: no module, class or callable can be named to be imported or run.

ruff's bandit rules (pyproject.toml, `make lint`) refuse eval, exec, os.system / os.popen,
shell=True, pickle and marshal calls and yaml.load with an unsafe loader (S307, S102, S605, S602,
S604, S301, S302, S506); the scanner below checks only what ruff cannot.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml

from finetune_cli import config, config_yaml
from finetune_cli.config import RunConfig, load_config
from finetune_cli.config_yaml import safe_load
from finetune_cli.errors import ConfigError

PACKAGE = Path(config.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))
SAFE_LOADERS = {"_Loader", "SafeLoader", "CSafeLoader"}


def calls(tree: ast.AST):
    """(dotted name of the callee, call node) for every call in a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield ast.unparse(node.func), node


@pytest.fixture(scope="module")
def trees() -> dict[str, ast.AST]:
    assert len(SOURCES) >= 10
    return {str(p.relative_to(PACKAGE)): ast.parse(p.read_text(), filename=str(p)) for p in SOURCES}


def test_ruff_enforces_the_security_rules_it_took_over_from_this_scanner():
    lint = (PACKAGE.parent / "pyproject.toml").read_text().split("[tool.ruff.lint]")[1].split("\n[tool.pytest")[0]
    select = re.search(r"^select = \[(.*)\]$", lint, re.M).group(1)
    assert {"S", "BLE", "SIM", "RUF100"} <= set(re.findall(r'"(\w+)"', select))
    settings = "\n".join(line.split("#")[0] for line in lint.splitlines() if not line.startswith("select"))
    assert set(re.findall(r'"(S\d*)"', settings)) <= {"S101", "S603"}  # only the tests' asserts and subprocesses


def test_yaml_is_only_ever_read_with_the_safe_loader(trees):
    for name, tree in trees.items():
        for callee, node in calls(tree):  # yaml.load itself: ruff's S506
            if callee in ("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all"):
                pytest.fail(f"{name}:{node.lineno}: {callee}")
            if callee == "yaml.load_all":
                loader = {k.arg: ast.unparse(k.value) for k in node.keywords}.get("Loader")
                if loader is None and len(node.args) > 1:
                    loader = ast.unparse(node.args[1])
                assert loader is not None and loader.split(".")[-1] in SAFE_LOADERS, f"{name}:{node.lineno}: {loader}"
        for node in ast.walk(tree):  # the unsafe loaders are not even mentioned
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "yaml":
                assert node.attr not in ("Loader", "UnsafeLoader", "FullLoader", "CLoader", "CUnsafeLoader",
                                         "CFullLoader"), f"{name}:{node.lineno}: yaml.{node.attr}"
    assert issubclass(config_yaml._Loader, yaml.SafeLoader)


def test_nothing_is_unpickled_weights_are_safetensors(trees):
    unpicklers = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & unpicklers, f"{name}:{node.lineno}"
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] not in unpicklers, f"{name}:{node.lineno}"
            if isinstance(node, ast.ImportFrom) and node.module == "torch":  # `from torch import load`
                assert "load" not in {a.name for a in node.names}, f"{name}:{node.lineno}"
        for callee, node in calls(tree):
            if callee == "torch.load" or callee.endswith(".serialization.load"):
                pytest.fail(f"{name}:{node.lineno}: {callee} unpickles; use safetensors")
            if callee.endswith(("numpy.load", "np.load")):
                allow = {k.arg: ast.unparse(k.value) for k in node.keywords}.get("allow_pickle")
                assert allow in (None, "False"), f"{name}:{node.lineno}: {callee}(allow_pickle={allow})"
            if callee.endswith("from_pretrained"):
                remote = {k.arg: ast.unparse(k.value) for k in node.keywords}.get("trust_remote_code")
                assert remote in (None, "False"), f"{name}:{node.lineno}: trust_remote_code={remote}"
    results = (PACKAGE / "runs" / "folder.py").read_text()
    assert "safetensors" in results and "trained.safetensors" in results


def test_no_string_is_ever_turned_into_code_or_an_import(trees):
    """eval, exec, os.system, os.popen and shell=True are ruff's (S307, S102, S605, S602, S604)."""
    for name, tree in trees.items():
        for callee, node in calls(tree):
            refused = ("compile", "__import__", "importlib.import_module", "import_module", "runpy.run_path",
                       "runpy.run_module", "pydoc.locate")
            assert callee not in refused, f"{name}:{node.lineno}: {callee}"


def test_config_fields_are_plain_values_not_importable_names():
    allowed = (int, float, str, bool, type(None))

    def leaf_types(tp) -> list:
        if dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            return [t for f in dataclasses.fields(tp) for t in leaf_types(hints[f.name])]
        if typing.get_origin(tp) is typing.Literal:
            return [type(a) for a in typing.get_args(tp)]
        if typing.get_args(tp):  # Optional[...], tuple[str, ...] (its `...` is not a type)
            return [t for a in typing.get_args(tp) if a is not Ellipsis for t in leaf_types(a)]
        return [tp]

    assert set(leaf_types(RunConfig)) <= set(allowed)


@pytest.mark.parametrize("text", [
    "seed: !!python/object/apply:os.system ['echo pwned']",
    "seed: !!python/object/new:os.system ['echo pwned']",
    "seed: !!python/name:os.system ''",
    "seed: !!python/module:this ''",
    "seed: !!python/object:finetune_cli.config.RunConfig {}",
    "method: !!python/object/apply:builtins.dict [{mode: full}]",
    "seed: !<tag:yaml.org,2002:python/object/apply:os.system> ['echo pwned']",
    "seed: !!python/tuple [1]",
])
def test_python_tags_are_refused(text):
    with pytest.raises(yaml.YAMLError, match="could not determine a constructor"):
        safe_load(text)


def test_a_config_cannot_import_or_run_anything(tmp_path):
    """In a fresh interpreter (so nothing is already imported): loading configs that name modules
    through YAML tags or as plain strings neither imports them nor runs a command."""
    cases = {
        "tag_module.yaml": "seed: !!python/module:this ''\n",
        "tag_name.yaml": "method: {activation: !!python/name:antigravity.geohash ''}\n",
        "tag_apply.yaml": "seed: !!python/object/apply:os.system ['touch pwned']\n",
        "strings.yaml": "model: {name: this}\nmethod: {activation: antigravity}\ndata: {source: os.system}\n",
    }
    for file_name, text in cases.items():
        (tmp_path / file_name).write_text(text)
    script = (
        "import sys\n"
        "from finetune_cli.config import load_config\n"
        "from finetune_cli.errors import ConfigError\n"
        f"for name in {sorted(cases)!r}:\n"
        "    try:\n"
        "        load_config(name)\n"
        "    except ConfigError as e:\n"
        "        print('error', name, str(e).splitlines()[0][:60])\n"
        "print('imported:', sorted(m for m in ('this', 'antigravity') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "imported: []"
    assert proc.stdout.count("error ") == 4  # every file refused (the strings: not valid values)
    assert "The Zen of Python" not in proc.stdout and not (tmp_path / "pwned").exists()


def test_the_run_name_cannot_escape_the_runs_folder():
    for name in ("..", "../x", "/etc", "a/b", "a\\b", ".hidden", "~root", "a\x00b", "con:x"):
        with pytest.raises(ConfigError, match="^name: "):
            config.config_from_dict({"name": name})


def test_python_tags_fail_load_config_as_one_line(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("seed: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "\n" not in str(info.value) and "python/object/apply:os.system" in str(info.value)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
