"""Every file in tests/malformed_configs/ fails through the real CLI with one line and exit code 2.

Each corpus file starts with `# expect: <text>`: a substring of the one-line error (it names the
dotted key, or the file for YAML-level problems). A second line `# stage: data` / `# stage: model`
marks the few files whose problem is only visible after the config is valid (a missing data
folder, a bottleneck not smaller than the tiny model's hidden size 32); every other file must fail
while the config is read, before a run folder exists and before any data or model is loaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finetune_cli.cli import app
from finetune_cli.config import RunConfig, load_config
from finetune_cli.errors import ConfigError

CORPUS = Path(__file__).parent / "malformed_configs"
FILES = sorted(CORPUS.glob("*.yaml"))
RESULT_FILES = ("metrics.jsonl", "summary.json", "trained.safetensors")
MARKER = "ftcli-pwned-marker"  # what the python/object corpus files would `touch` if YAML ran code

runner = CliRunner()


def header(path: Path) -> tuple[str, str | None]:
    """(expected message substring, stage or None) from a corpus file's first two lines."""
    lines = path.read_bytes().split(b"\n")
    first = lines[0].decode("utf-8")
    assert first.startswith("# expect: "), f"{path.name}: first line must be '# expect: ...'"
    second = lines[1].decode("utf-8", "replace") if len(lines) > 1 else ""
    stage = second.removeprefix("# stage: ").split()[0] if second.startswith("# stage: ") else None
    return first.removeprefix("# expect: "), stage


def test_the_corpus_is_large_and_every_file_says_what_it_expects():
    assert len(FILES) >= 50
    stages = [header(p)[1] for p in FILES]
    assert all(header(p)[0].strip() for p in FILES)
    assert set(stages) <= {None, "data", "model"}
    assert stages.count(None) >= 50  # nearly all are caught while the config is read


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_config_errors_are_caught_while_reading_the_config(path):
    """Config-stage files raise ConfigError from load_config alone (no data, no model); the others
    are valid configs whose problem shows later."""
    expect, stage = header(path)
    if stage is None:
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert expect in str(info.value)
    else:
        assert isinstance(load_config(path), RunConfig)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_malformed_config_fails_through_the_cli_with_one_line(path, tmp_path, monkeypatch):
    expect, stage = header(path)
    monkeypatch.chdir(tmp_path)  # anything written relative to the working folder lands here
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", str(path), "--runs-dir", str(runs)])
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ftcli: error: "), lines[0]
    assert expect in lines[0]
    assert result.stdout == ""
    assert "Traceback" not in result.output + result.stderr
    assert not (tmp_path / MARKER).exists()
    if stage is None:
        assert not runs.exists()  # failed before the run folder was even created
    else:
        assert not [p for p in runs.rglob("*") if p.name in RESULT_FILES]  # nothing trained or recorded


@pytest.mark.parametrize("name", ["python_object_apply", "syntax_tabs"])
def test_as_a_subprocess_the_error_is_exactly_one_line_and_exit_2(name, tmp_path):
    path = CORPUS / f"{name}.yaml"
    expect, _ = header(path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("FTCLI_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "finetune_cli", "train", str(path), "--runs-dir", "runs"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ftcli: error: ") and expect in lines[0], proc.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / MARKER).exists()


def test_an_empty_file_is_one_line(tmp_path):
    """The one case the corpus cannot hold: a file with no bytes at all (so no `# expect:` line)."""
    path = tmp_path / "empty.yaml"
    path.write_bytes(b"")
    result = runner.invoke(app, ["train", str(path), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"ftcli: error: {path}: the config file is empty; expected sections model, data, method, train"]


def test_a_missing_config_file_is_one_line(tmp_path):
    result = runner.invoke(app, ["train", str(tmp_path / "nope.yaml"), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"ftcli: error: {tmp_path / 'nope.yaml'}: no such config file"]


@pytest.mark.parametrize(("override", "expect"), [
    ("train.mixed_precision=no", None),  # YAML 1.2 booleans: `no` is the string "no", a valid value
    ("train.epochs=true", "train.epochs: got True, expected an integer"),
    ("seed=2020-13-45", "seed: got '2020-13-45', expected an integer"),  # not a date: kept as text
    ("method.bottleneck=" + "[" * 2000, "method.bottleneck: got '[[[["),  # not YAML: kept as text
    ("model=tiny", "model: expected a mapping of keys to values, got 'tiny'"),
    ("data.source.folder=x", "data.source: is a value, not a section"),
])
def test_bad_overrides_are_one_line_too(override, expect, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("model: {name: tiny-random-bert}\ndata: {source: sample}\n")
    if expect is None:
        assert load_config(good, [override]).train.mixed_precision == "no"
        return
    result = runner.invoke(app, ["train", str(good), "--set", override, "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ftcli: error: ") and expect in lines[0], result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("key", ["[/oops]", "[bold]x"])
def test_square_brackets_in_a_message_are_printed_as_written(key, tmp_path):
    path = tmp_path / "markup.yaml"
    path.write_text(f'model:\n  "{key}": 1\n')
    result = runner.invoke(app, ["train", str(path), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.splitlines() == [
        f"ftcli: error: model.{key}: unknown key; allowed keys here: name, max_length, attention_dropout, layout"]
