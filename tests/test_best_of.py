"""Selection on validation (`ftcli compare --best-of`), per-rule sweep grids, `sweep --set`, a data root
with one folder per data set, and the accuracy-vs-training-size figure."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest
import yaml
from helpers import CONFIGS, copy_run, ftcli, train_template_run

from finetune_cli.config import DataConfig
from finetune_cli.config_yaml import dump_yaml, safe_load
from finetune_cli.data.sources import sample_dir
from finetune_cli.data.splits import load_data
from finetune_cli.errors import FtcliError
from finetune_cli.runs.compare import parse_best_of
from finetune_cli.workflows.sweep import load_sweep

# (mode, learning rate, seed, best validation accuracy, test accuracy): full's best validation mean is
# at 1e-4 (0.80, 0.82) although 3e-4 has the best test; top's is at 1e-3.
KNOWN = [
    ("full", 3e-5, 0, 0.50, 0.51), ("full", 3e-5, 1, 0.52, 0.53),
    ("full", 1e-4, 0, 0.80, 0.70), ("full", 1e-4, 1, 0.82, 0.72),
    ("full", 3e-4, 0, 0.79, 0.90), ("full", 3e-4, 1, 0.79, 0.92),
    ("top", 1e-3, 0, 0.60, 0.61), ("top", 1e-3, 1, 0.64, 0.63),
    ("top", 3e-3, 0, 0.61, 0.40), ("top", 3e-3, 1, 0.61, 0.40),
]


@pytest.fixture(scope="module")
def known_runs(tmp_path_factory):
    """Run folders with known summaries: one real tiny run, copied and edited per row of KNOWN."""
    root = tmp_path_factory.mktemp("best_of")
    template = train_template_run(root / "seed")
    for mode, lr, seed, val, test in KNOWN:
        copy_run(template, root / "runs" / f"mode={mode}_lr={lr:g}_seed={seed}", mode, lr, seed,
                 {"best_val_accuracy": val, "inference_accuracy": test})
    return root / "runs"


def test_best_of_keeps_the_best_validation_mean_and_reports_its_test(known_runs):
    result = ftcli("compare", known_runs, "--best-of", "train.learning_rate", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {r["mode"]: r for r in json.loads(result.stdout)}
    assert rows["full"]["best_of"] == {"train.learning_rate": 1e-4}  # not 3e-4, the best on test
    assert rows["full"]["inference_accuracy"] == pytest.approx(0.71) and rows["full"]["n"] == 2
    assert rows["full"]["inference_accuracy_sem"] == pytest.approx(0.01)
    assert rows["top"]["best_of"] == {"train.learning_rate": 1e-3}
    assert rows["top"]["inference_accuracy"] == pytest.approx(0.62)
    assert rows["top"]["diff_to_full"] == pytest.approx(100 * (0.62 - 0.71))
    assert [(c["values"]["train.learning_rate"], c["n"]) for c in rows["full"]["candidates"]] == [
        (1e-4, 2), (3e-4, 2), (3e-5, 2)]  # the chosen one first, then by validation accuracy
    assert [c["best_val_accuracy"] for c in rows["full"]["candidates"]] == pytest.approx([0.81, 0.79, 0.51])


def test_without_best_of_every_learning_rate_is_its_own_row(known_runs):
    rows = json.loads(ftcli("compare", known_runs, "--format", "json").stdout)
    assert sorted((r["mode"], r["n"]) for r in rows) == [("full", 2)] * 3 + [("top", 2)] * 2
    assert all("best_of" not in r for r in rows)


def test_best_of_in_every_format_and_plot(known_runs, tmp_path):
    markdown = ftcli("compare", known_runs, "--best-of", "train.learning_rate", "--format", "markdown").stdout
    assert "| best of (mean val acc per value) |" in markdown
    assert "learning_rate=0.0001 (of 3: val 0.5100/0.8100/0.7900)" in markdown  # values in their sorted order
    table = ftcli("compare", known_runs, "--best-of", "train.learning_rate")
    assert table.exit_code == 0 and "best of" in table.stdout
    rows = list(csv.DictReader(io.StringIO(ftcli("compare", known_runs, "--best-of", "train.learning_rate",
                                                  "--format", "csv").stdout)))
    assert sorted(float(r["best_of.train.learning_rate"]) for r in rows) == [1e-4, 1e-3]
    plotted = ftcli("compare", known_runs, "--best-of", "train.learning_rate", "--plot", tmp_path / "fig")
    assert plotted.exit_code == 0, plotted.output
    assert (tmp_path / "fig" / "accuracy_vs_params_imdb.png").stat().st_size > 0


def test_best_of_rejects_what_is_not_a_config_value():
    assert parse_best_of("train.learning_rate, method.bottleneck") == ("train.learning_rate", "method.bottleneck")
    for bad in ("train.lr", "train", "seed", "method.bottleneck.x"):
        with pytest.raises(FtcliError, match="--best-of: .* is not a config value"):
            parse_best_of(bad)
    result = ftcli("compare", "runs", "--best-of", "train.lr")
    assert result.exit_code == 2 and "--best-of: 'train.lr' is not a config value" in result.output


def write_sweep(tmp_path, data):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": str(CONFIGS / "smoke" / "layerwise.yaml"), "name": "s", **data},
                                   sort_keys=False))
    return path


def test_a_rule_grid_gives_each_mode_its_own_learning_rates(tmp_path):
    path = write_sweep(tmp_path, {
        "grid": {"seed": [0, 1], "method.mode": ["full", "top"]},
        "rules": [{"if": {"method.mode": "full"}, "grid": {"train.learning_rate": [3e-5, 1e-4]}},
                  {"if": {"method.mode": "top"}, "set": {"method.bottleneck": 4},
                   "grid": {"train.learning_rate": [1e-3, 3e-3, 1e-2]}}]})
    sweep = load_sweep(path)
    assert [r.name for r in sweep.runs][:5] == [
        "seed=0_mode=full_learning_rate=3e-05", "seed=0_mode=full_learning_rate=0.0001",
        "seed=0_mode=top_learning_rate=0.001", "seed=0_mode=top_learning_rate=0.003",
        "seed=0_mode=top_learning_rate=0.01"]
    assert len(sweep.runs) == 2 * (2 + 3)
    assert {(r.cfg.method.mode, r.cfg.train.learning_rate, r.cfg.method.bottleneck) for r in sweep.runs} == {
        ("full", 3e-5, 8), ("full", 1e-4, 8), ("top", 1e-3, 4), ("top", 3e-3, 4), ("top", 1e-2, 4)}


def test_sweep_rule_shapes_are_validated(tmp_path):
    with pytest.raises(FtcliError, match=r"rules\[0\].grid.train.learning_rate: expected a non-empty list"):
        load_sweep(write_sweep(tmp_path, {"rules": [{"if": {}, "grid": {"train.learning_rate": 1e-3}}]}))
    with pytest.raises(FtcliError, match=r"rules\[0\].grid: expected a mapping"):
        load_sweep(write_sweep(tmp_path, {"rules": [{"grid": [1, 2]}]}))
    with pytest.raises(FtcliError, match="rules: expected a list"):
        load_sweep(write_sweep(tmp_path, {"rules": [{"when": {}}]}))


def test_sweep_set_applies_to_every_run_after_the_files_set(tmp_path):
    path = write_sweep(tmp_path, {"set": {"train.epochs": 2}, "grid": {"seed": [0, 1]}})
    sweep = load_sweep(path, ["train.epochs=1", "data.max_train_samples=8"])
    assert {(r.cfg.train.epochs, r.cfg.data.max_train_samples) for r in sweep.runs} == {(1, 8)}
    dry = ftcli("sweep", path, "--set", "method.bottleneck=0", "--dry-run")
    assert dry.exit_code == 2 and "method.bottleneck: got 0" in dry.output
    clash = ftcli("sweep", path, "--set", "seed=3", "--dry-run")  # the grid varies it: refused, not ignored
    assert clash.exit_code == 2 and "--set seed: the sweep itself sets it (grid or rules)" in clash.output


def test_a_data_root_holds_one_folder_per_data_set(tmp_path):
    root = tmp_path / "data"
    for dataset in ("imdb", "snli"):
        shutil.copytree(sample_dir(dataset), root / dataset)
    loaded = load_data(DataConfig(dataset="snli", source=str(root), max_train_samples=20), seed=0)
    assert loaded.source == f"folder:{root}" and len(loaded.splits["train"]) == 20
    assert set(loaded.splits["train"][0]) >= {"premise", "hypothesis", "label"}
    with pytest.raises(FtcliError, match="no 'train' split found"):
        load_data(DataConfig(dataset="ag_news", source=str(root)), seed=0)


def test_data_size_figure_only_when_train_sizes_differ(known_runs, tmp_path):
    sized = tmp_path / "runs"
    shutil.copytree(known_runs, sized)
    for i, folder in enumerate(sorted(sized.iterdir())):
        summary = json.loads((folder / "summary.json").read_text())
        summary["data_sizes"]["train"] = 250 if i % 2 else 1000
        (folder / "summary.json").write_text(json.dumps(summary))
        config = safe_load((folder / "config.yaml").read_text())
        config["data"]["max_train_samples"] = summary["data_sizes"]["train"]
        (folder / "config.yaml").write_text(dump_yaml(config))
    result = ftcli("compare", sized, "--plot", tmp_path / "fig")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fig" / "accuracy_vs_train_size_imdb.png").stat().st_size > 0
    ftcli("compare", known_runs, "--plot", tmp_path / "same")
    assert not (tmp_path / "same" / "accuracy_vs_train_size_imdb.png").exists()
