"""The paper's analyses: compare filters/sorting/plots and the layer ablation."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import CONFIGS, FAST, ftcli

from finetune_cli.config import ModelConfig
from finetune_cli.methods.adapters import Adapter, adapters_in, bypassed
from finetune_cli.models.backbones import load_backbone
from finetune_cli.runs.artifacts import load_run_model


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    runs = tmp_path_factory.mktemp("paper") / "runs"
    for mode, seed in (("full", 0), ("layerwise", 0), ("layerwise", 1), ("top", 0)):
        result = ftcli("train", CONFIGS / "smoke" / f"{mode}.yaml", "--runs-dir", runs, "--name", f"{mode}-{seed}",
                       *FAST, "--set", f"seed={seed}", "--set", "train.epochs=2")
        assert result.exit_code == 0, result.output
    return runs


def test_seeds_are_grouped_with_sem_and_diff_to_full(runs):
    rows = json.loads(ftcli("compare", runs, "--format", "json").stdout)
    by_mode = {r["mode"]: r for r in rows}
    layerwise = by_mode["layerwise"]
    assert layerwise["n"] == 2 and sorted(layerwise["seeds"]) == [0, 1]
    accs = [json.loads((runs / f"layerwise-{s}" / "summary.json").read_text())["inference_accuracy"] for s in (0, 1)]
    assert layerwise["inference_accuracy"] == pytest.approx(sum(accs) / 2)
    assert layerwise["inference_accuracy_sem"] == pytest.approx(abs(accs[0] - accs[1]) / 2)
    full = by_mode["full"]["inference_accuracy"]
    assert layerwise["diff_to_full"] == pytest.approx(100 * (layerwise["inference_accuracy"] - full))


def test_filters_and_sorting(runs):
    rows = json.loads(ftcli("compare", runs, "--format", "json", "--mode", "top", "--mode", "full").stdout)
    assert sorted(r["mode"] for r in rows) == ["full", "top"]
    rows = json.loads(ftcli("compare", runs, "--format", "json", "--sort", "trainable_params").stdout)
    assert [r["trainable_params"] for r in rows] == sorted(r["trainable_params"] for r in rows)
    result = ftcli("compare", runs, "--dataset", "snli")
    assert result.exit_code == 1 and "no completed runs found (after filters)" in result.stderr
    assert ftcli("compare", runs, "--sort", "colour").exit_code == 1


def test_plots_are_written(runs, tmp_path):
    result = ftcli("compare", runs, "--plot", tmp_path / "fig")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "fig").iterdir())
    confusion = [f"confusion_{run}.png" for run in ("full-0", "layerwise-0", "layerwise-1", "top-0")]
    assert names == ["accuracy_vs_params_imdb.png", *confusion, "learning_curves_imdb.png"]
    assert all((tmp_path / "fig" / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names)


def test_ablate_writes_table_and_heatmap(runs):
    result = ftcli("ablate", runs / "layerwise-0")
    assert result.exit_code == 0, result.output
    data = json.loads((runs / "layerwise-0" / "ablation" / "ablation.json").read_text())
    assert [(c["first"], c["last"]) for c in data["cells"]] == [(0, 0), (0, 1), (1, 1)]
    assert (runs / "layerwise-0" / "ablation" / "ablation_heatmap.png").exists()
    assert ftcli("ablate", runs / "top-0").exit_code == 1


def test_bypassing_all_adapters_equals_the_backbone_with_trained_layernorms_and_head(runs):
    run = load_run_model(runs / "layerwise-0")
    plain = load_backbone(ModelConfig(name="tiny-random-bert"), 2).model.eval()
    trained = {n: p for n, p in run.model.named_parameters() if run.is_trained(n) and ".adapter." not in n}
    renamed = {n.replace(".original.", "."): p for n, p in trained.items()}
    missing, unexpected = plain.load_state_dict(renamed, strict=False)
    assert not unexpected
    batch = {"input_ids": torch.randint(1000, 3000, (3, 10)), "attention_mask": torch.ones(3, 10, dtype=torch.long)}
    with torch.no_grad():
        with bypassed(adapters_in(run.model)):
            assert torch.equal(plain(**batch).logits, run.model(**batch).logits)
        assert all(m.active for m in run.model.modules() if isinstance(m, Adapter))  # restored on the way out
        assert not torch.equal(plain(**batch).logits, run.model(**batch).logits)
