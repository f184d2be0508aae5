"""`ftcli export RUN OUT`: a trained run as files the ecosystem loads without ftcli.

* Modes whose trained tensors are the model's own (full, head, layernorm, top_layers, bitfit): a
  standard `save_pretrained` folder (model, tokenizer, id2label) for
  `AutoModelForSequenceClassification.from_pretrained`.
* lora, ia3: a PEFT adapter folder (adapter_config.json + adapter_model.safetensors, the
  classification head saved as `modules_to_save`) for `PeftModel.from_pretrained(base, OUT)`.
  It is written by PEFT itself: the trained tensors are copied into a `get_peft_model` of a fresh
  backbone, which then saves, so the folder is PEFT's own format by construction.
* Bottleneck-adapter modes (layerwise, pfeiffer, top) have no format in these two libraries and are
  refused with the reason.
Every export writes `ftcli_export.json` (what the run was, the labels, how to load it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from torch import nn

from .artifacts import ArtifactError, LoadedRun, load_run_model
from .methods import modules_to_save, peft_config, trained_state_dict
from .models import MINILM, MINILM_HUB_ID, load_backbone
from .results import write_json

TRANSFORMERS_MODES = ("full", "head", "layernorm", "top_layers", "bitfit")
PEFT_MODES = ("lora", "ia3")
MANIFEST = "ftcli_export.json"


@dataclass(frozen=True)
class Export:
    kind: str  # "transformers" or "peft"
    run: str  # the run folder exported
    mode: str
    base_model: str  # what to load the exported folder on (PEFT) or what it came from
    label_names: list[str]  # id2label, in order
    load_with: str  # the Python line that loads it


def export_run(run_dir: Path, out: Path) -> Export:
    """Write the run in `run_dir` into the new folder `out`; returns what was written."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ArtifactError(f"{out} already exists and is not an empty folder; pick a new one")
    run = load_run_model(run_dir)
    mode = run.cfg.method.mode
    if mode not in TRANSFORMERS_MODES + PEFT_MODES:
        raise ArtifactError(f"{run_dir}: mode {mode!r} cannot be exported: bottleneck adapters have no "
                            "transformers or PEFT format; use the run folder with `ftcli predict`")
    label_names(run.model, run.label_names)
    out.mkdir(parents=True, exist_ok=True)
    export = save_peft(run, out) if mode in PEFT_MODES else save_transformers(run, out)
    write_json(out / MANIFEST, asdict(export))
    return export


def label_names(model: nn.Module, names: list[str]) -> None:
    """id2label / label2id in the model config, so pipelines and from_pretrained show names."""
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {name: i for i, name in enumerate(names)}


def hub_name(model_name: str) -> str:
    """The name others load the backbone by (the bundled MiniLM is a Hub model)."""
    return MINILM_HUB_ID if model_name == MINILM else model_name


def save_transformers(run: LoadedRun, out: Path) -> Export:
    run.model.save_pretrained(out)  # safetensors
    run.tokenizer.save_pretrained(out)
    return Export("transformers", str(run.path), run.cfg.method.mode, hub_name(run.cfg.model.name),
                  run.label_names, f"AutoModelForSequenceClassification.from_pretrained({str(out)!r})")


def save_peft(run: LoadedRun, out: Path) -> Export:
    """A PeftModel of a fresh backbone receives the trained tensors, then saves itself."""
    import peft

    base = hub_name(run.cfg.model.name)
    fresh = load_backbone(run.cfg.model, len(run.label_names)).model
    label_names(fresh, run.label_names)
    saved_modules = modules_to_save(run.model, run.cfg.method)
    wrapped = peft.get_peft_model(fresh, peft_config(run.cfg.method, task_type="SEQ_CLS",
                                                     modules_to_save=saved_modules))
    wrapped.peft_config["default"].base_model_name_or_path = base  # get_peft_model sets the local path
    targets = dict(wrapped.named_parameters())
    for name, tensor in trained_state_dict(run.model, run.is_trained).items():
        targets[peft_name(name, saved_modules, targets)].data.copy_(tensor)
    wrapped.save_pretrained(out)
    run.tokenizer.save_pretrained(out)
    n = len(run.label_names)
    return Export("peft", str(run.path), run.cfg.method.mode, base, run.label_names,
                  f"PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained({base!r}, "
                  f"num_labels={n}), {str(out)!r})")


def peft_name(name: str, saved_modules: list[str], names: dict) -> str:
    """Where a trained tensor of the plain injected model lives in a PeftModel: under
    `base_model.model.`, and for a module PEFT saves whole, inside its `modules_to_save` copy (the
    original stays in the model, frozen)."""
    candidates = [f"base_model.model.{m}.modules_to_save.default.{name[len(m) + 1:]}"
                  for m in saved_modules if name.startswith(m + ".")] + [f"base_model.model.{name}"]
    for candidate in candidates:
        if candidate in names:
            return candidate
    raise ArtifactError(f"{name}: no such tensor in the PEFT model (PEFT version mismatch?)")
