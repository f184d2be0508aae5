"""Where the time of a training step goes (the investigation behind benchmarks/README.md).

    .venv/bin/python benchmarks/where_time_goes.py profile layerwise   # phases x op categories
    .venv/bin/python benchmarks/where_time_goes.py ablate --rounds 8    # interleaved what-ifs

Both use MiniLM, 16 x 128 tokens of the IMDB sample and 1 torch thread by default (--threads).
`ablate` changes things the product does NOT do (fused AdamW, dropout off) to price them; nothing
here is used by ftcli itself.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from finetune_cli.bench import contenders as bench
from finetune_cli.config import MethodConfig, ModelConfig, TrainConfig
from finetune_cli.methods.predicate import apply_method
from finetune_cli.methods.registry import METHODS
from finetune_cli.models.backbones import load_backbone
from finetune_cli.training.devices import seed_everything
from finetune_cli.training.optim import make_optimizer, make_scheduler, trained_params

CPU = torch.device("cpu")


def batches() -> list[dict[str, torch.Tensor]]:
    return bench.make_inputs(bench.tokenizer_for("minilm-l6"), "imdb", 128, 16, 64).train


def set_dropout(model: nn.Module, attention: bool, hidden: bool) -> None:
    """Switch off (p = 0) the attention-probability dropout and/or every other dropout."""
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Dropout) and not (attention if name.endswith("attention.self.dropout") else hidden):
            mod.p = 0.0


def product(mode: str, attention: bool = True, hidden: bool = True, fused: bool = False, forward_only: bool = False):
    """The product's step (bench.build_product), optionally with fused AdamW + foreach clipping."""
    cfg = TrainConfig(learning_rate=METHODS[mode].learning_rate)  # auto, as `ftcli train` resolves it
    seed_everything(0)
    model = load_backbone(ModelConfig(name="minilm-l6"), 2).model
    is_trained = apply_method(model, MethodConfig(mode=mode, bottleneck=64))
    set_dropout(model, attention, hidden)
    model.train()
    optimizer = make_optimizer(model, is_trained, cfg)
    if fused:
        groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in optimizer.param_groups]
        optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate, fused=True)
    scheduler = make_scheduler(optimizer, 10**6, cfg.warmup_ratio)
    params = trained_params(optimizer)

    def step(batch):
        loss = model(**batch).loss
        if forward_only:
            return loss.item()
        if not torch.isfinite(loss).item():
            raise RuntimeError(f"the loss became {loss.item()}")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm, foreach=True if fused else None)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def reference(tmp: Path, attention: bool = True):
    c = bench.build_reference(bench.reference_source("minilm-l6", 2, tmp), 2, 0, CPU)
    set_dropout(c.model, attention, True)
    return c.step


def ablate(rounds: int) -> None:
    data = batches()
    with tempfile.TemporaryDirectory() as tmp:
        variants = {
            "reference": reference(Path(tmp)),
            "reference, attention dropout 0": reference(Path(tmp), attention=False),
            "full": product("full"),
            "full, fused AdamW + foreach clip": product("full", fused=True),
            "full, fused + attention dropout 0": product("full", attention=False, fused=True),
            "layerwise": product("layerwise"),
            "layerwise, forward only": product("layerwise", forward_only=True),
            "layerwise, attention dropout 0": product("layerwise", attention=False),
            "layerwise, no dropout at all": product("layerwise", attention=False, hidden=False),
            "head (train-mode forward, no encoder backward)": product("head"),
        }
        times: dict[str, list[float]] = {k: [] for k in variants}
        for r in range(rounds + 1):  # round 0 is warm-up; every round runs each variant once
            batch = data[r % len(data)]
            for name, step in variants.items():
                t = time.perf_counter()
                step(batch)
                if r:
                    times[name].append(time.perf_counter() - t)
    ref = statistics.median(times["reference"])
    print(f"{'variant':48s} {'median s':>8s} {'ex/s':>6s} {'x ref':>6s}")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"{name:48s} {m:8.3f} {16 / m:6.2f} {ref / m:6.2f}")


def category(name: str, shapes: str) -> str:
    if name in ("aten::mm", "aten::addmm", "aten::bmm"):
        if name == "aten::bmm":
            return "attention matmul (QK^T, PV)"
        return "adapter matmul" if "64]" in shapes or "[64" in shapes else "linear matmul"
    if name in ("aten::bernoulli_", "aten::div_") or (
            name == "aten::mul" and ("[16, 12, 128, 128], [16, 12, 128, 128]" in shapes
                                     or "[16, 128, 384], [16, 128, 384]" in shapes)):
        return "dropout (bernoulli, scale, mask)"
    if name in ("aten::where", "aten::isneginf", "aten::all", "aten::_softmax", "aten::_softmax_backward_data"):
        return "softmax + safe-softmax checks"
    if name == "aten::copy_":
        return "copy_ (addmm bias broadcast, contiguous)"
    if "layer_norm" in name:
        return "layernorm"
    if "gelu" in name:
        return "gelu"
    return "other (elementwise, optimizer, overhead)"


def profile(mode: str, steps: int) -> None:
    from torch.profiler import ProfilerActivity, record_function
    from torch.profiler import profile as torch_profile

    data = batches()
    with tempfile.TemporaryDirectory() as tmp:
        c = bench.build(mode, "minilm-l6", 64, 2, 0, CPU, Path(tmp))
    cells = dict(zip(c.step.__code__.co_freevars, (x.cell_contents for x in c.step.__closure__), strict=True))
    model, optimizer = c.model, cells["optimizer"]
    scheduler, params = cells.get("scheduler"), cells.get("params")
    model.train()
    for b in data[:2]:
        c.step(b)

    def step(batch):  # c.step, split into named phases
        with record_function("P:forward"):
            loss = model(**batch).loss
        with record_function("P:backward"):
            loss.backward()
        with record_function("P:optimizer"):
            if params is not None:
                torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)

    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for i in range(steps):
            step(data[i % len(data)])

    def phase(e) -> str:
        while e is not None:
            if e.name.startswith("P:"):
                return e.name[2:]
            e = e.cpu_parent
        return "backward"  # the autograd engine's ops have no Python parent

    per: dict[tuple[str, str], float] = collections.defaultdict(float)
    for e in prof.events():
        per[(phase(e), category(e.name, str(e.input_shapes)))] += e.self_cpu_time_total / steps / 1e3
    total = sum(per.values())
    print(f"{mode}: {total:.0f} ms per step ({torch.get_num_threads()} thread(s), profiler on)")
    for ph in ("forward", "backward", "optimizer"):
        sub = {k: v for (p, k), v in per.items() if p == ph}
        print(f"  {ph:9s} {sum(sub.values()):6.0f} ms {100 * sum(sub.values()) / total:5.1f}%")
        for k, v in sorted(sub.items(), key=lambda kv: -kv[1]):
            if v >= 0.5:
                print(f"      {k:44s} {v:6.0f} ms {100 * v / total:5.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["profile", "ablate"])
    parser.add_argument("mode", nargs="?", default="layerwise", help="profile: reference or a mode")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=8, help="ablate: timed rounds")
    parser.add_argument("--steps", type=int, default=3, help="profile: profiled steps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.what == "ablate":
        ablate(args.rounds)
    else:
        profile(args.mode, args.steps)


if __name__ == "__main__":
    main()
