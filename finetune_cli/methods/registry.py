"""The method catalogue: one record per tuning method (`method.mode`), the single source of truth.

Everything that lists methods reads it: the config's allowed modes, `ftcli export`'s format, the
plots' colours and markers, `ftcli bench`'s default contenders, `ftcli ablate`'s check, the CLI's
help texts and the README's "Modes" table (tests/test_registry.py compares it). It is torch-free
and sits at the bottom layer (config.py imports it); what a method *does* to a model lives in the
rest of methods/: surgery.py (the `surgery` named here), predicate.py (the `trains` parts).

A new method is one `MethodSpec` below, plus its surgery in surgery.py when it inserts modules and
its row in README.md; `check_spec` refuses a record with a field missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ExportFormat = Literal["transformers", "peft", "adapterhub"]
EXPORT_FORMATS: tuple[str, ...] = ("transformers", "peft", "adapterhub")
# The parts a method can train (predicate.part_prefixes finds their parameters): all, adapters
# (ftcli's bottleneck adapters), layernorms, head (everything outside the backbone, the pooler when
# method.train_pooler), top_layers (method.top_layers), peft (the PEFT layers' own tensors), biases,
# lora_layernorms (the LayerNorms when method.lora.train_layernorms).
PARTS: tuple[str, ...] = ("all", "adapters", "layernorms", "head", "top_layers", "peft", "biases", "lora_layernorms")
# The sub-sections of `method` that hold one method's own settings (method.lora, method.ia3).
SECTIONS: tuple[str, ...] = ("lora", "ia3")


@dataclass(frozen=True)
class MethodSpec:
    name: str  # the value of method.mode
    summary: str  # one line for --help and the README
    trains: tuple[str, ...]  # the parts that train (PARTS); everything else is frozen
    formula: str  # trainable parameters, as README's table writes it (d hidden, L layers, m bottleneck, c labels)
    export: ExportFormat  # the folder `ftcli export` writes: transformers, peft or adapterhub
    color: str  # its matplotlib colour in every figure
    marker: str  # its matplotlib marker in every figure
    surgery: str | None = None  # the key of surgery.SURGERIES that inserts its modules; None: inserts none
    sized_by_bottleneck: bool = False  # method.bottleneck sets its size (recorded in the summary)
    # its trained part sits above a frozen encoder, so the frozen-encoder cache applies
    # (training/frozen_encoder.find_cut decides from the predicate at run time; a test keeps them equal)
    frozen_encoder_cache: bool = False
    section: str | None = None  # the config section of its own settings (method.<section>), or None
    ablatable: bool = False  # `ftcli ablate` can bypass its adapters layer by layer
    benched: bool = False  # one of `ftcli bench`'s default contenders
    # `train.learning_rate: auto` for it: the rate the claim sweep picked (full, adapters), else its
    # paper's or the value measured on the bundled samples (README "Learning rates"); 0 = unset (refused)
    learning_rate: float = 0.0
    # `ftcli tune`'s learning-rate range (log scale) for it; README "ftcli tune" has the table
    tune_range: tuple[float, float] = (1e-4, 1e-2)


def check_spec(spec: MethodSpec) -> MethodSpec:
    """`spec` itself, or ValueError naming the first field a record may not leave out or get wrong."""
    problems = [
        ("name", not spec.name.isidentifier()),
        ("summary", not spec.summary.strip() or "\n" in spec.summary),
        ("trains", not spec.trains or any(p not in PARTS for p in spec.trains)),
        ("formula", not spec.formula.strip() or "|" in spec.formula),  # a README table cell
        ("export", spec.export not in EXPORT_FORMATS),
        ("color", not spec.color.strip()),
        ("marker", not spec.marker.strip()),
        ("surgery", spec.surgery is not None and not spec.surgery.isidentifier()),
        ("section", spec.section is not None and spec.section not in SECTIONS),
        ("learning_rate", not 0 < spec.learning_rate < 1),
        ("tune_range", not 0 < spec.tune_range[0] <= spec.learning_rate <= spec.tune_range[1] < 1),
    ]
    for field_name, bad in problems:
        if bad:
            raise ValueError(f"method {spec.name!r}: {field_name} is missing or invalid "
                             f"({getattr(spec, field_name)!r})")
    return spec


def make_registry(*specs: MethodSpec) -> dict[str, MethodSpec]:
    """The checked records by name, in the given order (the order of help texts and error messages)."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"a method is registered twice: {names}")
    return {s.name: check_spec(s) for s in specs}


HEAD = "(dc+c)"  # the classification head: a d x c weight and c biases

METHODS: dict[str, MethodSpec] = make_registry(
    MethodSpec("full", "full fine-tuning: every weight trains", ("all",), "all",
               "transformers", "black", "o", benched=True, learning_rate=1e-4, tune_range=(1e-5, 2e-4)),
    MethodSpec("top", "one adapter on the last layer's output + head", ("adapters", "head"), f"2md+m+d + {HEAD}",
               "adapterhub", "tab:purple", "^", surgery="top_adapter", sized_by_bottleneck=True,
               frozen_encoder_cache=True, benched=True, learning_rate=3e-3, tune_range=(1e-4, 1e-1)),
    MethodSpec("layerwise", "two Houlsby adapters per layer + all LayerNorms + head",
               ("adapters", "layernorms", "head"), f"2L(2md+m+d) + (2L+1)·2d + {HEAD}",
               "adapterhub", "tab:orange", "s", surgery="layerwise_adapters", sized_by_bottleneck=True,
               ablatable=True, benched=True, learning_rate=1e-3),
    MethodSpec("pfeiffer", "one adapter per layer after the feed-forward block (Pfeiffer, AdapterHub seq_bn) + head",
               ("adapters", "head"), f"L(2md+m+d) + {HEAD}",
               "adapterhub", "tab:brown", "D", surgery="pfeiffer_adapters", sized_by_bottleneck=True,
               learning_rate=1e-3),
    MethodSpec("lora", "LoRA (or DoRA: method.lora.use_dora) on method.lora.target_modules (PEFT) + head",
               ("peft", "lora_layernorms", "head"), f"L·2·r(d+d) + {HEAD}; use_dora adds L·2d",
               "peft", "tab:red", "v", surgery="peft", section="lora", learning_rate=5e-4),
    MethodSpec("ia3", "(IA)3 scaling vectors (PEFT) + head", ("peft", "head"),
               f"L(3d+f) + {HEAD}, f = feed-forward size", "peft", "tab:pink", "P", surgery="peft", section="ia3",
               learning_rate=3e-3),
    MethodSpec("bitfit", "every bias of the backbone + head (BitFit)", ("biases", "head"), f"L(7d+f) + 2d + {HEAD}",
               "transformers", "tab:olive", "X", learning_rate=1e-3),
    MethodSpec("top_layers", "top k encoder layers + head (variable fine-tuning)", ("top_layers", "head"),
               f"k·(one layer's parameters) + {HEAD}", "transformers", "tab:blue", "<", learning_rate=1e-4,
               tune_range=(1e-5, 2e-4)),
    MethodSpec("layernorm", "LayerNorms + head only", ("layernorms", "head"), f"(2L+1)·2d + {HEAD}",
               "transformers", "tab:green", ">", learning_rate=1e-3),
    MethodSpec("head", "classification head only (linear probe)", ("head",), "dc+c",
               "transformers", "tab:gray", "*", frozen_encoder_cache=True, benched=True, learning_rate=1e-1,
               tune_range=(1e-4, 1e-1)),
)
METHOD_NAMES: tuple[str, ...] = tuple(METHODS)


def names_where(flag: str) -> tuple[str, ...]:
    """The methods whose boolean field `flag` is true, in registry order (e.g. `benched`, `ablatable`)."""
    return tuple(name for name, spec in METHODS.items() if getattr(spec, flag))
