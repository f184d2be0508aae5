"""What each CLI command does, as plain functions (the CLI only parses and renders)."""

from __future__ import annotations

from pathlib import Path

from .config import RunConfig, default_run_name
from .results import RunFolder


def train_from_config(cfg: RunConfig, config_path: Path, runs_dir: Path, overwrite: bool, console) -> dict:
    """Create the run folder (refusing to overwrite silently) and run the config into it."""
    from accelerate import PartialState

    from .train import run_and_record

    folder = RunFolder.create(runs_dir, default_run_name(cfg, config_path), overwrite,
                              enabled=PartialState().is_main_process)
    return run_and_record(cfg, folder, console)
