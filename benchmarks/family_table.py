"""The README's encoder-family tables, computed: every method applied to the tiny random model of
every family (models/tiny.py), with its trainable parameters, and whether its export format can
hold it. Offline, about 20 s.

    python benchmarks/family_table.py            # markdown: families x modes, then the layout table
"""

from __future__ import annotations

import torch

from finetune_cli.config import MethodConfig, ModelConfig
from finetune_cli.errors import FtcliError
from finetune_cli.methods.predicate import apply_method, count_params
from finetune_cli.methods.registry import METHOD_NAMES, METHODS
from finetune_cli.models.backbones import load_backbone
from finetune_cli.models.families import BY_MODEL_TYPE
from finetune_cli.models.tiny import TINY_NAMES

ADAPTERHUB_MODES = {m for m in METHOD_NAMES if METHODS[m].export == "adapterhub"}


def cell(name: str, mode: str) -> str:
    """`yes (N)`: the method applies, N parameters train; else why not, in a few words."""
    torch.manual_seed(0)
    backbone = load_backbone(ModelConfig(name=name), 2)
    try:
        is_trained = apply_method(backbone.model, MethodConfig(mode=mode, bottleneck=8))
    except FtcliError as e:
        return "no: " + str(e).split(";")[0].split(": ", 1)[-1]
    trainable = count_params(backbone.model, is_trained, backbone.params).trainable
    family = BY_MODEL_TYPE[backbone.model_type]
    note = ""
    if mode in ADAPTERHUB_MODES and family.adapterhub_blocks is None:
        note = ", export: no AdapterHub interface"
    elif mode == "top" and family.top_before:
        note = ", export: top adapter outside a layer"
    elif mode == "layerwise" and family.adapterhub_blocks[0] is None:
        note = ", export: AdapterHub's attention adapter differs"
    return f"yes ({trainable:,}{note})"


def main() -> None:
    print("| family (tiny model) | " + " | ".join(METHOD_NAMES) + " |")
    print("|---" * (len(METHOD_NAMES) + 1) + "|")
    for name in TINY_NAMES:
        print(f"| {name.removeprefix('tiny-random-')} | " + " | ".join(cell(name, m) for m in METHOD_NAMES) + " |")
    print()
    print("| family | model types | LayerNorms | layer list | Houlsby adapters after | Pfeiffer at | top adapter "
          "| LoRA targets | (IA)3 targets | head |")
    print("|---" * 10 + "|")
    for f in {f.name: f for f in BY_MODEL_TYPE.values()}.values():
        pfeiffer = f.ffn_norm or f.ffn_out
        top = ("before " if f.top_before else "after ") + f.last_hidden
        print(f"| {f.name} | {', '.join(f.model_types)} | {f.norm_style} | `{f.layers}` | `{f.attention_out}`, "
              f"`{f.ffn_out}` | `{pfeiffer}` | `{top}` | {', '.join(f.lora_targets)} | "
              f"{', '.join(f.ia3_targets)} | {f.pooling} |")


if __name__ == "__main__":
    main()
