"""`ftcli predict`: several runs loaded into one process (frozen backbone tensors shared), each row
predicted by the runs it names (or by all of them)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.checks import unicode_problem
from ..data.files import read_json_rows
from ..errors import ConfigError, DataError, short_repr
from ..runs.artifacts import check_completed, load_run_model, predict, share_frozen
from ..runs.folder import WEIGHTS_FILE

log = logging.getLogger(__name__)


def read_inputs(texts: list[str], pairs: list[str], file: Path | None) -> list[dict]:
    """Inputs to predict: `--text` (with `--pair` for sentence-pair tasks) or a JSON Lines file."""
    rows = [{"text": t} for t in texts]
    if pairs:
        if len(pairs) != len(texts):
            raise ConfigError("--pair: give one --pair per --text (first text = --text, second = --pair)")
        for row, pair in zip(rows, pairs, strict=True):
            row["pair"] = pair
    if file is not None:
        rows += read_json_rows(file)
    if not rows:
        raise ConfigError("predict: nothing to predict; give --text or --file")
    return rows


def task_inputs(row: dict, fields: tuple[str, ...]) -> dict:
    """A row's texts under a run's text columns: its own columns when it has them all, else `text`
    (and `pair`) in order, as --text/--pair give them, so one input reaches runs of any task."""
    if all(f in row for f in fields):
        return row
    positional = [row.get("text"), row.get("pair")]
    return {**row, **{f: v for f, v in zip(fields, positional, strict=False) if f not in row and v is not None}}


def check_row(number: int, row: dict, run) -> None:
    """The texts a run reads from one input row: present, text, not blank (training refuses blank
    texts, so a prediction for one would be a confident answer to nothing)."""
    missing = [f for f in run.text_fields if f not in row]
    if missing:
        raise DataError(f"input row {number}: run {run.path.name} ({run.spec.name}) needs "
                        f"{', '.join(run.text_fields)}; missing {', '.join(missing)}")
    for field in run.text_fields:
        value = row[field]
        if not isinstance(value, str):
            raise DataError(f"input row {number}: {field!r} is not text (got {short_repr(value)})")
        if not value.strip():
            raise DataError(f"input row {number}: {field!r} is empty; there is nothing to classify")
        if unicode_problem(value):
            raise DataError(f"input row {number}: {field!r} {unicode_problem(value)}")


@dataclass(frozen=True)
class Predictions:
    """What `ftcli predict` prints: one JSON-ready prediction per (input row, run), and the bytes."""

    rows: list[dict[str, Any]]  # index, run, label, label_id, probabilities; by index, then run
    run_bytes: dict[str, int]  # run folder name -> size of its trained file, in the order given
    full_model_bytes: int  # one full copy of the model
    shared_bytes_saved: int  # frozen tensors held once in memory instead of once per run

    def sizes_line(self) -> str:
        """`on disk per task: ag 0.01 MB; a full model copy: 90.87 MB; frozen tensors shared ...`."""
        per_task = ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in self.run_bytes.items())
        return (f"on disk per task: {per_task}; a full model copy: {self.full_model_bytes / 1e6:.2f} MB; "
                f"frozen tensors shared in memory: {self.shared_bytes_saved / 1e6:.2f} MB")


PRECISIONS = {"run": None, "fp32": "no", "bf16": "bf16"}  # --precision -> autocast (None: the run's own)


def precision_here(run, precision: str) -> str:
    """--precision as autocast here: `run` is the run's own, but bf16 only where this machine does it
    natively (predict runs on the CPU; emulated bf16 would be slower than fp32)."""
    from ..training.devices import native_bf16  # here: accelerate loads only when a prediction is made

    if precision != "run":
        return PRECISIONS[precision]
    own = run.cfg.train.mixed_precision
    if own == "bf16" and not native_bf16()[0]:
        log.info("%s trained in bf16; this machine has no native bf16, so it predicts in fp32", run.path.name)
        return "no"
    return "no" if own == "fp16" else own  # fp16 is a GPU's; predict runs on the CPU


def predict_runs(run_dirs: list[Path], rows: list[dict], force: bool = False, precision: str = "run",
                 batch_size: int = 64) -> Predictions:
    """Load every run into one process (frozen backbone tensors shared) and predict.

    A row with a `run` field goes to that run (folder name) only; other rows go to every run. A run
    that is not `completed` is refused unless `force`. `precision`: run (each run's own: what its test
    metrics were measured in), fp32 or bf16.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision: got {precision!r}, expected one of {', '.join(PRECISIONS)}")
    names = [Path(p).name for p in run_dirs]
    if len(set(names)) != len(names):
        raise ConfigError("predict: two runs have the same folder name; rename one")
    for i, row in enumerate(rows, start=1):
        if not isinstance(row.get("run", ""), str):
            raise DataError(f"input row {i}: run: expected the name of a run folder, got {short_repr(row['run'])}")
    unknown = {row["run"] for row in rows if "run" in row} - set(names)
    if unknown:
        raise ConfigError(f"predict: rows name runs that were not given: {', '.join(sorted(unknown))}")
    for path in run_dirs:
        check_completed(path, force)
    runs = [load_run_model(p) for p in run_dirs]
    if any("pair" in row for row in rows) and all(len(r.text_fields) < 2 and "pair" not in r.text_fields for r in runs):
        raise ConfigError("--pair: every run given takes one text (it would be ignored); drop --pair or the "
                          "`pair` field")
    saved = share_frozen(runs)
    out: list[dict] = []
    for run in runs:
        selected = [(i, task_inputs(row, run.text_fields)) for i, row in enumerate(rows)
                    if row.get("run", run.path.name) == run.path.name]
        for i, row in selected:
            check_row(i + 1, row, run)
        preds = predict(run, [row for _, row in selected], batch_size, precision_here(run, precision))
        out += [{"index": i, "run": run.path.name, **p} for (i, _), p in zip(selected, preds, strict=True)]
    return Predictions(rows=sorted(out, key=lambda p: (p["index"], p["run"])),
                       run_bytes={r.path.name: (r.path / WEIGHTS_FILE).stat().st_size for r in runs},
                       full_model_bytes=sum(p.numel() * p.element_size() for p in runs[0].model.parameters()),
                       shared_bytes_saved=saved)
