"""Rebuild a trained model from its run folder: config + backbone identity + trained tensors.

The run folder holds only the trained parameters; the frozen rest comes from the backbone, whose
weights must hash to the value recorded at training time. Several runs on the same backbone share
its frozen tensors in memory (the paper's point: one frozen backbone, many small task modules).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from ..config import RunConfig, config_from_dict
from ..config_yaml import read_yaml
from ..data.batches import collate
from ..data.objective import OBJECTIVES, objective_for
from ..data.task import Task, task_spec
from ..data.tokens import encode
from ..errors import FtcliError, first_line
from ..methods.predicate import Predicate, apply_method
from ..models.backbones import load_backbone, name_labels
from ..runs.folder import CONFIG_FILE, SUMMARY_FILE, WEIGHTS_FILE, read_summary

log = logging.getLogger(__name__)


class ArtifactError(FtcliError):
    exit_code = 2


@dataclass
class LoadedRun:
    path: Path
    cfg: RunConfig
    model: nn.Module
    tokenizer: Any
    is_trained: Predicate
    spec: Task  # the task: text columns and label names

    @property
    def label_names(self) -> list[str]:
        return list(self.spec.label_names)

    @property
    def text_fields(self) -> tuple[str, ...]:
        return self.spec.text_fields


def autocast(device: torch.device, precision: str):
    """torch's autocast for `bf16` / `fp16` (what accelerate's mixed precision applies); none for
    `no` / `fp32`."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None)


def read_trained(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a trained.safetensors file (refuses anything else)."""
    if not path.exists():
        raise ArtifactError(f"{path}: missing; the run did not finish (see its summary.json)")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118 - safe_open has no items()
    except (SafetensorError, OSError, ValueError) as e:
        raise ArtifactError(f"{path}: not a safetensors file ({first_line(e)})") from None


def check_completed(run_dir: Path, force: bool = False) -> str:
    """The run's recorded status; anything but `completed` is refused unless `force` (an interrupted
    or failed run's weights are those of an unfinished run, which nothing downstream would show)."""
    if not Path(run_dir).exists():
        raise ArtifactError(f"{run_dir}: no such folder; give a run folder `ftcli train` wrote (`ftcli compare "
                            f"{Path(run_dir).parent}` lists the completed ones)")
    if not (Path(run_dir) / SUMMARY_FILE).is_file():
        raise ArtifactError(f"{run_dir}: not a run folder (no {SUMMARY_FILE}); give a folder `ftcli train` wrote")
    status = read_summary(Path(run_dir)).get("status") or "unknown"
    if status != "completed" and not force:
        raise ArtifactError(f"{run_dir}: the run is {status!r}, not completed, so its weights are an unfinished "
                            "run's; finish it (ftcli train --resume) or pass --force to use them anyway")
    return status


def load_run_model(run_dir: Path) -> LoadedRun:
    """Rebuild the classifier of a run: backbone (hash-checked) + surgery + trained tensors."""
    run_dir = Path(run_dir)
    summary = read_summary(run_dir)
    cfg = with_precision(config_from_dict(read_yaml(run_dir / CONFIG_FILE)), summary.get("mixed_precision"))
    tensors, meta = read_trained(run_dir / WEIGHTS_FILE)
    spec = run_task(run_dir, cfg, meta)
    torch.manual_seed(cfg.seed)  # new modules are overwritten below; seeding keeps loading deterministic
    backbone = load_backbone(cfg.model, spec.num_outputs)
    recorded = meta.get("backbone_sha256") or summary.get("backbone_sha256")
    if recorded != backbone.sha256:
        raise ArtifactError(f"{run_dir}: the backbone {cfg.model.name!r} has different weights than at training "
                            f"time (sha256 {backbone.sha256[:12]}… != recorded {str(recorded)[:12]}…)")
    is_trained = apply_method(backbone.model, cfg.method, cfg.model.layout)
    expected = {n for n, _ in backbone.model.named_parameters() if is_trained(n)}
    if set(tensors) != expected:
        odd = sorted(set(tensors) ^ expected)
        raise ArtifactError(f"{run_dir / WEIGHTS_FILE}: tensors do not match mode {cfg.method.mode!r} "
                            f"({len(odd)} names differ, e.g. {odd[0]})")
    params = dict(backbone.model.named_parameters())
    wrong = sorted(n for n in tensors if tensors[n].shape != params[n].shape)
    if wrong:
        raise ArtifactError(f"{run_dir / WEIGHTS_FILE}: {wrong[0]} has shape {tuple(tensors[wrong[0]].shape)}, the "
                            f"model's is {tuple(params[wrong[0]].shape)} (a file from another run or data set?)")
    backbone.model.load_state_dict(tensors, strict=False)
    backbone.model.eval()
    name_labels(backbone.model, spec.label_names)
    return LoadedRun(run_dir, cfg, backbone.model, backbone.tokenizer, is_trained, spec)


def run_task(run_dir: Path, cfg: RunConfig, meta: dict[str, str]) -> Task:
    """The task of a run, its task type and label names as recorded (trained file, else summary):
    what was inferred from train is not in the config."""
    spec = task_spec(cfg.data)
    summary = read_summary(run_dir)
    task_type = meta.get("task_type") or summary.get("task_type") or "single_label"  # older runs: single-label
    if task_type not in OBJECTIVES:
        raise ArtifactError(f"{run_dir}: task type {task_type!r} is unknown to this ftcli; upgrade finetune-cli")
    spec = dataclasses.replace(spec, task_type=task_type, objective=objective_for(task_type, cfg.train.threshold))
    if spec.label_names and task_type != "regression":
        return spec
    try:
        names = json.loads(meta.get("label_names") or "null") or summary.get("label_names")
    except ValueError:
        names = None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ArtifactError(f"{run_dir}: no label names recorded (trained file or summary.json)")
    return dataclasses.replace(spec, label_names=tuple(names), label_values=tuple(names))


def share_frozen(runs: list[LoadedRun]) -> int:
    """Point every run's frozen parameters at the first run's (same backbone): returns bytes saved."""
    first = dict(runs[0].model.named_parameters())
    saved = 0
    for run in runs[1:]:
        if run.cfg.model != runs[0].cfg.model:
            continue
        for name, param in list(run.model.named_parameters()):
            shared = first.get(name)
            if run.is_trained(name) or runs[0].is_trained(name) or shared is None or shared.shape != param.shape:
                continue
            module_name, _, attr = name.rpartition(".")
            setattr(run.model.get_submodule(module_name), attr, shared)
            saved += param.numel() * param.element_size()
    return saved


def with_precision(cfg: RunConfig, recorded: str | None) -> RunConfig:
    """The config with `train.mixed_precision: auto` as the run resolved it (`recorded`: its summary's
    `mixed_precision`, schema 6; None: a folder from before auto, which trained in fp32). Predict,
    ablate and a resumed run all run in the precision the run started in."""
    if cfg.train.mixed_precision != "auto":
        return cfg
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, mixed_precision=recorded or "no"))


def predict(run: LoadedRun, rows: list[dict], batch_size: int = 64, precision: str | None = None) -> list[dict]:
    """Each row's prediction as the task's objective describes it (single-label: label and
    probabilities); rows hold the task's text fields. Batches are of rows of similar length (less
    padding; the output keeps the input order), in `precision` (no | bf16 | fp16 autocast; None:
    the one the run trained and was tested in)."""
    encoded = encode(rows, run.spec, run.tokenizer, run.cfg.model.max_length, labeled=False)
    order = sorted(range(len(rows)), key=lambda i: encoded.lengths[i])
    precision = precision or run.cfg.train.mixed_precision
    device = next(run.model.parameters()).device
    kept: dict[int, dict] = {}
    for start in range(0, len(rows), batch_size):
        ids = order[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate(ids, encoded, run.tokenizer.pad_token_id).items()}
        with torch.inference_mode(), autocast(device, precision):
            logits = run.model(**batch).logits.float()  # [batch, outputs]
        kept |= {i: run.spec.objective.describe(row, run.label_names) for i, row in zip(ids, logits, strict=True)}
    out = [kept[i] for i in range(len(rows))]
    not_finite = sum(None in p.values() for p in out)  # the label (set, value) where it is not finite
    if not_finite:
        log.warning("%d prediction(s) of run %s are not finite (NaN weights?); written as null", not_finite,
                    run.path.name)
    return out
