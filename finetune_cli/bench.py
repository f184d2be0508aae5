"""`ftcli bench`: training/evaluation throughput, peak memory and MFU of each tuning mode.

Every mode is built the product's way (`models.load_backbone` + `methods.apply_method` +
`train.make_optimizer`, the step of `train.train_one_epoch`) and measured next to a REFERENCE: the
plain Hugging Face loop (`AutoModelForSequenceClassification` from the same weights, everything
trainable, `loss.backward(); AdamW.step(); zero_grad()`). Timed steps are interleaved round-robin
over the contenders in one process, so a slow spell of the machine hits all of them alike. Peak
memory is measured in a fresh child process per contender (see `memory_child`).
See benchmarks/README.md for the formulas.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import memory
from .errors import ConfigError, FtcliError

REFERENCE = "reference"
DEFAULT_MODES = ("full", "top", "layerwise", "head")
RESULT_MARK = "FTCLI_BENCH_RESULT "  # the line a memory child prints its result on
Batch = dict[str, torch.Tensor]


# ----------------------------------------------------------------------------------------------
# Inputs: real examples of the bundled sample, exactly `seq` tokens each (no padding)


@dataclass(frozen=True)
class Inputs:
    train: list[Batch]  # distinct training batches [batch, seq], cycled over the steps
    eval: Batch  # one evaluation batch [eval_batch, seq]
    how: str  # "examples" (real examples truncated to seq) or "packed" (short texts concatenated)
    num_labels: int


def make_inputs(tokenizer: Any, dataset: str, seq: int, batch: int, eval_batch: int,
                max_batches: int = 8) -> Inputs:
    """Tokenize the bundled sample's training split with the product's `batching.encode`, keep the
    examples that fill `seq` tokens, and batch them with the product's `batching.collate`.

    Data sets of short texts (SNLI, AG News at seq 128) have too few such examples: their texts
    are then concatenated into one stream and cut into [CLS] chunk [SEP] pieces of `seq` tokens."""
    from .batching import Encoded, collate, encode
    from .data import load_sample
    from .tasks import DATASETS

    if dataset not in DATASETS:
        raise ConfigError(f"--dataset: got {dataset!r}, expected one of {', '.join(DATASETS)}")
    spec = DATASETS[dataset]
    rows = load_sample(spec)["train"]
    enc = encode(rows, spec, tokenizer, seq)
    keep = [i for i, ids in enumerate(enc.input_ids) if len(ids) == seq]
    need = max(batch, eval_batch)
    how = "examples"
    if len(keep) >= need:
        full = Encoded([enc.input_ids[i] for i in keep], [enc.token_type_ids[i] for i in keep],
                       [enc.labels[i] for i in keep])
    else:
        how = "packed"
        full = _packed(rows, spec, tokenizer, seq, need * max_batches)
        if len(full) < need:
            raise FtcliError(f"the {dataset} sample has too little text for {need} inputs of {seq} tokens")
    n = len(full)
    pad_id = tokenizer.pad_token_id or 0
    n_train = max(1, min(max_batches, n // batch))
    train = [collate([(b * batch + i) % n for i in range(batch)], full, pad_id) for b in range(n_train)]
    evaluation = collate([i % n for i in range(eval_batch)], full, pad_id)
    for b in [*train, evaluation]:
        if b["attention_mask"].shape[1] != seq or not bool(b["attention_mask"].all()):
            raise FtcliError(f"internal: a benchmark batch is not exactly {seq} tokens without padding")
    return Inputs(train, evaluation, how, spec.num_labels)


def _packed(rows, spec, tokenizer, seq: int, n: int):
    from .batching import Encoded

    stream: list[int] = []
    labels: list[int] = []
    ids: list[list[int]] = []
    body = seq - 2
    for row in rows:
        stream += tokenizer(" ".join(row[f] for f in spec.text_fields), add_special_tokens=False)["input_ids"]
        while len(stream) >= body and len(ids) < n:
            chunk, stream = stream[:body], stream[body:]
            ids.append([tokenizer.cls_token_id, *chunk, tokenizer.sep_token_id])
            labels.append(row["label"])
    return Encoded(ids, [[0] * seq for _ in ids], labels)


# ----------------------------------------------------------------------------------------------
# Contenders: the product's modes and the plain Hugging Face reference


@dataclass
class Contender:
    name: str
    model: nn.Module
    step: Callable[[Batch], float]  # one training step; returns the loss
    trainable: int
    total: int


def reference_source(model_name: str, num_labels: int, tmp: Path) -> str:
    """The weights folder the reference loads: MiniLM's own folder, a saved tiny BERT, or the id."""
    from .models import MINILM, TINY, minilm_dir

    if model_name == MINILM:
        return str(minilm_dir())
    if model_name == TINY:  # the tiny encoder is built in code: save it once so from_pretrained reads it
        from .config import ModelConfig
        from .models import load_backbone

        folder = tmp / f"tiny-random-bert-{num_labels}"
        if not folder.exists():
            load_backbone(ModelConfig(name=TINY), num_labels).model.save_pretrained(folder)
        return str(folder)
    return model_name


def build_reference(source: str, num_labels: int, seed: int, device: torch.device) -> Contender:
    """The plain Hugging Face loop: every weight trains, torch AdamW with its defaults but the lr."""
    from transformers import AutoModelForSequenceClassification

    from .config import TrainConfig
    from .models import quiet_transformers

    quiet_transformers()
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=num_labels).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=TrainConfig().learning_rate)

    def step(batch: Batch) -> float:
        y = batch["labels"]
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        out = model(**inputs, labels=y)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return out.loss.item()

    n = sum(p.numel() for p in model.parameters())
    return Contender(REFERENCE, model, step, n, n)


def build_product(model_name: str, mode: str, bottleneck: int, num_labels: int, seed: int,
                  device: torch.device) -> Contender:
    """A mode built as `ftcli train` builds it; its step is `train.train_step`, the loop's own."""
    from .config import MethodConfig, ModelConfig, TrainConfig
    from .methods import apply_method, count_params
    from .models import load_backbone
    from .train import distributed_accelerator, make_optimizer, make_scheduler, seed_everything, train_step

    cfg = TrainConfig()
    seed_everything(seed)
    backbone = load_backbone(ModelConfig(name=model_name), num_labels)
    model = backbone.model
    is_trained = apply_method(model, MethodConfig(mode=mode, bottleneck=bottleneck))
    counts = count_params(model, is_trained, backbone.params)
    model.to(device).train()
    optimizer = make_optimizer(model, is_trained, cfg)
    scheduler = make_scheduler(optimizer, 10**6, cfg.warmup_ratio)  # a long schedule: lr never hits 0

    accelerator = distributed_accelerator()

    def step(batch: Batch) -> float:
        return train_step(model, batch, optimizer, scheduler, accelerator, cfg.max_grad_norm)  # the loop's own step

    return Contender(mode, model, step, counts.trainable, counts.total)


def build(name: str, model_name: str, bottleneck: int, num_labels: int, seed: int, device: torch.device,
          tmp: Path) -> Contender:
    if name == REFERENCE:
        return build_reference(reference_source(model_name, num_labels, tmp), num_labels, seed, device)
    return build_product(model_name, name, bottleneck, num_labels, seed, device)


# ----------------------------------------------------------------------------------------------
# FLOPs: matmul FLOPs counted on the model itself with forward hooks


def count_flops(model: nn.Module, batch: Batch) -> dict[str, float]:
    """Matmul FLOPs of one training step on `batch`, counted with hooks during one forward.

    Per nn.Linear with r input rows, i inputs, o outputs: forward 2·r·i·o; backward 2·r·i·o for
    the input gradient if the input requires grad (something upstream trains) plus 2·r·i·o for
    the weight gradient if the weight trains. Per self-attention (B batch, s tokens, d = heads ·
    head size): forward QKᵀ and PV = 4·B·s²·d; backward 2× that when Q/K/V require grad.
    Elementwise ops, softmax, LayerNorm and embedding look-ups are not counted."""
    fwd = bwd = attn_fwd = attn_bwd = 0.0
    handles = []

    def linear_hook(mod: nn.Linear, args, output):
        nonlocal fwd, bwd
        x = args[0]
        f = 2.0 * x.numel() / x.shape[-1] * mod.in_features * mod.out_features
        fwd += f
        bwd += f * (int(x.requires_grad) + int(mod.weight.requires_grad))

    def attention_hook(mod: nn.Module, args, output):
        nonlocal attn_fwd, attn_bwd
        ctx = output[0] if isinstance(output, tuple) else output  # [B, s, d]
        b, s = ctx.shape[0], ctx.shape[1]
        d = mod.query.out_features
        f = 4.0 * b * s * s * d
        attn_fwd += f
        attn_bwd += 2 * f * int(ctx.requires_grad)

    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            handles.append(mod.register_forward_hook(linear_hook))
        elif all(isinstance(getattr(mod, k, None), nn.Linear) for k in ("query", "key", "value")):
            handles.append(mod.register_forward_hook(attention_hook))
    try:
        with torch.enable_grad():
            model(**{k: v for k, v in batch.items() if k != "labels"})
    finally:
        for h in handles:
            h.remove()
    n = batch["input_ids"].shape[0]
    forward = fwd + attn_fwd
    return {"forward": forward, "backward": bwd + attn_bwd, "train_step": forward + bwd + attn_bwd,
            "forward_per_example": forward / n, "attention_forward": attn_fwd}


def matmul_peak(shapes: list[tuple[int, int, int]], device: torch.device, reps: int = 10) -> list[dict]:
    """Median GFLOP/s of fp32 torch.mm [m,k]@[k,n] per shape (same threads as the benchmark)."""
    out = []
    for m, k, n in shapes:
        a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
        c = torch.empty(m, n, device=device)
        times = []
        for i in range(reps + 2):
            _sync(device)
            t = time.perf_counter()
            torch.mm(a, b, out=c)
            _sync(device)
            if i >= 2:
                times.append(time.perf_counter() - t)
        out.append({"m": m, "k": k, "n": n, "gflops": 2.0 * m * k * n / statistics.median(times) / 1e9})
    return out


# ----------------------------------------------------------------------------------------------
# Timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn: Callable[[Any], Any], arg: Any, device: torch.device) -> tuple[float, Any]:
    _sync(device)
    t = time.perf_counter()
    value = fn(arg)
    _sync(device)
    return time.perf_counter() - t, value


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device: CUDA is not available on this machine")
    return torch.device(device)


def parse_modes(text: str) -> list[str]:
    from .methods import MODES

    modes = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ConfigError(f"--modes: got {text!r}, expected a comma-separated list of {', '.join(MODES)}")
    return list(dict.fromkeys(modes))


def _summary(times: list[float]) -> dict[str, float]:
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    return {"median": statistics.median(times), "min": min(times), "max": max(times),
            "q1": q[0], "q3": q[2]}


def run_bench(model: str = "minilm-l6", dataset: str = "imdb", modes: list[str] | tuple[str, ...] = DEFAULT_MODES,
              seq: int = 128, batch: int = 16, steps: int = 10, warmup: int = 2, eval_batch: int = 64,
              eval_steps: int | None = None, bottleneck: int = 64, seed: int = 0, threads: int | None = None,
              device: str = "auto", memory: bool = True, memory_steps: int = 2,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure every contender (the reference, then `modes`); returns the JSON-ready result."""
    import transformers

    say = log or (lambda _msg: None)
    if steps < 1 or warmup < 0 or seq < 8 or batch < 1 or eval_batch < 1:
        raise ConfigError("bench: need steps >= 1, warmup >= 0, seq >= 8, batch >= 1, eval batch >= 1")
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"--threads: got {threads}, expected at least 1")
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    eval_steps = eval_steps or max(3, steps // 2)
    names = [REFERENCE, *parse_modes(",".join(modes))]
    load_start = _loadavg()

    with tempfile.TemporaryDirectory(prefix="ftcli-bench-") as tmp:
        inputs = make_inputs(_tokenizer(model), dataset, seq, batch, eval_batch)
        contenders = []
        for name in names:
            say(f"building {name}")
            contenders.append(build(name, model, bottleneck, inputs.num_labels, seed, dev, Path(tmp)))
        config = contenders[0].model.config
        train_batches = [{k: v.to(dev) for k, v in b.items()} for b in inputs.train]
        eval_inputs = {k: v.to(dev) for k, v in inputs.eval.items() if k != "labels"}

        say("matmul peak")
        d, ff = int(config.hidden_size), int(getattr(config, "intermediate_size", 4 * config.hidden_size))
        mm = matmul_peak([(1024, 1024, 1024), (batch * seq, d, ff), (batch * seq, ff, d)], dev)
        flops = {c.name: count_flops(c.model, train_batches[0]) for c in contenders}

        train_times: dict[str, list[float]] = {c.name: [] for c in contenders}
        losses: dict[str, list[float]] = {c.name: [] for c in contenders}
        for c in contenders:
            c.model.train()
        for r in range(warmup + steps):
            say(f"train round {r + 1}/{warmup + steps}{' (warm-up)' if r < warmup else ''}")
            b = train_batches[r % len(train_batches)]
            for c in contenders:  # interleaved: one step of every contender per round
                seconds, loss = _timed(c.step, b, dev)
                losses[c.name].append(loss)
                if r >= warmup:
                    train_times[c.name].append(seconds)

        eval_times: dict[str, list[float]] = {c.name: [] for c in contenders}
        for c in contenders:
            c.model.eval()
        with torch.inference_mode():
            for r in range(1 + eval_steps):
                say(f"eval round {r + 1}/{1 + eval_steps}{' (warm-up)' if r == 0 else ''}")
                for c in contenders:
                    seconds, _ = _timed(lambda x, c=c: c.model(**x).logits.argmax(-1), eval_inputs, dev)
                    if r >= 1:
                        eval_times[c.name].append(seconds)
        counts = {c.name: (c.trainable, c.total) for c in contenders}
        del contenders, train_batches

        mem: dict[str, dict[str, Any]] = {}
        if memory:  # RSS does not depend on CPU contention: two children at a time
            say(f"peak memory: one child process per contender ({', '.join(names)})")
            specs = [{"name": name, "model": model, "dataset": dataset, "seq": seq, "batch": batch,
                      "eval_batch": eval_batch, "bottleneck": bottleneck, "seed": seed,
                      "threads": torch.get_num_threads(), "device": str(dev), "steps": memory_steps,
                      "num_labels": inputs.num_labels, "tmp": tmp} for name in names]
            with ThreadPoolExecutor(max_workers=1 if dev.type == "cuda" else 2) as pool:
                mem = dict(zip(names, pool.map(measure_memory_in_child, specs), strict=True))

    peak = max(x["gflops"] for x in mm)
    rows = []
    for name in names:
        tt, et, fl = _summary(train_times[name]), _summary(eval_times[name]), flops[name]
        achieved = fl["train_step"] / tt["median"] / 1e9
        eval_achieved = fl["forward_per_example"] * eval_batch / et["median"] / 1e9
        rows.append({
            "name": name, "kind": "reference" if name == REFERENCE else "product",
            "trainable_params": counts[name][0], "total_params": counts[name][1],
            "train_step_seconds": tt, "train_step_seconds_all": train_times[name],
            "train_examples_per_s": batch / tt["median"],
            "train_examples_per_s_best": batch / tt["min"],  # interference only adds time: an upper bound
            "eval_batch_seconds": et, "eval_examples_per_s": eval_batch / et["median"],
            "flops": fl, "train_gflops_per_s": achieved, "train_mfu": achieved / peak,
            "eval_gflops_per_s": eval_achieved, "eval_mfu": eval_achieved / peak,
            "first_loss": losses[name][0], "last_loss": losses[name][-1],
            "memory": mem.get(name),
            "peak_train_memory_mb": mem[name]["peak_train_mb"] if name in mem else None,
        })
    _add_ratios(rows)
    return {
        "meta": {
            "device": str(dev), "device_name": _device_name(dev), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "model": model, "dataset": dataset,
            "attn_implementation": getattr(config, "_attn_implementation", None),
            "inputs": inputs.how, "seq": seq, "batch": batch, "steps": steps, "warmup": warmup,
            "eval_batch": eval_batch, "eval_steps": eval_steps, "bottleneck": bottleneck, "seed": seed,
            "dtype": "float32", "memory_method": MEMORY_METHOD_CUDA if dev.type == "cuda" else MEMORY_METHOD_CPU,
            "memory_steps": memory_steps if memory else None,
            "loop": "product: train_one_epoch without accelerate; reference: plain HF loop",
            "interleaved": "round-robin: each round runs one step of every contender",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpu_count": os.cpu_count(),
            "loadavg_start": load_start, "loadavg_end": _loadavg(),  # other processes on the machine
        },
        "matmul": {"shapes": mm, "peak_gflops_per_s": peak},
        "rows": rows,
    }


def _add_ratios(rows: list[dict]) -> None:
    by = {r["name"]: r for r in rows}

    def ratio(value, base):
        return None if value is None or base in (None, 0) else value / base

    full, ref = by.get("full"), by[REFERENCE]
    for r in rows:
        r["train_ratio_to_full"] = ratio(r["train_examples_per_s"], full and full["train_examples_per_s"])
        r["train_ratio_to_reference"] = ratio(r["train_examples_per_s"], ref["train_examples_per_s"])
        r["eval_ratio_to_reference"] = ratio(r["eval_examples_per_s"], ref["eval_examples_per_s"])
        r["memory_ratio_to_reference"] = ratio(r["peak_train_memory_mb"], ref["peak_train_memory_mb"])


def _tokenizer(model_name: str):
    """The backbone's tokenizer (the tiny BERT uses MiniLM's bert-base-uncased vocabulary)."""
    from transformers import AutoTokenizer

    from .models import MINILM, TINY, minilm_dir

    return AutoTokenizer.from_pretrained(str(minilm_dir()) if model_name in (TINY, MINILM) else model_name)


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ----------------------------------------------------------------------------------------------
# Peak memory: one fresh child process per contender

MEMORY_METHOD_CPU = (
    "fresh child process per contender; baseline = RSS after imports and inputs, before the model; "
    "one warm-up step (optimizer state allocated), malloc_trim, peak-RSS counter reset "
    "(/proc/self/clear_refs 5), then the measured steps; peak_train = VmHWM - baseline")
MEMORY_METHOD_CUDA = ("fresh child process per contender; one warm-up step, reset_peak_memory_stats, "
                      "measured steps; peak_train = torch.cuda.max_memory_allocated")


def _import_everything() -> None:
    import accelerate  # noqa: F401 - imported by train.seed_everything
    import transformers.models.bert.modeling_bert  # noqa: F401
    from transformers import AutoModelForSequenceClassification  # noqa: F401

    from . import methods, models, train  # noqa: F401


def memory_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run in a fresh process: build one contender, train, report its peak memory (MiB)."""
    torch.set_num_threads(spec["threads"])
    dev = torch.device(spec["device"])
    tmp = Path(spec["tmp"])
    inputs = make_inputs(_tokenizer(spec["model"]), spec["dataset"], spec["seq"], spec["batch"], spec["eval_batch"])
    batches = [{k: v.to(dev) for k, v in b.items()} for b in inputs.train]
    _import_everything()  # code is not what we measure: import all of it before the baseline
    torch.mm(torch.ones(64, 64), torch.ones(64, 64))  # start the thread pool before the baseline
    cuda = dev.type == "cuda"
    if not cuda:
        memory.malloc_trim()
    baseline = torch.cuda.memory_allocated() if cuda else memory.status_kib("VmRSS") * 1024
    c = build(spec["name"], spec["model"], spec["bottleneck"], spec["num_labels"], spec["seed"], dev, tmp)
    loaded = torch.cuda.memory_allocated() if cuda else memory.status_kib("VmRSS") * 1024
    c.model.train()
    c.step(batches[0])
    _sync(dev)
    reset = memory.reset_peak(str(dev))
    for i in range(spec["steps"]):
        c.step(batches[(i + 1) % len(batches)])
    _sync(dev)
    peak = memory.peak_mb(str(dev), reset)[0] * 2**20
    mib = 2**20
    return {"peak_train_mb": (peak - baseline) / mib, "peak_rss_mb": peak / mib, "baseline_mb": baseline / mib,
            "model_loaded_mb": (loaded - baseline) / mib, "peak_reset": reset}


def measure_memory_in_child(spec: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    proc = subprocess.run([sys.executable, "-m", "finetune_cli.bench"], input=json.dumps(spec),
                          capture_output=True, text=True, env=env, check=False)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    raise FtcliError(f"bench: the memory child for {spec['name']} failed (exit {proc.returncode}): {tail}")


# ----------------------------------------------------------------------------------------------
# Rendering


def header_lines(result: dict[str, Any]) -> list[str]:
    m, mm = result["meta"], result["matmul"]
    shapes = ", ".join(f"{s['m']}x{s['k']}x{s['n']} {s['gflops']:.1f}" for s in mm["shapes"])
    return [
        f"device: {m['device']} ({m['device_name']}) | threads: {m['threads']} | torch {m['torch']} | "
        f"transformers {m['transformers']} | {m['dtype']} | attention: {m['attn_implementation']}",
        f"model: {m['model']} | data: {m['dataset']} sample ({m['inputs']}) | seq {m['seq']} | batch {m['batch']} | "
        f"steps {m['steps']} (+{m['warmup']} warm-up, interleaved) | eval batch {m['eval_batch']} x "
        f"{m['eval_steps']} | bottleneck {m['bottleneck']}",
        f"matmul peak (median GFLOP/s of fp32 torch.mm, m x k x n): {shapes} -> peak {mm['peak_gflops_per_s']:.1f}",
        f"load average (1/5/15 min) at start {m['loadavg_start']}, at end {m['loadavg_end']} on {m['cpu_count']} CPUs",
    ] + _contention_warning(m) + _cache_note(result)


def _cache_note(result: dict[str, Any]) -> list[str]:
    cacheable = [r["name"] for r in result["rows"] if r["name"] in ("top", "head")]
    if not cacheable:
        return []
    return [f"{'/'.join(cacheable)}: the uncached step (train.cache_frozen_encoder: false); with the cache, epochs "
            "after the first skip the frozen encoder: benchmarks/epoch_cache.py times them"]


def _contention_warning(meta: dict[str, Any]) -> list[str]:
    """A busy machine: with several torch threads every parallel op waits for the slowest thread."""
    load, cpus = meta.get("loadavg_start"), meta.get("cpu_count") or 1
    if not load or meta["device"] != "cpu" or load[0] < 0.5:
        return []
    return [f"WARNING: the machine was busy (load {load[0]} on {cpus} CPUs) before the benchmark started; "
            "timings include other processes' use of the CPU"
            + (" and OpenMP waits for descheduled threads (compare --threads 1)" if meta["threads"] > 1 else "")]


def render_table(result: dict[str, Any]):
    from rich.table import Table

    def x(v):
        return "-" if v is None else f"{v:.2f}x"

    table = Table(title="ftcli bench: training step (median of interleaved steps), evaluation, memory")
    for col in ("mode", "trainable params", "train ex/s", "× full", "× ref", "eval ex/s",
                "peak train MB", "mem × ref", "GFLOP/s", "MFU"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for r in result["rows"]:
        mem = r["peak_train_memory_mb"]
        table.add_row(r["name"], f"{r['trainable_params']:,}", f"{r['train_examples_per_s']:.2f}",
                      x(r["train_ratio_to_full"]), x(r["train_ratio_to_reference"]),
                      f"{r['eval_examples_per_s']:.1f}", "-" if mem is None else f"{mem:.0f}",
                      x(r["memory_ratio_to_reference"]), f"{r['train_gflops_per_s']:.1f}",
                      f"{100 * r['train_mfu']:.0f}%")
    return table


def write_json(result: dict[str, Any], path: Path) -> None:
    from .runfolder import write_json as write_json_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, result)


if __name__ == "__main__":  # the memory child: spec as JSON on stdin, result on one marked line
    from .models import quiet_transformers

    quiet_transformers()
    print(RESULT_MARK + json.dumps(memory_child(json.loads(sys.stdin.read()))), flush=True)
