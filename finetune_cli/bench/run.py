"""`ftcli bench`: training/evaluation throughput, peak memory and MFU of each tuning mode.

Every mode is built the product's way (`models.load_backbone` + `methods.predicate.apply_method` +
`training.optim.make_optimizer` + `make_scheduler`) and each timed training step is the loop's own
`training.loop.train_step` (forward, the objective's loss, accelerate's backward, clipping, AdamW,
scheduler), measured next to a REFERENCE: the plain Hugging Face loop
(`AutoModelForSequenceClassification` from the same weights, everything trainable, `loss.backward();
AdamW.step(); zero_grad()`). Timed steps are interleaved round-robin over the contenders in one
process, so a slow spell of the machine hits all of them alike. Peak memory is measured in a fresh
child process per contender (measure.memory_child). The contenders and their inputs are built in
contenders.py. See benchmarks/README.md for the formulas.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers

from ..bench.contenders import REFERENCE, Batch, Contender, Inputs, build, make_inputs, tokenizer_for
from ..bench.measure import (
    GEMM_SIZES,
    MEMORY_METHOD_CPU,
    MEMORY_METHOD_CUDA,
    count_flops,
    gemm_peak,
    measure_memory_in_child,
    mfu,
    summarize,
    timed,
)
from ..bench.peers import PEER_OF, PEERS, build_adapterhub, build_peft, check_peers
from ..bench.profiling import profile_step
from ..errors import ConfigError
from ..methods.registry import METHODS, names_where
from ..runs.artifacts import autocast
from ..runs.folder import write_json as write_json_atomic

DEFAULT_MODES = names_where("benched")  # the registry's default contenders, in its order


@dataclass(frozen=True)
class Settings:
    """What one benchmark measures (the arguments of `run_bench`, checked)."""

    model: str
    dataset: str
    names: list[str]  # the reference, then the modes
    seq: int
    batch: int
    steps: int
    warmup: int
    eval_batch: int
    eval_steps: int
    bottleneck: int
    seed: int
    device: torch.device
    memory: bool
    memory_steps: int
    precisions: tuple[str, ...] = ("fp32",)  # each contender is timed in each (bf16: torch.autocast, as accelerate)
    peers: tuple[str, ...] = ()  # the libraries' contenders (bench/peers.py), after the modes
    adapterhub_python: str | None = None  # the python of AdapterHub's environment (--peers adapterhub)
    profile: int = 0  # training steps profiled per contender and precision (torch.profiler); 0: none


@dataclass
class Timings:
    """Seconds per timed step and the loss of every step (warm-up included), per contender."""

    train: dict[str, list[float]] = field(default_factory=dict)
    losses: dict[str, list[float]] = field(default_factory=dict)
    eval: dict[str, list[float]] = field(default_factory=dict)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device: CUDA is not available on this machine")
    return torch.device(device)


def parse_modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in modes if m not in METHODS]
    if bad or not modes:
        raise ConfigError(f"--modes: got {text!r}, expected a comma-separated list of {', '.join(METHODS)}")
    return list(dict.fromkeys(modes))


PRECISIONS = ("fp32", "bf16")


def parse_precisions(text: str) -> tuple[str, ...]:
    """`--precision fp32,bf16`: the precisions every contender is timed in (fp32 first when present)."""
    found = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    if not found or any(p not in PRECISIONS for p in found):
        raise ConfigError(f"--precision: got {text!r}, expected a comma-separated list of {', '.join(PRECISIONS)}")
    return tuple(sorted(found, key=PRECISIONS.index))


def check_settings(steps: int, warmup: int, seq: int, batch: int, eval_batch: int, threads: int | None) -> None:
    if steps < 1 or warmup < 0 or seq < 8 or batch < 1 or eval_batch < 1:
        raise ConfigError("bench: need steps >= 1, warmup >= 0, seq >= 8, batch >= 1, eval batch >= 1")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads: got {threads}, expected at least 1")


def run_bench(model: str = "minilm-l6", dataset: str = "imdb", modes: list[str] | tuple[str, ...] = DEFAULT_MODES,
              seq: int = 128, batch: int = 16, steps: int = 10, warmup: int = 2, eval_batch: int = 64,
              eval_steps: int | None = None, bottleneck: int = 64, seed: int = 0, threads: int | None = None,
              device: str = "auto", memory: bool = True, memory_steps: int = 2,
              log: Callable[[str], None] | None = None, gemm_sizes: tuple[int, ...] | None = None,
              precisions: tuple[str, ...] = ("fp32",), peers: tuple[str, ...] = (),
              adapterhub_python: str | None = None, profile: int = 0) -> dict[str, Any]:
    """Measure every contender (the reference, `modes`, then `peers` with the modes they are measured
    against); returns the JSON-ready result."""
    say = log or (lambda _msg: None)
    check_settings(steps, warmup, seq, batch, eval_batch, threads)
    if threads is not None:
        torch.set_num_threads(threads)
    check_peers(tuple(peers), model, adapterhub_python, device)
    modes = parse_modes(",".join([*modes, *(PEER_OF[p].against for p in peers)]))
    s = Settings(model, dataset, [REFERENCE, *modes, *peers], seq, batch, steps, warmup, eval_batch,
                 eval_steps or max(3, steps // 2), bottleneck, seed, resolve_device(device), memory, memory_steps,
                 parse_precisions(",".join(precisions)), tuple(peers), adapterhub_python, profile)
    load_start = _loadavg()
    with tempfile.TemporaryDirectory(prefix="ftcli-bench-") as tmp:
        inputs = make_inputs(tokenizer_for(model), dataset, seq, batch, eval_batch)
        contenders = build_all(s, inputs, Path(tmp), say)
        try:
            config = contenders[0].model.config
            train_batches = [{k: v.to(s.device) for k, v in b.items()} for b in inputs.train]
            sizes = gemm_sizes or GEMM_SIZES.get(s.device.type, GEMM_SIZES["cpu"])
            say(f"GEMM upper bound: square torch.mm of {', '.join(map(str, sizes))}, fp32 and bf16")
            bounds = {p: gemm_peak(s.device, getattr(torch, d), sizes) for p, d in (("fp32", "float32"),
                                                                                   ("bf16", "bfloat16"))}
            flops = {c.name: count_flops(c.model, train_batches[0]) for c in contenders if c.model is not None}
            flops |= {c.name: flops[PEER_OF[c.name].against] for c in contenders if c.model is None}  # same maths
            timings = {}
            for precision in s.precisions:
                timings[precision] = time_training(contenders, train_batches, s, say, precision)
                timings[precision].eval = time_evaluation(contenders, inputs, s, say, precision)
            counts = {c.name: (c.trainable, c.total) for c in contenders}
            profiles = profile_all(contenders, train_batches, s, say) if s.profile else {}
        finally:
            for c in contenders:
                if c.remote is not None:
                    c.remote.close()
        del contenders, train_batches
        mem = measure_memory(s, inputs, tmp, say) if memory else {}
    rows = []
    for precision, times in timings.items():  # memory is measured in fp32 only
        rows += [{**result_row(name, s, times, flops[name], counts[name], mem.get(name) if precision == "fp32"
                               else None, bounds[precision]), "precision": precision} for name in s.names]
    _add_ratios(rows)
    meta = {**bench_meta(s, config, inputs), "loadavg_start": load_start, "loadavg_end": _loadavg()}
    return {"meta": meta, "gemm_bound": bounds, "rows": rows, **({"profile": profiles} if profiles else {})}


def profile_all(contenders: list[Contender], batches: list[Batch], s: Settings,
                say: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """`s.profile` profiled training steps of each in-process contender in each precision."""
    found: dict[str, dict[str, Any]] = {}
    for precision in s.precisions:
        for c in (c for c in contenders if c.model is not None):  # AdapterHub's child is not profiled
            say(f"profiling {c.name} ({precision}, {s.profile} steps)")
            found.setdefault(c.name, {})[precision] = profile_step(c, batches, s.device, precision, s.profile)
    return found


def build_all(s: Settings, inputs: Inputs, tmp: Path, say: Callable[[str], None]) -> list[Contender]:
    contenders = []
    for name in s.names:
        say(f"building {name}")
        if name == PEERS["adapterhub"].name:
            contenders.append(build_adapterhub(s.adapterhub_python, s.model, s.bottleneck, inputs.num_labels, s.seed,
                                               inputs.train, inputs.eval, torch.get_num_threads(), tmp))
        elif name == PEERS["peft"].name:
            contenders.append(build_peft(s.model, inputs.num_labels, s.seed, s.device, tmp))
        else:
            contenders.append(build(name, s.model, s.bottleneck, inputs.num_labels, s.seed, s.device, tmp))
    return contenders


def time_training(contenders: list[Contender], batches: list[Batch], s: Settings,
                  say: Callable[[str], None], precision: str = "fp32") -> Timings:
    """Warm-up and timed training steps in `precision`, interleaved: one step of every contender per round."""
    times = Timings(train={c.name: [] for c in contenders}, losses={c.name: [] for c in contenders})
    for c in contenders:
        if c.model is not None:
            c.model.train()
    for r in range(s.warmup + s.steps):
        say(f"{precision} train round {r + 1}/{s.warmup + s.steps}{' (warm-up)' if r < s.warmup else ''}")
        b = batches[r % len(batches)]
        for c in contenders:
            if c.remote is not None:  # it times its own step, in its process
                seconds, loss = c.remote.train(r % len(batches), precision)
            else:
                with autocast(s.device, precision):
                    seconds, loss = timed(c.step, b, s.device)
            times.losses[c.name].append(loss)
            if r >= s.warmup:
                times.train[c.name].append(seconds)
    return times


def time_evaluation(contenders: list[Contender], inputs: Inputs, s: Settings,
                    say: Callable[[str], None], precision: str = "fp32") -> dict[str, list[float]]:
    """One warm-up round and `eval_steps` timed rounds of a forward pass and argmax, interleaved."""
    batch = {k: v.to(s.device) for k, v in inputs.eval.items() if k != "labels"}
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    for c in contenders:
        if c.model is not None:
            c.model.eval()
    with torch.inference_mode(), autocast(s.device, precision):
        for r in range(1 + s.eval_steps):
            say(f"{precision} eval round {r + 1}/{1 + s.eval_steps}{' (warm-up)' if r == 0 else ''}")
            for c in contenders:
                if c.remote is not None:
                    seconds = c.remote.eval(precision)
                else:
                    seconds, _ = timed(lambda x, c=c: c.model(**x).logits.argmax(-1), batch, s.device)
                if r >= 1:
                    times[c.name].append(seconds)
    return times


def measure_memory(s: Settings, inputs: Inputs, tmp: str, say: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Peak training memory of each contender, each in a fresh child process."""
    names = [n for n in s.names if n not in PEER_OF]  # the peers' memory is not measured
    say(f"peak memory: one child process per contender ({', '.join(names)})")
    specs = [{"name": name, "model": s.model, "dataset": s.dataset, "seq": s.seq, "batch": s.batch,
              "eval_batch": s.eval_batch, "bottleneck": s.bottleneck, "seed": s.seed,
              "threads": torch.get_num_threads(), "device": str(s.device), "steps": s.memory_steps,
              "num_labels": inputs.num_labels, "tmp": tmp} for name in names]
    # RSS does not depend on CPU contention: two children at a time (one on a GPU)
    with ThreadPoolExecutor(max_workers=1 if s.device.type == "cuda" else 2) as pool:
        return dict(zip(names, pool.map(measure_memory_in_child, specs), strict=True))


def result_row(name: str, s: Settings, times: Timings, flops: dict[str, float], counts: tuple[int, int],
               mem: dict[str, Any] | None, bound: dict[str, Any]) -> dict[str, Any]:
    """One contender's row of the result (the ratios between rows are added by `_add_ratios`); its MFU
    is against the GEMM bound of the precision it trained in (fp32)."""
    tt, et = summarize(times.train[name]), summarize(times.eval[name])
    achieved = flops["train_step"] / tt["median"] / 1e9
    eval_achieved = flops["forward_per_example"] * s.eval_batch / et["median"] / 1e9
    (train_mfu, train_raised), (eval_mfu, eval_raised) = mfu(achieved, bound), mfu(eval_achieved, bound)
    return {
        "name": name, "kind": "reference" if name == REFERENCE else "peer" if name in PEER_OF else "product",
        "trainable_params": counts[0], "total_params": counts[1],
        "train_step_seconds": tt, "train_step_seconds_all": times.train[name],
        "train_examples_per_s": s.batch / tt["median"],
        "train_examples_per_s_best": s.batch / tt["min"],  # interference only adds time: an upper bound
        "eval_batch_seconds": et, "eval_examples_per_s": s.eval_batch / et["median"],
        "flops": flops, "train_gflops_per_s": achieved, "train_mfu": train_mfu,
        "eval_gflops_per_s": eval_achieved, "eval_mfu": eval_mfu, "mfu_bound_raised": train_raised or eval_raised,
        "first_loss": times.losses[name][0], "last_loss": times.losses[name][-1],
        "memory": mem,
        "peak_train_memory_mb": mem["peak_train_mb"] if mem is not None else None,
    }


def bench_meta(s: Settings, config: Any, inputs: Inputs) -> dict[str, Any]:
    """The set-up a result was measured with (the load averages are added by the caller)."""
    return {
        "device": str(s.device), "device_name": _device_name(s.device), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "python": platform.python_version(), "model": s.model, "dataset": s.dataset,
        "attn_implementation": getattr(config, "_attn_implementation", None),
        "inputs": inputs.how, "seq": s.seq, "batch": s.batch, "steps": s.steps, "warmup": s.warmup,
        "eval_batch": s.eval_batch, "eval_steps": s.eval_steps, "bottleneck": s.bottleneck, "seed": s.seed,
        "dtype": "float32 weights; " + ", ".join(s.precisions) + " steps",
        "memory_method": MEMORY_METHOD_CUDA if s.device.type == "cuda" else MEMORY_METHOD_CPU,
        "memory_steps": s.memory_steps if s.memory else None,
        "loop": "product: train_one_epoch without accelerate; reference: plain HF loop",
        "interleaved": "round-robin: each round runs one step of every contender",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpu_count": os.cpu_count(),
    }


def _add_ratios(rows: list[dict]) -> None:
    """Ratios to full and to the reference within a precision; `*_ratio_to_fp32`: to the contender's
    own fp32 row (None without one); `*_ratio_to_peer`: an ftcli mode's to its peer's (full: the
    reference; lora: PEFT's; layerwise: AdapterHub's), None without one."""
    by = {(r["name"], r["precision"]): r for r in rows}
    peer_of = {"full": REFERENCE, **{p.against: p.name for p in PEER_OF.values()}}  # ftcli mode -> its peer

    def ratio(value, base):
        return None if value is None or base in (None, 0) else value / base

    for r in rows:
        full, ref, fp32 = by.get(("full", r["precision"])), by[(REFERENCE, r["precision"])], by.get((r["name"], "fp32"))
        r["train_ratio_to_fp32"] = ratio(r["train_examples_per_s"], fp32 and fp32["train_examples_per_s"])
        r["eval_ratio_to_fp32"] = ratio(r["eval_examples_per_s"], fp32 and fp32["eval_examples_per_s"])
        r["train_ratio_to_full"] = ratio(r["train_examples_per_s"], full and full["train_examples_per_s"])
        r["train_ratio_to_reference"] = ratio(r["train_examples_per_s"], ref["train_examples_per_s"])
        r["eval_ratio_to_reference"] = ratio(r["eval_examples_per_s"], ref["eval_examples_per_s"])
        r["memory_ratio_to_reference"] = ratio(r["peak_train_memory_mb"], ref["peak_train_memory_mb"])
        peer = by.get((peer_of.get(r["name"]), r["precision"]))  # ftcli rows whose peer was measured
        r["peer"] = peer and peer["name"]
        r["train_ratio_to_peer"] = ratio(r["train_examples_per_s"], peer and peer["train_examples_per_s"])
        r["eval_ratio_to_peer"] = ratio(r["eval_examples_per_s"], peer and peer["eval_examples_per_s"])


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


def write_json(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, result)
