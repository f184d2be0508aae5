"""Compare rows drawn: the terminal's rich table, and markdown, CSV or JSON text."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from rich.table import Table

from ..data.metrics import METRIC_TEXT, score_text, value_text
from .compare import value_order

SHORT = {"accuracy": "acc", "macro_f1": "macro-F1", "mcc": "MCC", "f1": "F1", "micro_f1": "micro-F1",
         "subset_accuracy": "subset acc", "pearson": "Pearson", "spearman": "Spearman", "mse": "MSE"}  # in headers


def one_metric(rows: list[dict], metric: str) -> str | None:
    """The metric every row shows (`--metric`, or with auto the rows' one headline); None: they differ."""
    if metric != "auto":
        return metric
    found = {r["metric"] for r in rows}
    return found.pop() if len(found) == 1 else None


def metric_columns(metric: str | None) -> list[tuple[str, Any]]:
    """The table's columns (header, renderer); the validation and test columns show `metric`, or
    (None: rows of different metrics) each row's own, named in a `metric` column."""
    scores = [(f"best val {SHORT[metric]}", lambda r: _pm(r, f"best_val_{metric}", 4)),
              (f"inference {SHORT[metric]}", lambda r: _pm(r, f"inference_{metric}", 4))] if metric else [
        ("metric", lambda r: SHORT[r["metric"]]), ("best val", lambda r: _pm(r, f"best_val_{r['metric']}", 4)),
        ("inference", lambda r: _pm(r, f"inference_{r['metric']}", 4))]
    return [
        ("name", lambda r: r["name"] + (f" (n={r['n']})" if r["n"] > 1 else "") + (" !" if r.get("warnings") else "")),
        ("dataset", lambda r: r["dataset"]),
        ("mode", lambda r: r["mode"]),
        ("prec", lambda r: r.get("precision", "fp32")),
        ("m", lambda r: "-" if r["bottleneck"] is None else str(r["bottleneck"])),
        ("trained params (% of backbone)", lambda r: f"{r['trainable_params']:,} ({r['backbone_pct']:.2f}%)"),
        ("best val loss", lambda r: _pm(r, "best_val_loss", 4)),
        *scores,
        ("vs full (pts)", lambda r: "-" if r["diff_to_full"] is None else f"{r['diff_to_full']:+.2f}"),
        ("epochs", lambda r: str(r["epochs"])),
        ("train s", lambda r: _pm(r, "train_seconds", 1)),
        ("train ex/s", lambda r: _pm(r, "train_examples_per_s", 1)),
        ("peak MB", lambda r: _pm(r, "peak_memory_mb", 0)),
        ("data", lambda r: f"{r['data_source']} ({r['data_sizes']['train']}/{r['data_sizes']['validation']}/"
                           f"{r['data_sizes']['test']})"),
    ]


def _best_of_cell(row: dict) -> str:
    """`learning_rate=0.0001 (of 3: val 0.8790/0.8840/0.8610)`: the chosen setting and every candidate's
    mean validation value of the row's metric, in the order of the values."""
    chosen = ", ".join(f"{k.rsplit('.', 1)[-1]}={_value_text(v)}" for k, v in row["best_of"].items())
    ordered = sorted(row["candidates"], key=lambda c: value_order(c["values"]))
    key = f"best_val_{row['metric']}"
    scores = "/".join("-" if c[key] is None else f"{c[key]:.4f}" for c in ordered)
    return f"{chosen} (of {len(ordered)}: val {scores})"


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# Left out of the terminal table unless --wide (markdown, CSV and JSON have them all): what the
# narrow table keeps answers "how close, at what cost" in about 100 columns
WIDE_ONLY = ("best val loss", "epochs", "train ex/s", "data")
NARROW_HEADERS = {"trained params (% of backbone)": "trained params (%)", "vs full (pts)": "vs full"}


def columns(rows: list[dict], metric: str = "auto", wide: bool = True) -> list[tuple[str, Any]]:
    """The table's columns: with --best-of, the chosen setting follows the mode. Narrow (not `wide`):
    without WIDE_ONLY, the validation scores, the data set when every row has the same one, and the
    precision when every row trained in fp32."""
    metric = one_metric(rows, metric)
    shown = metric_columns(metric)
    if not wide:
        one_dataset = len({r["dataset"] for r in rows}) == 1
        all_fp32 = all(r.get("precision", "fp32") == "fp32" for r in rows)
        shown = [(NARROW_HEADERS.get(h, h), f) for h, f in shown if h not in WIDE_ONLY
                 and not h.startswith("best val") and not (h == "dataset" and one_dataset)
                 and not (h == "prec" and all_fp32)]
    if not any("best_of" in r for r in rows):
        return shown
    at = [h for h, _ in shown].index("m") + 1
    header = f"best of (mean val {SHORT[metric]} per value)" if metric else "best of (mean val per value)"
    return [*shown[:at], (header, _best_of_cell), *shown[at:]]


def _pm(row: dict, metric: str, digits: int) -> str:
    if row.get(metric) is None:
        return "-"
    text = f"{row[metric]:.{digits}f}"
    return text if row[metric + "_sem"] is None else f"{text} ± {row[metric + '_sem']:.{digits}f}"


def render_text(rows: list[dict], fmt: str, metric: str = "auto") -> str:
    """Markdown, CSV or JSON text of the compare rows (JSON and CSV hold every score the runs
    recorded; markdown, as the table, shows `metric`)."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    shown = columns(rows, metric)
    cells = [[render(r) for _, render in shown] for r in rows]
    headers = [h for h, _ in shown]
    if fmt == "csv":  # flat columns only; --best-of's chosen values as `best_of.<dotted key>`
        flat = [{**{k: v for k, v in r.items() if k not in ("runs", "seeds", "data_sizes", "candidates", "best_of")},
                 **{f"best_of.{k}": v for k, v in (r.get("best_of") or {}).items()},
                 "warnings": " | ".join(r["warnings"])} for r in rows]
        out = io.StringIO()
        fields = list(dict.fromkeys(k for r in flat for k in r))  # rows of other task types have other scores
        writer = csv.DictWriter(out, fieldnames=fields, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
        return out.getvalue()
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines) + "\n"


def render_table(rows: list[dict], title: str, metric: str = "auto", wide: bool = True) -> Table:
    """A rich Table of the compare rows (for the terminal); a row with warnings is marked `!`."""
    table = Table(title=title)
    shown = columns(rows, metric, wide)
    for header, _ in shown:
        table.add_column(header, justify="left" if header in ("name", "dataset", "mode", "data") else "right",
                         overflow="fold")
    for row in rows:
        table.add_row(*(render(row) for _, render in shown))
    return table


def result_line(summary, runs_dir: Path) -> str:
    """`inference accuracy (test, best epoch 2): 0.8920 | macro-F1 0.8916 | ... | run folder: ...`:
    the metric the run was selected by first, then the task type's other test scores."""
    outcome = summary.outcome
    scores = dict(outcome.test_scores)
    first = outcome.select_metric if outcome.select_metric in scores else next(iter(scores))
    rest = "".join(f" | {score_text(m, v)}" for m, v in scores.items() if m != first)
    return (f"inference {METRIC_TEXT[first]} (test, best epoch {outcome.best_epoch}): {value_text(scores[first])}"
            f"{rest} | run folder: {runs_dir / summary.name}")
