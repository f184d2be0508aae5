"""`ftcli bench`'s output: the header lines (set-up, GEMM bounds, load) and the table, one row per
contender and precision."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table


def header_lines(result: dict[str, Any]) -> list[str]:
    m, bounds = result["meta"], result["gemm_bound"]
    shapes = "; ".join(f"{p}: " + ", ".join(f"{x['n']} {x['gflops']:.1f}" for x in b["shapes"])
                       + f" -> {b['peak_gflops_per_s']:.1f}" for p, b in bounds.items())
    raised = [f"{r['name']} ({r['precision']})" for r in result["rows"] if r["mfu_bound_raised"]]
    return [
        f"device: {m['device']} ({m['device_name']}) | threads: {m['threads']} | torch {m['torch']} | "
        f"transformers {m['transformers']} | {m['dtype']} | attention: {m['attn_implementation']}",
        f"model: {m['model']} | data: {m['dataset']} sample ({m['inputs']}) | seq {m['seq']} | batch {m['batch']} | "
        f"steps {m['steps']} (+{m['warmup']} warm-up, interleaved) | eval batch {m['eval_batch']} x "
        f"{m['eval_steps']} | bottleneck {m['bottleneck']}",
        f"GEMM upper bound (best GFLOP/s of square torch.mm, n x n x n, on the benchmark's threads; each row's MFU "
        f"is against "
        f"its precision's): {shapes}",
        *([f"faster than the GEMM bound (measured under load?): {', '.join(raised)}; their MFU is shown as 100%"]
          if raised else []),
        f"load average (1/5/15 min) at start {m['loadavg_start']}, at end {m['loadavg_end']} on {m['cpu_count']} CPUs",
    ] + _contention_warning(m) + _cache_note(result)


def _cache_note(result: dict[str, Any]) -> list[str]:
    cacheable = list(dict.fromkeys(r["name"] for r in result["rows"] if r["name"] in ("top", "head")))  # once each
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


def render_table(result: dict[str, Any]) -> Table:
    """One row per contender and precision; the ratios are within a precision, `× fp32` across."""
    def x(v):
        return "-" if v is None else f"{v:.2f}x"

    several = len({r["precision"] for r in result["rows"]}) > 1
    table = Table(title="ftcli bench: training step (median of interleaved steps), evaluation, memory")
    columns = ["mode", *(["precision", "× fp32"] if several else []), "trainable params", "train ex/s", "× full",
               "× ref", "eval ex/s", "eval × fp32", "peak train MB", "mem × ref", "GFLOP/s", "MFU"]
    columns = [c for c in columns if several or c != "eval × fp32"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("mode", "precision") else "right")
    for r in result["rows"]:
        mem = r["peak_train_memory_mb"]
        table.add_row(r["name"], *([r["precision"], x(r["train_ratio_to_fp32"])] if several else []),
                      f"{r['trainable_params']:,}", f"{r['train_examples_per_s']:.2f}",
                      x(r["train_ratio_to_full"]), x(r["train_ratio_to_reference"]), f"{r['eval_examples_per_s']:.1f}",
                      *([x(r["eval_ratio_to_fp32"])] if several else []), "-" if mem is None else f"{mem:.0f}",
                      x(r["memory_ratio_to_reference"]), f"{r['train_gflops_per_s']:.1f}",
                      f"{100 * r['train_mfu']:.0f}%")
    return table


def render_peers(result: dict[str, Any]) -> Table | None:
    """ftcli's modes against their peers, one row per pair and precision, the ratios first (> 1:
    ftcli faster); None when no peer was measured."""
    pairs = [r for r in result["rows"] if r.get("peer")]
    if not pairs:
        return None
    by = {(r["name"], r["precision"]): r for r in result["rows"]}
    table = Table(title="ftcli against its peers: the same batches, interleaved rounds (× > 1: ftcli faster; "
                        "each one's ex/s: the table above)")
    for col in ("ftcli", "peer", "precision", "train ×", "eval ×", "trained params ftcli / peer"):
        table.add_column(col, justify="left" if col in ("ftcli", "peer", "precision") else "right")
    for r in pairs:
        p = by[(r["peer"], r["precision"])]
        table.add_row(r["name"], p["name"], r["precision"], f"{r['train_ratio_to_peer']:.2f}x",
                      f"{r['eval_ratio_to_peer']:.2f}x", f"{r['trainable_params']:,} / {p['trainable_params']:,}")
    return table


# the profile's category headers, short enough for 13 columns in 80 (bench/profiling.py has the names)
SHORT = {"attention (rest)": "attn", "dropout": "drop", "softmax": "smax", "LayerNorm": "LN", "embedding": "emb",
         "adapter ops": "adapt", "optimizer": "optim"}


def render_profile(result: dict[str, Any]) -> Table | None:
    """Where each contender's training step spends its time (bench/profiling.py's categories, % of the
    profiled self time); None without --profile."""
    from .profiling import CATEGORIES

    found = result.get("profile")
    if not found:
        return None
    steps = next(iter(next(iter(found.values())).values()))["steps"]
    table = Table(title=f"where a training step's time goes (torch.profiler, {steps} steps each): ms per step, "
                        "% of self time (to 0.1 in the JSON)",  # 13 columns: no rules and single padding, to fit 80
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in ("mode", "prec", "ms", *(SHORT.get(c, c) for c in CATEGORIES)):  # ms: per step
        table.add_column(col, justify="left" if col in ("mode", "prec") else "right",
                         min_width=max(map(len, found)) if col == "mode" else None)  # names whole, numbers give way
    for name, by_precision in found.items():
        for precision, p in by_precision.items():
            table.add_row(name, precision, f"{p['profiled_ms_per_step']:.0f}",
                          *(f"{100 * p['shares'][cat]:.0f}" for cat in CATEGORIES))
    return table
