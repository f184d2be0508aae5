"""End to end through the CLI on the tiny random BERT: every mode, exact files, compare output."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest
import yaml
from helpers import CONFIGS, FAST, ROOT, ftcli

from finetune_cli import __version__
from finetune_cli.methods.registry import METHOD_NAMES
from finetune_cli.runs.folder import RUN_FILES


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """The three smoke configs trained once through the CLI (shared by the tests below)."""
    runs = tmp_path_factory.mktemp("smoke") / "runs"
    for mode in ("full", "top", "layerwise"):
        result = ftcli("train", CONFIGS / "smoke" / f"{mode}.yaml", "--runs-dir", runs, *FAST)
        assert result.exit_code == 0, result.output
        assert "trainable params:" in result.output and "inference accuracy" in result.output
    return runs


def test_every_mode_writes_exactly_the_run_files(smoke_runs):
    expected = {"full": 1_011_426, "top": 618, "layerwise": 2_594}
    for mode, trainable in expected.items():
        folder = smoke_runs / mode
        assert sorted(p.name for p in folder.iterdir()) == sorted(RUN_FILES)
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["mode"] == mode
        assert summary["trainable_params"] == trainable
        assert summary["data_source"] == "sample"
        assert summary["data_sizes"] == {"train": 48, "validation": 16, "test": 16}
        assert 0 <= summary["inference_accuracy"] <= 1 and summary["best_epoch"] == 1
        config = yaml.safe_load((folder / "config.yaml").read_text())
        assert config["method"]["mode"] == mode and config["train"]["epochs"] == 1  # resolved, overrides in
        metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        assert [m["epoch"] for m in metrics] == [1]
        assert set(metrics[0]) >= {"train_loss", "val_loss", "val_accuracy", "train_seconds"}


@pytest.mark.parametrize(("mode", "trainable", "bottleneck"), [
    ("pfeiffer", 1_170, 8), ("lora", 2_114, None), ("ia3", 386, None), ("bitfit", 706, None)])
def test_the_new_methods_train_through_the_cli_from_their_smoke_configs(runs_dir, mode, trainable, bottleneck):
    from safetensors.torch import load_file

    result = ftcli("train", CONFIGS / "smoke" / f"{mode}.yaml", "--runs-dir", runs_dir, *FAST)
    assert result.exit_code == 0, result.output
    folder = runs_dir / mode
    assert sorted(p.name for p in folder.iterdir()) == sorted(RUN_FILES)
    summary = json.loads((folder / "summary.json").read_text())
    assert (summary["status"], summary["mode"], summary["trainable_params"]) == ("completed", mode, trainable)
    assert summary["bottleneck"] == bottleneck
    assert sum(t.numel() for t in load_file(folder / "trained.safetensors").values()) == trainable


def test_saved_weights_are_the_trained_parameters_only(smoke_runs):
    from safetensors.torch import load_file

    sizes = {}
    for mode in ("full", "top", "layerwise"):
        state = load_file(smoke_runs / mode / "trained.safetensors")
        sizes[mode] = (smoke_runs / mode / "trained.safetensors").stat().st_size
        summary = json.loads((smoke_runs / mode / "summary.json").read_text())
        assert sum(t.numel() for t in state.values()) == summary["trainable_params"]
    assert sizes["layerwise"] < 0.02 * sizes["full"] and sizes["top"] < sizes["layerwise"]


def test_compare_lists_every_run_in_every_format(smoke_runs):
    result = ftcli("compare", smoke_runs, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert sorted(r["mode"] for r in rows) == ["full", "layerwise", "top"]
    full = next(r for r in rows if r["mode"] == "full")
    assert full["diff_to_full"] == 0 and full["trainable_params"] == 1_011_426
    md = ftcli("compare", smoke_runs, "--format", "markdown").stdout
    assert md.startswith("| name | dataset | mode | prec | m | trained params (% of backbone) |")
    assert md.count("\n") == 5
    table = list(csv.DictReader(io.StringIO(ftcli("compare", smoke_runs, "--format", "csv").stdout)))
    assert {r["mode"] for r in table} == {"full", "top", "layerwise"}
    text = ftcli("compare", smoke_runs).stdout
    for word in ("inference acc", "layerwise", "2,594"):
        assert word in text


def test_compare_skips_broken_folders(smoke_runs, tmp_path):
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(smoke_runs, runs)
    (runs / "broken").mkdir()
    (runs / "broken" / "summary.json").write_text("{not json")
    (runs / "notes").mkdir()
    result = ftcli("compare", runs, "--format", "json")
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)) == 3
    assert "skipped" in result.stderr and "broken" in result.stderr


def test_existing_run_folder_is_never_overwritten_silently(smoke_runs):
    before = (smoke_runs / "top" / "summary.json").read_text()
    result = ftcli("train", CONFIGS / "smoke" / "top.yaml", "--runs-dir", smoke_runs, *FAST)
    assert result.exit_code == 2
    assert "already exists" in result.stderr and "Traceback" not in result.output
    assert (smoke_runs / "top" / "summary.json").read_text() == before


def test_name_and_set_options(runs_dir):
    result = ftcli("train", CONFIGS / "smoke" / "top.yaml", "--runs-dir", runs_dir, "--name", "mine", *FAST,
                   "--set", "method.bottleneck=4")
    assert result.exit_code == 0, result.output
    assert json.loads((runs_dir / "mine" / "summary.json").read_text())["trainable_params"] == 2 * 4 * 32 + 4 + 32 + 66


def test_config_errors_are_one_line_exit_2_and_traceback_only_in_debug(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method:\n  mode: dora\n")
    cmd = [sys.executable, "-m", "finetune_cli", "train", str(bad)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "ftcli: error: method.mode: got 'dora', expected one of " + ", ".join(map(repr, METHOD_NAMES))]
    assert METHOD_NAMES[:3] == ("full", "top", "layerwise")  # the registry's order is the message's
    debug = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env={**_env(), "FTCLI_DEBUG": "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def _env():
    import os

    return dict(os.environ)


def test_version_and_help():
    assert ftcli("--version").stdout.strip() == f"ftcli {__version__}"
    for command in ("train", "compare", "report"):
        result = ftcli(command, "--help")
        assert result.exit_code == 0 and "Examples" in result.stdout
    top = ftcli("--help").stdout
    assert "your own text" in top and "IMDB, SNLI and AG News" not in top  # #23.9: not the presets only


def test_readme_starts_with_the_two_setup_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    head = "\n".join(lines[:12])
    assert "make demo" in head and "make test" in head


def test_a_failed_start_leaves_no_folder_so_the_same_command_can_be_retried(runs_dir):
    args = ["train", CONFIGS / "smoke" / "top.yaml", "--runs-dir", runs_dir, *FAST]
    result = ftcli(*args, "--set", "method.bottleneck=64")  # larger than the tiny model's hidden size 32
    assert result.exit_code == 2 and "must be smaller than the hidden size 32" in result.stderr
    assert not (runs_dir / "top").exists()
    assert ftcli(*args).exit_code == 0


def test_a_name_that_looks_like_a_number_round_trips(runs_dir):
    result = ftcli("train", CONFIGS / "smoke" / "top.yaml", "--runs-dir", runs_dir, "--name", "1e5", *FAST)
    assert result.exit_code == 0, result.output
    from finetune_cli.config import load_config

    assert load_config(runs_dir / "1e5" / "config.yaml").name == "1e5"


def test_a_config_error_is_reported_before_torch_is_imported(tmp_path):
    """#24.11: validating the YAML first makes a config error instant (it took 6-7 s of imports)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: 0}\n")
    probe = ("import sys\nfrom finetune_cli.cli import app\ntry:\n    app(['train', sys.argv[1]])\n"
             "except SystemExit as e:\n    print(e.code, 'torch' in sys.modules, 'transformers' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", probe, str(bad)], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["2", "False", "False"], done.stderr
    assert "train.epochs: got 0, expected an integer >= 1" in done.stderr


def test_ablate_help_shows_the_span_of_layers():
    """#24.11: rich markup ate `[i..j]`."""
    result = ftcli("ablate", "--help")
    assert "[i..j]" in result.output


def piped(*args: str, columns: str | None = None) -> subprocess.CompletedProcess:
    """`python -m finetune_cli ARGS` with stdout and stderr pipes (not a terminal), $COLUMNS as given."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update({"COLUMNS": columns} if columns else {})
    return subprocess.run([sys.executable, "-m", "finetune_cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def test_piped_logs_and_tables_never_hard_wrap(smoke_runs, tmp_path):
    """#23.3: a log file holds whole lines: the epoch line (> 80 characters) and the result line are
    one line each; compare's table is one line per row at its own width, or at $COLUMNS."""
    done = piped("train", CONFIGS / "smoke" / "top.yaml", "--runs-dir", tmp_path, *FAST)
    assert done.returncode == 0, done.stderr
    (epoch,) = [line for line in done.stderr.splitlines() if line.startswith("epoch 1/1:")]
    assert len(epoch) > 80 and epoch.rstrip().endswith(tuple("0123456789%"))  # all its scores, one line
    (result,) = done.stdout.splitlines()
    assert result.startswith("inference accuracy") and result.endswith(str(tmp_path / "top"))
    for args in ((), ("--wide",)):
        table = piped("compare", smoke_runs, *args).stdout.splitlines()
        rows = [line for line in table if line.startswith("│")]
        assert [row.split("│")[1].strip(" !") for row in rows] == ["full", "layerwise", "top"]  # none folded
        assert ("data" in table[2]) is ("--wide" in args) and len({len(line) for line in table[1:]}) == 1
    narrow = piped("compare", smoke_runs).stdout.splitlines()
    assert len(narrow[1]) <= 100 and "inference acc" in narrow[2] and "best val" not in narrow[2]
    assert max(map(len, piped("compare", smoke_runs, columns="80").stdout.splitlines())) <= 80
