"""`ftcli export`: transformers and PEFT folders that load without ftcli and give ftcli's logits."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import CONFIGS, FAST, ftcli

from finetune_cli.config import ModelConfig
from finetune_cli.models.backbones import load_backbone
from finetune_cli.runs.artifacts import load_run_model

BATCH = {"input_ids": torch.randint(1000, 3000, (4, 12)), "attention_mask": torch.ones(4, 12, dtype=torch.long),
         "token_type_ids": torch.zeros(4, 12, dtype=torch.long)}


def train_smoke(runs, mode: str, *extra: str):
    result = ftcli("train", CONFIGS / "smoke" / f"{'top' if mode in ('full', 'head') else mode}.yaml",
                   "--runs-dir", runs, "--name", mode, "--set", f"method.mode={mode}", *FAST, *extra)
    assert result.exit_code == 0, result.output
    return runs / mode


def ftcli_logits(run_dir):
    with torch.no_grad():
        return load_run_model(run_dir).model(**BATCH).logits


@pytest.mark.parametrize("mode", ["full", "head", "bitfit"])
def test_transformers_folder_loads_with_from_pretrained_and_gives_the_same_logits(tmp_path, mode):
    from transformers import AutoModelForSequenceClassification

    run = train_smoke(tmp_path / "runs", mode)
    result = ftcli("export", run, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "AutoModelForSequenceClassification.from_pretrained(" in result.stdout
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out").eval()
    assert model.config.id2label == {0: "neg", 1: "pos"} and model.config.label2id == {"neg": 0, "pos": 1}
    with torch.no_grad():
        assert torch.equal(model(**BATCH).logits, ftcli_logits(run))
    manifest = json.loads((tmp_path / "out" / "ftcli_export.json").read_text())
    assert (manifest["kind"], manifest["mode"], manifest["label_names"]) == ("transformers", mode, ["neg", "pos"])


DORA = ("--set", "method.lora.use_dora=true")


@pytest.mark.parametrize(("mode", "extra"), [("lora", ()), ("ia3", ()),
                                             ("lora", ("--set", "method.lora.train_layernorms=true",
                                                       "--set", "method.train_pooler=true")),
                                             ("lora", DORA)], ids=["lora", "ia3", "lora-layernorms-pooler", "dora"])
def test_peft_folder_loads_with_peft_model_on_the_base_and_gives_the_same_logits(tmp_path, mode, extra):
    from peft import PeftModel
    from safetensors.torch import load_file

    run = train_smoke(tmp_path / "runs", mode, *extra)
    result = ftcli("export", run, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "num_labels=2, id2label={0: 'neg', 1: 'pos'})" in result.stdout  # the snippet names the labels
    manifest = json.loads((tmp_path / "out" / "ftcli_export.json").read_text())
    assert manifest["base_model"] == "tiny-random-bert" and manifest["base_hub_id"] == "tiny-random-bert"
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "ftcli_export.json"} <= files
    config = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert config["task_type"] == "SEQ_CLS" and "classifier" in config["modules_to_save"]
    assert config.get("use_dora", False) == (extra == DORA)  # DoRA: PEFT's LoRA config says so
    if extra == DORA:  # and its trained magnitudes are in the adapter file
        saved = load_file(tmp_path / "out" / "adapter_model.safetensors")
        assert sum("lora_magnitude_vector" in name for name in saved) == 2 * 2
    base = load_backbone(ModelConfig(name="tiny-random-bert"), 2).model  # a fresh base: new random head
    model = PeftModel.from_pretrained(base, tmp_path / "out").eval()
    with torch.no_grad():
        assert torch.equal(model(**BATCH).logits, ftcli_logits(run))


def test_occupied_folders_are_refused_in_one_line(tmp_path):
    run = train_smoke(tmp_path / "runs", "layerwise")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("mine")
    result = ftcli("export", run, tmp_path / "taken")
    assert result.exit_code == 2 and "already exists and is not an empty folder" in result.output


@pytest.mark.parametrize("mode", ["layerwise", "pfeiffer", "top"])
def test_adapterhub_folder_holds_adapterhub_names_and_the_rest_under_plain_names(tmp_path, mode):
    """The layout AdapterHub reads (checked against AdapterHub itself by scripts/check_adapterhub.sh)."""
    from safetensors.torch import load_file

    run = train_smoke(tmp_path / "runs", mode)
    result = ftcli("export", run, tmp_path / "out")
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert (config["name"], config["hidden_size"], config["config"]["reduction_factor"]) == (mode, 32, 4.0)
    assert config["config"]["leave_out"] == ([0] if mode == "top" else [])
    adapter = load_file(tmp_path / "out" / "adapter.safetensors")
    blocks = {"layerwise": ["attention.output", "output"], "pfeiffer": ["output"], "top": ["output"]}[mode]
    layers = [1] if mode == "top" else [0, 1]
    assert set(adapter) == {f"bert.encoder.layer.{i}.{b}.adapters.{mode}.{p}.{t}" for i in layers for b in blocks
                            for p in ("adapter_down.0", "adapter_up") for t in ("weight", "bias")}
    rest = set(load_file(tmp_path / "out" / "ftcli_non_adapter.safetensors"))
    layernorms = {f"bert.{n}.LayerNorm.{t}" for n in ("embeddings", "encoder.layer.0.attention.output",
                  "encoder.layer.0.output", "encoder.layer.1.attention.output", "encoder.layer.1.output")
                  for t in ("weight", "bias")}
    assert rest == {"classifier.weight", "classifier.bias"} | (layernorms if mode == "layerwise" else set())
    trained = load_file(run / "trained.safetensors")
    assert sum(t.numel() for t in adapter.values()) + sum(load_file(tmp_path / "out" / "ftcli_non_adapter.safetensors")[
        n].numel() for n in rest) == sum(t.numel() for t in trained.values())


def test_an_adapter_size_adapterhub_cannot_store_is_refused(tmp_path):
    run = train_smoke(tmp_path / "runs", "pfeiffer", "--set", "method.bottleneck=5")  # 32 // (32 / 5) == 6
    result = ftcli("export", run, tmp_path / "out")
    assert result.exit_code == 2 and "method.bottleneck: 5 is not hidden size 32 // a reduction factor" in result.output


def test_an_unfinished_run_is_refused_without_force_and_its_status_recorded_with_it(tmp_path):
    """#24.6: an interrupted run's weights are an unfinished run's; export and predict say so."""
    run = train_smoke(tmp_path / "runs", "layerwise")
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    for command in (["export", run, tmp_path / "out"], ["predict", run, "--text", "fine"]):
        refused = ftcli(*command)
        assert refused.exit_code == 2 and "the run is 'interrupted', not completed" in refused.output
    assert not (tmp_path / "out").exists()
    assert ftcli("predict", run, "--text", "fine", "--force").exit_code == 0
    forced = ftcli("export", run, tmp_path / "out", "--force")
    assert forced.exit_code == 0 and "wrote an adapterhub folder" in forced.output  # #24.11: "an"
    assert json.loads((tmp_path / "out" / "ftcli_export.json").read_text())["status"] == "interrupted"


def test_an_export_that_fails_leaves_nothing_behind_and_a_read_only_target_is_refused_first(tmp_path, monkeypatch):
    """#24.4: a full disk mid-export used to leave a partial folder that the retry then refused."""
    import errno
    import os

    import finetune_cli.workflows.export as export_module

    run = train_smoke(tmp_path / "runs", "full")
    real = export_module.SAVERS["transformers"]

    def disk_full(run_, folder, shown):
        real(run_, folder, shown)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setitem(export_module.SAVERS, "transformers", disk_full)
    failed = ftcli("export", run, tmp_path / "out")
    assert failed.exit_code == 2 and "cannot write the export (No space left on device)" in failed.output
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))
    monkeypatch.undo()
    assert ftcli("export", run, tmp_path / "out").exit_code == 0  # the retry works
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~umask  # an ordinary folder, not mkdtemp's 0700
    if os.geteuid() != 0:  # root writes anywhere: the permission check cannot be seen
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        refused = ftcli("export", run, locked / "out")
        assert refused.exit_code == 2 and "is not writable" in refused.output
