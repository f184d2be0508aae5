"""`ftcli sweep`: deterministic names, grid x rules, dry run, resumability."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import CONFIGS, ftcli

from finetune_cli.errors import ConfigError
from finetune_cli.workflows.sweep import load_sweep


def write_sweep(tmp_path, **extra):
    data = {"base": str(CONFIGS / "smoke" / "layerwise.yaml"), "name": "tiny",
            "set": {"data.max_train_samples": 32, "data.max_eval_samples": 16, "train.epochs": 1},
            "grid": {"method.mode": ["full", "top"], "seed": [0, 1]},
            "rules": [{"if": {"method.mode": "full"}, "set": {"train.learning_rate": 3.0e-5}}], **extra}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_grid_names_and_rules(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path))
    names = ["mode=full_seed=0", "mode=full_seed=1", "mode=top_seed=0", "mode=top_seed=1"]
    assert [r.name for r in sweep.runs] == names
    lrs = {r.name: r.cfg.train.learning_rate for r in sweep.runs}
    assert lrs["mode=full_seed=1"] == 3e-5 and lrs["mode=top_seed=0"] == 1e-3
    assert all(r.cfg.data.max_train_samples == 32 for r in sweep.runs)


def test_every_run_is_validated_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match="method.bottleneck: got 0"):
        load_sweep(write_sweep(tmp_path, grid={"method.bottleneck": [4, 0]}))
    with pytest.raises(ConfigError, match="grid.seed: expected a non-empty list"):
        load_sweep(write_sweep(tmp_path, grid={"seed": 3}))
    with pytest.raises(ConfigError, match="runs: unknown sweep key"):
        load_sweep(write_sweep(tmp_path, runs=1))


SWEEPS = sorted(p for p in CONFIGS.rglob("*.yaml") if p.read_text().startswith("# ftcli sweep"))


def test_the_claim_data_size_and_paper_sweeps_are_shipped():
    names = {p.relative_to(CONFIGS).as_posix() for p in SWEEPS}
    assert {"sweeps/claim.yaml", "sweeps/data_size.yaml", "paper/sweep.yaml"} <= names


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_shipped_sweeps_load(path):
    sweep = load_sweep(path)
    assert len(sweep.runs) >= 8 and path.read_text().startswith(f"# ftcli sweep {path.relative_to(CONFIGS.parent)}")
    dry = ftcli("sweep", path, "--dry-run", "--runs-dir", "/nonexistent-runs")
    assert dry.exit_code == 0 and dry.stdout.split()[::2] == ["new"] * len(sweep.runs)


def test_the_paper_sweep_is_the_papers_grid_on_bert_base_in_native_bf16():
    runs = load_sweep(CONFIGS / "paper" / "sweep.yaml").runs
    assert {r.cfg.model.name for r in runs} == {"bert-base-uncased"}
    assert {r.cfg.train.mixed_precision for r in runs} == {"auto"}  # bf16 on a GPU (or CPU) that does it natively
    adapters = [r.cfg for r in runs if r.cfg.method.mode != "full"]
    assert {c.method.bottleneck for c in adapters} == {8, 64, 256}
    assert {c.train.learning_rate for c in adapters} == {3e-5, 3e-4, 3e-3}
    assert {c.train.epochs for c in adapters} == {3, 20}
    assert {(r.cfg.data.source, r.cfg.data.max_train_samples) for r in runs} == {("hub", None)}


def test_sweep_runs_then_skips_completed_and_redoes_broken(tmp_path):
    path, runs = write_sweep(tmp_path), tmp_path / "runs"
    result = ftcli("sweep", path, "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("completed") == 4
    summary = runs / "tiny" / "mode=top_seed=1" / "summary.json"
    data = json.loads(summary.read_text())
    summary.write_text(json.dumps({**data, "status": "interrupted"}))
    dry = ftcli("sweep", path, "--runs-dir", runs, "--dry-run")
    expected = [("done", "mode=full_seed=0"), ("done", "mode=full_seed=1"), ("done", "mode=top_seed=0"),
                ("resume", "mode=top_seed=1")]
    assert dry.stdout.split() == [x for status, name in expected for x in (status, str(runs / "tiny" / name))]
    again = ftcli("sweep", path, "--runs-dir", runs)
    assert again.exit_code == 0 and again.stdout.count("completed") == 1 and again.stdout.count("done") == 3
    rows = json.loads(ftcli("compare", runs, "--format", "json").stdout)
    assert sorted((r["mode"], r["n"]) for r in rows) == [("full", 2), ("top", 2)]
    assert all(r["inference_accuracy_sem"] is not None for r in rows)


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/escaped", "a/b", ".hidden"])  # noqa: S108 - hostile names, never written
def test_a_sweep_name_is_one_folder_name_like_a_run_name(tmp_path, name):
    with pytest.raises(ConfigError, match="name: "):
        load_sweep(write_sweep(tmp_path, name=name))


def test_grid_values_that_print_alike_are_refused_before_the_first_run(tmp_path):
    path = write_sweep(tmp_path, grid={"train.learning_rate": [1e-4, 1.0000001e-4]})
    with pytest.raises(ConfigError, match=r"learning_rate=0\.0001 and learning_rate=0\.00010000001"):
        load_sweep(path)


def test_two_sweeps_at_once_never_train_the_same_run_twice(tmp_path):
    import os
    import subprocess
    import sys

    path, runs = write_sweep(tmp_path), tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(CONFIGS.parent)}
    command = [sys.executable, "-m", "finetune_cli", "sweep", str(path), "--runs-dir", str(runs)]
    launchers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in launchers]
    # a launcher that found runs busy says so in its last line and exits 1 (it did not finish the sweep)
    assert all(p.returncode == 0 or (p.returncode == 1 and "another launcher holds them" in err.splitlines()[-1])
               for p, (_, err) in zip(launchers, outputs, strict=True)), [err[-2000:] for _, err in outputs]
    completed = [line.split()[1] for out, _ in outputs for line in out.splitlines() if line.startswith("completed")]
    assert sorted(completed) == sorted(str(runs / "tiny" / n) for n in
                                       ("mode=full_seed=0", "mode=full_seed=1", "mode=top_seed=0", "mode=top_seed=1"))
    for folder in (runs / "tiny").iterdir():
        metrics = (folder / "metrics.jsonl").read_text().splitlines()
        assert len(metrics) == 1 and json.loads((folder / "summary.json").read_text())["status"] == "completed"
    assert not list((runs / "tiny").glob(".*.lock"))  # every lock released


def test_a_lock_of_a_dead_process_is_taken_over_and_one_of_another_host_is_respected(tmp_path):
    import socket
    import subprocess
    import sys

    path, runs = write_sweep(tmp_path, grid={"method.mode": ["top"], "seed": [0, 1]}), tmp_path / "runs"
    (runs / "tiny").mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (runs / "tiny" / ".mode=top_seed=0.lock").write_text(
        json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout), "since": 0}))
    (runs / "tiny" / ".mode=top_seed=1.lock").write_text(json.dumps({"host": "elsewhere", "pid": 1, "since": 0}))
    result = ftcli("sweep", path, "--runs-dir", runs)
    assert result.exit_code == 1, result.output
    assert result.stdout.split() == ["completed", str(runs / "tiny" / "mode=top_seed=0"),
                                     "busy", str(runs / "tiny" / "mode=top_seed=1")]
    assert "mode=top_seed=1 is being trained by elsewhere pid 1; skipped" in result.output
    assert result.output.strip().splitlines()[-1] == (
        "ftcli: error: 1 runs of tiny were skipped: another launcher holds them; rerun once it is done")
    assert not (runs / "tiny" / "mode=top_seed=1").exists()


def test_an_edited_sweep_reports_its_old_runs_as_differs_never_done(tmp_path):
    """#24.1: a changed value (in the file or by --set) is not the run recorded in the folder."""
    path, runs = write_sweep(tmp_path, grid={"method.mode": ["top"], "seed": [0]}), tmp_path / "runs"
    assert ftcli("sweep", path, "--runs-dir", runs).exit_code == 0
    folder = str(runs / "tiny" / "mode=top_seed=0")
    for extra in (["--set", "train.batch_size=8"], []):
        if not extra:  # the same change, made in the file
            data = yaml.safe_load(path.read_text())
            path.write_text(yaml.safe_dump({**data, "set": {**data["set"], "train.epochs": 2}}))
        for dry in ([], ["--dry-run"]):
            result = ftcli("sweep", path, "--runs-dir", runs, *extra, *dry)
            key = "train.batch_size" if extra else "train.epochs"
            assert result.stdout.strip() == f"differs   {folder}  ({key} differs)"
            assert result.exit_code == 1 and "hold a run of another config" in result.output.splitlines()[-1]
    assert json.loads((runs / "tiny" / "mode=top_seed=0" / "summary.json").read_text())["epochs"] == 1  # untouched


def test_an_empty_lock_is_taken_over_once_old_and_a_recycled_pid_does_not_hold_a_lock(tmp_path):
    """#24.8: a launcher killed between creating its lock and writing its owner, or a lock whose pid
    now belongs to a younger process, would otherwise leave the run `busy` forever."""
    import os
    import socket
    import time

    from finetune_cli.workflows.sweep_lock import EMPTY_LOCK_SECONDS, run_lock

    empty = tmp_path / ".empty.lock"
    empty.write_text("")
    with run_lock(empty) as held_by:
        assert held_by == "? pid ?"  # young: maybe being written right now
    old = time.time() - EMPTY_LOCK_SECONDS - 1
    os.utime(empty, (old, old))
    with run_lock(empty) as held_by:
        assert held_by is None
    recycled = tmp_path / ".recycled.lock"  # this very process, but "since" before it started
    recycled.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": 1.0}))
    with run_lock(recycled) as held_by:
        assert held_by is None
    alive = tmp_path / ".alive.lock"
    alive.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}))
    with run_lock(alive) as held_by:
        assert held_by == f"{socket.gethostname()} pid {os.getpid()}"


def test_a_huge_grid_is_counted_and_refused_before_any_run_is_built(tmp_path):
    """#24.9: 10^10 cells used to hang --dry-run silently."""
    import time

    grid = {f"train.{k}": list(range(1, 101)) for k in ("epochs", "batch_size", "eval_batch_size")}
    path = write_sweep(tmp_path, grid={**grid, "seed": list(range(10_000))})
    started = time.perf_counter()
    result = ftcli("sweep", path, "--dry-run")
    assert time.perf_counter() - started < 5
    assert result.exit_code == 2
    assert "the grid makes at least 10,000,000,000 runs, more than --max-cells 10,000" in result.output
    small = write_sweep(tmp_path, grid={"seed": list(range(3))})
    assert ftcli("sweep", small, "--dry-run", "--max-cells", "2").exit_code == 2
    listed = ftcli("sweep", small, "--dry-run", "--max-cells", "3", "--runs-dir", tmp_path / "r")
    assert listed.exit_code == 0 and "sweep tiny: 3 runs" in listed.output
