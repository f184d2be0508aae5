"""Regressions from a hostile-input pass over the CLI: each case ends in one line (exit 2) with
nothing lost, nothing half-written and no run left `running`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from conftest import tiny_config
from typer.testing import CliRunner

from finetune_cli.cli import app

runner = CliRunner()


def ftcli(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, *expect: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ftcli: error: "), result.stderr
    assert all(e in lines[0] for e in expect), lines[0]
    return lines[0]


def write_config(tmp_path: Path, mode: str = "top", **sections) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(tiny_config(mode, **sections)))
    return path


@pytest.fixture
def no_loading(monkeypatch):
    """Loading data or a model fails the test: what is checked here must be checked before."""
    def loads(*args, **kwargs):
        raise AssertionError("loaded data or a model before checking where results go")

    monkeypatch.setattr("finetune_cli.train.prepare_experiment", loads)
    monkeypatch.setattr("finetune_cli.ablate.load_run_model", loads)


def test_a_runs_dir_that_is_a_file_fails_before_loading(tmp_path, no_loading):
    (tmp_path / "runs").write_text("not a folder")
    one_line_error(ftcli("train", write_config(tmp_path), "--runs-dir", tmp_path / "runs"),
                   f"--runs-dir: {tmp_path / 'runs'} is a file, not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_runs_dir_fails_before_loading(tmp_path, no_loading):
    (tmp_path / "runs").mkdir(mode=0o555)
    one_line_error(ftcli("train", write_config(tmp_path), "--runs-dir", tmp_path / "runs"), "is not writable")


def test_a_non_utf8_runs_dir_fails_before_loading(tmp_path, no_loading):
    one_line_error(ftcli("train", write_config(tmp_path), "--runs-dir", tmp_path / "runs\udcff"),
                   "--runs-dir: ", "runs\\xff/run is not valid UTF-8")


def test_ablate_into_a_file_fails_before_loading(tmp_path, no_loading):
    (tmp_path / "out").write_text("not a folder")
    one_line_error(ftcli("ablate", tmp_path / "run", "--out-dir", tmp_path / "out"),
                   f"--out-dir: {tmp_path / 'out'} is a file, not a folder")
