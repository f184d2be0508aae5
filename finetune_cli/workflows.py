"""What each CLI command does, as plain functions (the CLI only parses and renders)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .config import RunConfig, config_to_dict, default_run_name, read_yaml
from .errors import ConfigError, short_repr
from .results import CONFIG_FILE, RunFolder, check_writable, normalized, read_summary

log = logging.getLogger(__name__)


def first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    """The first dotted key where two nested mappings differ (None when equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if a == b else prefix.rstrip(".")


def train_from_config(cfg: RunConfig, config_path: Path, runs_dir: Path, overwrite: bool, console,
                      resume: bool = False) -> dict:
    """Run a config into runs_dir/NAME. Refuses to overwrite silently; `resume` continues an
    interrupted run from its last epoch checkpoint (a completed run is left as it is)."""
    from .train import distributed_state, prepare_experiment, run_and_record

    path = Path(runs_dir) / default_run_name(cfg, config_path)
    enabled = distributed_state().is_main_process
    if enabled:
        check_writable(path, "--runs-dir")  # fail before minutes of loading, not after
    if resume and (path / CONFIG_FILE).exists():
        key = first_difference(config_to_dict(cfg), normalized(read_yaml(path / CONFIG_FILE)))
        if key is not None:
            raise ConfigError(f"{key}: differs from the config recorded in {path}; "
                              "resume with the same config, or start a new run with --name")
        summary = read_summary(path)
        if summary.get("status") == "completed":
            log.info("%s is already completed; nothing to resume", path)
            return summary
        return run_and_record(cfg, RunFolder(path, enabled), console, resume=True)
    if enabled:
        RunFolder.check_free(path, overwrite)  # fail before minutes of loading, not after
    exp = prepare_experiment(cfg)  # data or model errors leave no folder behind
    folder = RunFolder.create(runs_dir, path.name, overwrite, enabled=enabled)
    return run_and_record(cfg, folder, console, exp=exp)


def read_inputs(texts: list[str], pairs: list[str], file: Path | None) -> list[dict]:
    """Inputs to predict: `--text` (with `--pair` for sentence-pair tasks) or a JSON Lines file."""
    from .data import read_json_rows

    rows = [{"text": t, "premise": t} for t in texts]
    if pairs:
        if len(pairs) != len(texts):
            raise ConfigError("--pair: give one --pair per --text (premise = --text, hypothesis = --pair)")
        for row, pair in zip(rows, pairs, strict=True):
            row["hypothesis"] = pair
    if file is not None:
        rows += read_json_rows(file)
    if not rows:
        raise ConfigError("predict: nothing to predict; give --text or --file")
    return rows


def predict_runs(run_dirs: list[Path], rows: list[dict]) -> tuple[list[dict], dict[str, int]]:
    """Load every run into one process (frozen backbone tensors shared) and predict.

    A row with a `run` field goes to that run (folder name) only; other rows go to every run.
    Returns the predictions and the bytes: per-task trained files, a full model copy, memory saved.
    """
    from .artifacts import load_run_model, predict, share_frozen
    from .data import DataError, unicode_problem
    from .results import WEIGHTS_FILE

    names = [Path(p).name for p in run_dirs]
    if len(set(names)) != len(names):
        raise ConfigError("predict: two runs have the same folder name; rename one")
    for i, row in enumerate(rows, start=1):
        if not isinstance(row.get("run", ""), str):
            raise DataError(f"input row {i}: run: expected the name of a run folder, got {short_repr(row['run'])}")
    unknown = {row["run"] for row in rows if "run" in row} - set(names)
    if unknown:
        raise ConfigError(f"predict: rows name runs that were not given: {', '.join(sorted(unknown))}")
    runs = [load_run_model(p) for p in run_dirs]
    saved = share_frozen(runs)
    out: list[dict] = []
    for run in runs:
        selected = [(i, row) for i, row in enumerate(rows) if row.get("run", run.path.name) == run.path.name]
        for i, row in selected:
            missing = [f for f in run.text_fields if not isinstance(row.get(f), str)]
            if missing:
                raise DataError(f"input row {i + 1}: run {run.path.name} ({run.cfg.data.dataset}) needs "
                                f"{', '.join(run.text_fields)}; missing {', '.join(missing)}")
            for field in run.text_fields:
                if unicode_problem(row[field]):
                    raise DataError(f"input row {i + 1}: {field!r} {unicode_problem(row[field])}")
        preds = predict(run, [row for _, row in selected])
        out += [{"index": i, "run": run.path.name, **p} for (i, _), p in zip(selected, preds, strict=True)]
    full_bytes = sum(p.numel() * p.element_size() for p in runs[0].model.parameters())
    sizes = {"full_model_bytes": full_bytes, "shared_bytes_saved": saved,
             **{f"{r.path.name}_bytes": (r.path / WEIGHTS_FILE).stat().st_size for r in runs}}
    return sorted(out, key=lambda p: (p["index"], p["run"])), sizes
