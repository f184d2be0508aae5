"""`ftcli export RUN OUT`: a trained run as files the ecosystem loads without ftcli.

The format is the method's `export` in methods/registry.py:
* transformers, for methods whose trained tensors are the model's own (full, head, layernorm,
  top_layers, bitfit): a standard `save_pretrained` folder (model, tokenizer, id2label) for
  `AutoModelForSequenceClassification.from_pretrained`.
* peft (lora, DoRA included, and ia3): a PEFT adapter folder (adapter_config.json +
  adapter_model.safetensors, the classification head saved as `modules_to_save`) for
  `PeftModel.from_pretrained(base, OUT)`. It is written by PEFT itself: the trained tensors are
  copied into a `get_peft_model` of a fresh backbone, which then saves, so the folder is PEFT's own
  format by construction.
* adapterhub, for the bottleneck-adapter methods (layerwise, pfeiffer, top): an AdapterHub
  (`adapters` library) adapter folder, adapter_config.json + adapter.safetensors, for
  `model.load_adapter(OUT)`, plus `ftcli_non_adapter.safetensors`: the trained tensors AdapterHub
  does not keep with an adapter (LayerNorms, head, pooler), under the plain Hugging Face names, for
  `load_state_dict(strict=False)`. AdapterHub cannot be imported here (it pins transformers 4.x), so
  the folder is written from its documented layout; scripts/check_adapterhub.sh loads it in
  AdapterHub's own environment and compares logits.
Every export writes `ftcli_export.json` (what the run was, the labels, how to load it).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import save_file
from torch import nn

from ..errors import first_line
from ..methods.adapterhub import adapterhub_config, plain_name
from ..methods.adapters import Adapter, encoder_layers, layout_of
from ..methods.peft_methods import peft_config
from ..methods.predicate import modules_to_save, trained_state_dict
from ..methods.registry import METHODS
from ..models.backbones import MINILM, MINILM_HUB_ID, load_backbone, name_labels, source_of
from ..models.families import Family
from ..runs.artifacts import ArtifactError, LoadedRun, check_completed, load_run_model
from ..runs.folder import check_writable, write_json

MANIFEST = "ftcli_export.json"
NON_ADAPTER_FILE = "ftcli_non_adapter.safetensors"
ADAPTERHUB_VERSION = "adapters.1.3.0"  # the AdapterHub release whose layout this writes (and the check uses)


@dataclass(frozen=True)
class Export:
    kind: str  # the format: "transformers", "peft" or "adapterhub" (the method's registry export)
    run: str  # the run folder exported
    mode: str
    base_model: str  # what to load the export on (PEFT: a local folder where ftcli has one) or what it came from
    label_names: list[str]  # id2label, in order
    load_with: str  # the Python line that loads it
    status: str = "completed"  # the run's status when exported (anything else only with --force)
    base_hub_id: str | None = None  # the backbone's Hugging Face Hub id (load it there on another machine)


def export_run(run_dir: Path, out: Path, force: bool = False) -> Export:
    """Write the run in `run_dir` into the new folder `out`; returns what was written. The folder is
    written as a hidden sibling and renamed into place, so a failed export leaves nothing behind."""
    out = Path(out).resolve() if Path(out).is_symlink() else Path(out)  # a link to an empty folder: that folder
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ArtifactError(f"{out} already exists and is not an empty folder; pick a new one")
    check_writable(out.parent, "OUT")  # before the model loads; the export is renamed into place there
    status = check_completed(run_dir, force)
    run = load_run_model(run_dir)
    save = SAVERS[METHODS[run.cfg.method.mode].export]
    name_labels(run.model, run.label_names)
    # the task's objective says how transformers' head treats the labels (its loss, when given labels)
    run.model.config.problem_type = run.spec.objective.problem_type
    staging = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        export = dataclasses.replace(save(run, staging, out), status=status)
        write_json(staging / MANIFEST, asdict(export))
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp's folder is private (0700); an export is an ordinary folder
        staging.rename(out)  # POSIX rename replaces an empty folder given as OUT
    except (OSError, SafetensorError) as e:  # safetensors reports a full disk as its own error
        reason = getattr(e, "strerror", None) or first_line(e)
        raise ArtifactError(f"{out}: cannot write the export ({reason}); nothing was left behind") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return export


def problem_arg(run: LoadedRun) -> str:
    """The `problem_type=` argument a load snippet needs beyond single-label (transformers' loss)."""
    kind = run.spec.objective.problem_type
    return "" if kind == "single_label_classification" else f", problem_type={kind!r}"


def hub_name(model_name: str) -> str:
    """The name others load the backbone by (the bundled MiniLM is a Hub model)."""
    return MINILM_HUB_ID if model_name == MINILM else model_name


def save_transformers(run: LoadedRun, out: Path, shown: Path) -> Export:
    run.model.save_pretrained(out)  # safetensors
    run.tokenizer.save_pretrained(out)
    return Export("transformers", str(run.path), run.cfg.method.mode, hub_name(run.cfg.model.name),
                  run.label_names, f"AutoModelForSequenceClassification.from_pretrained({str(shown)!r})")


def save_peft(run: LoadedRun, out: Path, shown: Path) -> Export:
    """A PeftModel of a fresh backbone receives the trained tensors, then saves itself."""
    import peft  # here, not at the top: ~2 s to import, needed by the lora and ia3 exports only

    # the folder the backbone was loaded from (the bundled MiniLM, `make models`' MPNet): it loads
    # offline, where the Hub id does not; anything else is its own id or folder
    base = source_of(run.cfg.model.name)
    fresh = load_backbone(run.cfg.model, len(run.label_names)).model
    name_labels(fresh, run.label_names)
    saved_modules = modules_to_save(run.model, run.cfg.method, run.cfg.model.layout)
    wrapped = peft.get_peft_model(fresh, peft_config(run.cfg.method, fresh, run.cfg.model.layout, task_type="SEQ_CLS",
                                                     modules_to_save=saved_modules))
    wrapped.peft_config["default"].base_model_name_or_path = base  # get_peft_model sets the local path
    targets = dict(wrapped.named_parameters())
    for name, tensor in trained_state_dict(run.model, run.is_trained).items():
        targets[peft_name(name, saved_modules, targets)].data.copy_(tensor)
    wrapped.save_pretrained(out)
    run.tokenizer.save_pretrained(out)
    n = len(run.label_names)
    id2label = dict(enumerate(run.label_names))
    return Export("peft", str(run.path), run.cfg.method.mode, base, run.label_names,
                  f"PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained({base!r}, "
                  f"num_labels={n}, id2label={id2label!r}{problem_arg(run)}), {str(shown)!r})",
                  base_hub_id=hub_name(run.cfg.model.name))


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


def save_adapterhub(run: LoadedRun, out: Path, shown: Path) -> Export:
    """AdapterHub's adapter folder (config + weights under its names) and the side file of the trained
    tensors that are not adapter weights."""
    name, method, model = run.path.name, run.cfg.method, run.model
    d, layers = model.config.hidden_size, model.config.num_hidden_layers
    factor = d / method.bottleneck  # AdapterHub sizes adapters as hidden_size // reduction_factor
    if int(d // factor) != method.bottleneck:
        raise ArtifactError(f"method.bottleneck: {method.bottleneck} is not hidden size {d} // a reduction factor "
                            "AdapterHub can store; pick a divisor of the hidden size")
    adapter_names = adapterhub_names(model, name, layout_of(model, run.cfg.model.layout, method.mode))
    state = trained_state_dict(model, run.is_trained)
    adapter = {adapter_names[n]: t for n, t in state.items() if n in adapter_names}
    rest = {plain_name(model, n): t for n, t in state.items() if n not in adapter_names}
    save_file(adapter, str(out / "adapter.safetensors"))
    save_file(rest, str(out / NON_ADAPTER_FILE))
    config = adapterhub_config(method, d, layers)
    base = hub_name(run.cfg.model.name)
    write_json(out / "adapter_config.json", {
        "config": config, "hidden_size": d, "model_class": model.__class__.__name__, "model_name": base,
        "model_type": model.config.model_type, "name": name, "version": ADAPTERHUB_VERSION})
    run.tokenizer.save_pretrained(out)
    return Export("adapterhub", str(run.path), method.mode, base, run.label_names,
                  f"adapters.init(model); model.load_adapter({str(shown)!r}, set_active=True, use_safetensors=True); "
                  f"model.load_state_dict(safetensors.torch.load_file({str(shown / NON_ADAPTER_FILE)!r}), "
                  "strict=False)  # model = AutoModelForSequenceClassification.from_pretrained("
                  f"{base!r}, num_labels={len(run.label_names)}{problem_arg(run)})")


def adapterhub_names(model: nn.Module, name: str, family: Family) -> dict[str, str]:
    """ftcli name -> AdapterHub name of every adapter weight. AdapterHub keeps a layer's adapters in
    one module per sublayer (the table's `adapterhub_blocks`: BERT's output blocks, DistilBERT's
    attention_adapters / output_adapters, ...) as `<block>.adapters.<name>.adapter_down.0` (its
    down-projection is Sequential(Linear, activation)) and `.adapter_up`."""
    if family.adapterhub_blocks is None:
        raise ArtifactError(f"AdapterHub has no {family.name} interface, so this run cannot be an AdapterHub "
                            "folder; `ftcli predict` uses the run folder itself")
    spots = {family.attention_out: family.adapterhub_blocks[0], family.ffn_out: family.adapterhub_blocks[1],
             family.ffn_norm: family.adapterhub_blocks[1]}
    layers = dict(encoder_layers(model, family))
    renamed = {}
    for path, module in model.named_modules():
        if not isinstance(module, Adapter):
            continue
        layer = next((n for n in layers if path.startswith(n + ".")), None)
        spot = path[len(layer) + 1:].rsplit(".", 1)[0] if layer else None  # <spot>.adapter -> <spot>
        if spot not in spots:
            raise ArtifactError(f"{path}: AdapterHub keeps adapters only at a layer's sublayer outputs; "
                                "this one is elsewhere, so the run cannot be an AdapterHub folder")
        if spots[spot] is None:
            raise ArtifactError(f"{path}: AdapterHub's {family.name} attention adapter computes another function "
                                "than this one (models/families.py), so the run cannot be an AdapterHub folder; "
                                "`ftcli predict` uses the run folder itself")
        for attr, target in (("down", "adapter_down.0"), ("up", "adapter_up")):
            for tensor in ("weight", "bias"):
                renamed[f"{path}.{attr}.{tensor}"] = f"{layer}.{spots[spot]}.adapters.{name}.{target}.{tensor}"
    return renamed


# the writer of each registry export format (tests/test_registry.py: one per format): each writes into
# its first folder and names the second (where the export will be) in its load line
SAVERS = {"transformers": save_transformers, "peft": save_peft, "adapterhub": save_adapterhub}
