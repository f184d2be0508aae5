"""`ftcli bench --peers`: the libraries ftcli is measured against, as contenders in the same
interleaved rounds as ftcli's modes.

* peft: PEFT's documented loop, `get_peft_model(AutoModelForSequenceClassification, LoraConfig)` with
  ftcli lora's settings (r, alpha, dropout, targets; task_type SEQ_CLS, so the head trains), then
  `loss.backward(); AdamW.step(); zero_grad()`. Measured against ftcli `lora`.
* adapterhub: AdapterHub's Houlsby adapters (`adapters` 1.3.0, the config ftcli's export writes for
  layerwise, the same LayerNorms and head trained) in AdapterHub's own environment (it pins
  transformers 4.x): a child process (adapterhub_child.py) that steps when asked, so its steps are
  interleaved with the others. Its time is measured in the child around the step alone; the pipe's
  round trip (well under a millisecond) is not in it. Measured against ftcli `layerwise`.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForSequenceClassification

from ..config import MethodConfig, ModelConfig
from ..errors import ConfigError, FtcliError
from ..methods.adapterhub import adapterhub_config, non_adapter_trained
from ..methods.peft_methods import peft_config
from ..methods.predicate import apply_method
from ..methods.registry import METHODS
from ..models.backbones import load_backbone, quiet_transformers
from .contenders import Batch, Contender, reference_source


@dataclass(frozen=True)
class Peer:
    name: str  # the contender's name in the table
    against: str  # the ftcli mode it is measured against


PEERS = {"peft": Peer("peft-lora", "lora"), "adapterhub": Peer("adapterhub-houlsby", "layerwise")}
PEER_OF = {p.name: p for p in PEERS.values()}


def parse_peers(text: str | None) -> tuple[str, ...]:
    """`--peers peft,adapterhub` as contender names (peft-lora, adapterhub-houlsby)."""
    found = [p.strip() for p in (text or "").split(",") if p.strip()]
    bad = [p for p in found if p not in PEERS]
    if bad:
        raise ConfigError(f"--peers: got {text!r}, expected a comma-separated list of {', '.join(PEERS)}")
    return tuple(PEERS[p].name for p in dict.fromkeys(found))


def check_peers(peers: tuple[str, ...], model_name: str, adapterhub_python: str | None, device: str) -> None:
    """One line before minutes of building: AdapterHub's contender needs its environment, MiniLM and the CPU."""
    if PEERS["adapterhub"].name not in peers:
        return
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        raise ConfigError("--peers adapterhub: AdapterHub's environment is the CPU build of torch; bench it with "
                          "--device cpu")
    if model_name != "minilm-l6":
        raise ConfigError(f"--peers adapterhub: AdapterHub's environment holds MiniLM only (--model minilm-l6), "
                          f"not {model_name}")
    if not adapterhub_python or not os.access(adapterhub_python, os.X_OK):
        raise ConfigError(f"--adapterhub-python: cannot run {adapterhub_python!r}; `make bench-peers` makes "
                          "AdapterHub's environment (.venv-adapterhub)")


def build_peft(model_name: str, num_labels: int, seed: int, device: torch.device, tmp: Path) -> Contender:
    """PEFT's LoRA on the plain Hugging Face model, with ftcli lora's settings, in PEFT's own loop."""
    from peft import get_peft_model

    quiet_transformers()
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(reference_source(model_name, num_labels, tmp),
                                                               num_labels=num_labels)
    model = get_peft_model(model, peft_config(MethodConfig(mode="lora"), model, task_type="SEQ_CLS")).to(device)
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=METHODS["lora"].learning_rate)

    def step(batch: Batch) -> float:
        out = model(**batch)  # labels in the batch: the model's own loss
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return out.loss.item()

    return Contender(PEERS["peft"].name, model, step, sum(p.numel() for p in trained),
                     sum(p.numel() for p in model.parameters()))


class AdapterHubChild:
    """The AdapterHub contender's process: one request line in, one answer line out."""

    def __init__(self, python: str, spec: dict, tmp: Path):
        (tmp / "adapterhub.json").write_text(json.dumps(spec))
        script = Path(__file__).with_name("adapterhub_child.py")
        try:
            self.proc = subprocess.Popen([python, str(script), str(tmp / "adapterhub.json")], stdin=subprocess.PIPE,  # noqa: S603
                                         stdout=subprocess.PIPE, text=True, bufsize=1)
        except OSError as e:
            raise FtcliError(f"--adapterhub-python: cannot run {python!r} ({e.strerror}); `make bench-peers` makes "
                             "AdapterHub's environment") from None
        ready = self.answer("build").split()
        self.trainable = int(ready[1])

    def answer(self, what: str) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise FtcliError(f"bench: AdapterHub's child process ended during {what} (exit {self.proc.wait()}); "
                             "see its error above")
        return line

    def ask(self, request: str) -> list[float]:
        try:
            self.proc.stdin.write(request + "\n")
        except OSError:  # the child is gone (a broken pipe)
            raise FtcliError(f"bench: AdapterHub's child process ended before {request!r} (exit "
                             f"{self.proc.wait()}); see its error above") from None
        return [float(x) for x in self.answer(request).split()]

    def train(self, batch_index: int, precision: str) -> tuple[float, float]:
        """One training step on the benchmark's batch `batch_index`: (seconds, loss)."""
        seconds, loss = self.ask(f"train {batch_index} {precision}")
        return seconds, loss

    def eval(self, precision: str) -> float:
        """Seconds of a forward pass and argmax of the evaluation batch."""
        return self.ask(f"eval {precision}")[0]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()


def build_adapterhub(python: str, model_name: str, bottleneck: int, num_labels: int, seed: int,
                     batches: list[Batch], eval_batch: Batch, threads: int, tmp: Path) -> Contender:
    """AdapterHub's Houlsby adapters in its own environment, trained as ftcli's layerwise is."""
    backbone = load_backbone(ModelConfig(name=model_name), num_labels)  # ftcli's layerwise: what trains
    method = MethodConfig(mode="layerwise", bottleneck=bottleneck)
    is_trained = apply_method(backbone.model, method)
    config = backbone.model.config
    flat = {f"train.{i}.{k}": v.contiguous() for i, b in enumerate(batches) for k, v in b.items()}
    flat |= {f"eval.{k}": v.contiguous() for k, v in eval_batch.items()}
    save_file(flat, str(tmp / "batches.safetensors"))  # safetensors, not pickle, across the two environments
    spec = {"config": adapterhub_config(method, config.hidden_size, config.num_hidden_layers), "seed": seed,
            "also_trained": non_adapter_trained(backbone.model, is_trained), "num_labels": num_labels,
            "threads": threads, "learning_rate": METHODS["layerwise"].learning_rate,
            "batches": str(tmp / "batches.safetensors")}
    child = AdapterHubChild(python, spec, tmp)

    def step(batch: Batch) -> float:
        raise FtcliError("internal: AdapterHub's contender steps in its own process (Contender.remote)")

    return Contender(PEERS["adapterhub"].name, None, step, child.trainable,
                     sum(p.numel() for p in backbone.model.parameters()), remote=child)
