"""Regressions from a hostile-input pass over the CLI: each case ends in one line (exit 2) with
nothing lost, nothing half-written and no run left `running`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from helpers import scripted, tiny_config
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

    monkeypatch.setattr("finetune_cli.workflows.train.prepare_experiment", loads)
    monkeypatch.setattr("finetune_cli.workflows.ablate.load_run_model", loads)


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


@pytest.fixture(scope="module")
def one_run(tmp_path_factory) -> Path:
    """One completed tiny run (shared): the template the broken copies below are made from."""
    root = tmp_path_factory.mktemp("hostile")
    path = root / "run.yaml"
    path.write_text(yaml.safe_dump(tiny_config("top")))
    result = ftcli("train", path, "--runs-dir", root / "runs", "--name", "good")
    assert result.exit_code == 0, result.output
    return root / "runs" / "good"


def broken_copy(one_run: Path, root: Path, summary: dict | None = None, drop: tuple[str, ...] = (),
                config: str | None = None, metrics: str | None = None) -> Path:
    """`root/runs` holding the good run and a copy named `broken` with its records edited."""
    import json
    import shutil

    shutil.copytree(one_run, root / "runs" / "good")
    folder = shutil.copytree(one_run, root / "runs" / "broken")
    data = {**json.loads((folder / "summary.json").read_text()), **(summary or {})}
    (folder / "summary.json").write_text(json.dumps({k: v for k, v in data.items() if k not in drop}))
    if config is not None:
        (folder / "config.yaml").write_text((folder / "config.yaml").read_text() + config)
    if metrics is not None:
        (folder / "metrics.jsonl").write_text((folder / "metrics.jsonl").read_text() + metrics)
    return root / "runs"


@pytest.mark.parametrize(("edit", "reason"), [
    ({"drop": ("dataset",)}, "summary.json: dataset: missing"),
    ({"drop": ("seed",)}, "summary.json: seed: missing"),
    ({"summary": {"inference_accuracy": "0.5"}},
     "summary.json: inference_accuracy: got '0.5', expected a number or null"),
    ({"summary": {"backbone_params": 0}}, "summary.json: backbone_params: got 0, expected a positive integer"),
    ({"summary": {"dataset": 5}}, "summary.json: dataset: got 5, expected a string"),
    ({"summary": {"mode": None}}, "summary.json: mode: got None, expected a string"),
    ({"summary": {"data_sizes": None}}, "summary.json: data_sizes: got None, expected"),
    ({"summary": {"seed": True}}, "summary.json: seed: got True, expected an integer"),
    ({"config": "extra: !!set {a, b}\n"}, "config.yaml: holds a value that is not plain data (set)"),
    ({"config": "extra: !!binary aGk=\n"}, "config.yaml: holds a value that is not plain data (bytes)"),
    ({"metrics": "42\n"}, "metrics.jsonl: line 2: expected an object with epoch and val_loss, got 42"),
    ({"metrics": '{"epoch": 2}\n'}, "metrics.jsonl: line 2: expected an object with epoch and val_loss"),
    ({"metrics": '{"epoch": 2, oops\n'}, "metrics.jsonl line 2: not JSON"),  # #24.7: the file is named
], ids=["no_dataset", "no_seed", "accuracy_text", "backbone_0", "dataset_int", "mode_null", "sizes_null",
        "seed_bool", "config_set", "config_binary", "metrics_number", "metrics_no_val_accuracy", "metrics_not_json"])
def test_compare_skips_a_run_whose_records_are_malformed(one_run, tmp_path, edit, reason):
    import json

    runs = broken_copy(one_run, tmp_path, **edit)
    plot = ["--plot", tmp_path / "figures"] if "metrics" in edit else []
    result = ftcli("compare", runs, "--format", "json", *plot)
    assert result.exit_code == 0, (result.output, result.exception)
    assert [r["name"] for r in json.loads(result.stdout)] == ["good"]
    assert f"ftcli: skipped {runs / 'broken'}: {reason}" in result.stderr, result.stderr


def test_compare_of_one_run_folder_shows_that_run(one_run):
    import json

    result = ftcli("compare", one_run, "--format", "json")
    assert result.exit_code == 0, (result.output, result.exception)
    assert [r["name"] for r in json.loads(result.stdout)] == ["good"]


def test_a_trained_file_of_other_shapes_is_one_line(one_run, tmp_path):
    import shutil

    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    folder = shutil.copytree(one_run, tmp_path / "run")
    path = folder / "trained.safetensors"
    with safe_open(str(path), framework="pt") as f:  # same names and metadata, one row more each
        tensors = {k: torch.zeros(f.get_tensor(k).shape[0] + 1, *f.get_tensor(k).shape[1:]) for k in f.keys()}  # noqa: SIM118
        metadata = f.metadata()
    save_file(tensors, path, metadata=metadata)
    one_line_error(ftcli("predict", folder, "--text", "fine"), f"{path}: ", "has shape (", "the model's is (")


@pytest.mark.parametrize("run", [None, 5, ["good"]], ids=["null", "number", "list"])
def test_a_predict_row_whose_run_is_not_a_name_is_one_line(one_run, tmp_path, run):
    import json

    inputs = tmp_path / "in.jsonl"
    inputs.write_text(json.dumps({"text": "fine"}) + "\n" + json.dumps({"text": "fine", "run": run}) + "\n")
    one_line_error(ftcli("predict", one_run, "--file", inputs),
                   f"input row 2: run: expected the name of a run folder, got {run!r}")


def test_predict_refuses_text_that_is_not_unicode(one_run, tmp_path):
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"text": "fine"}\n{"text": "abc \\ud800"}\n')
    one_line_error(ftcli("predict", one_run, "--file", inputs),
                   "input row 2: 'text' is not valid Unicode (lone surrogate '\\ud800' at character 5)")
    # a byte that is not UTF-8 on the command line reaches Python as a lone surrogate
    one_line_error(ftcli("predict", one_run, "--text", "ok", "--text", "\udcff"),
                   "input row 2: 'text' is not valid Unicode (lone surrogate '\\udcff' at character 1)")


def test_predict_with_nan_weights_writes_valid_json_and_warns(one_run, tmp_path):
    import json
    import shutil

    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    folder = shutil.copytree(one_run, tmp_path / "run")
    path = folder / "trained.safetensors"
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: torch.full_like(f.get_tensor(k), float("nan")) for k in f.keys()}  # noqa: SIM118
        metadata = f.metadata()
    save_file(tensors, path, metadata=metadata)
    result = ftcli("predict", folder, "--text", "fine")
    assert result.exit_code == 0, (result.output, result.exception)

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    (pred,) = [json.loads(line, parse_constant=refuse) for line in result.stdout.splitlines()]
    assert pred["label"] is None and set(pred["probabilities"].values()) == {None}
    assert "1 prediction(s) of run run are not finite" in result.stderr


def test_ablate_when_the_intact_accuracy_is_0(tmp_path, monkeypatch):
    import json

    config = write_config(tmp_path, "layerwise")
    assert ftcli("train", config, "--runs-dir", tmp_path / "runs").exit_code == 0
    monkeypatch.setattr("finetune_cli.workflows.ablate.evaluate", lambda *args: scripted(0.0))
    result = ftcli("ablate", tmp_path / "runs" / "run")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "intact validation accuracy 0.0000; no relative drop to measure" in result.stdout
    cells = json.loads((tmp_path / "runs" / "run" / "ablation" / "ablation.json").read_text())["cells"]
    assert cells and all(c["relative_drop_pct"] is None for c in cells)
    assert (tmp_path / "runs" / "run" / "ablation" / "ablation_heatmap.png").exists()


def test_compare_checks_the_status_before_reading_metrics_and_streams_them(one_run, tmp_path, monkeypatch):
    """#24.7: a skipped run's 1 GB metrics.jsonl used to be read whole first (9.5 s, 2.1 GB)."""
    import json
    from pathlib import Path

    runs = broken_copy(one_run, tmp_path, summary={"status": "interrupted"})
    read_text, open_ = Path.read_text, Path.open

    def no_whole_metrics(self, *args, **kwargs):
        assert self.name != "metrics.jsonl", "metrics.jsonl read whole"
        return read_text(self, *args, **kwargs)

    def not_the_skipped_metrics(self, *args, **kwargs):
        assert self != runs / "broken" / "metrics.jsonl", "the skipped run's metrics.jsonl was opened"
        return open_(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", no_whole_metrics)
    monkeypatch.setattr(Path, "open", not_the_skipped_metrics)
    result = ftcli("compare", runs, "--format", "json")
    assert result.exit_code == 0, (result.output, result.exception)
    assert [r["name"] for r in json.loads(result.stdout)] == ["good"]
    assert f"ftcli: skipped {runs / 'broken'}: status 'interrupted'" in result.stderr
