"""Faults: kill -9 and resume bit-identically, SIGTERM marks `interrupted`, NaN marks `failed`,
and the saved artifact reloads to exactly the trained model."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_config

from finetune_cli.config import config_from_dict
from finetune_cli.methods.registry import METHOD_NAMES
from finetune_cli.runs.artifacts import ArtifactError, load_run_model
from finetune_cli.runs.folder import RunFolder
from finetune_cli.runs.records import RunSummary

SLOW_ENOUGH = {"data": {"max_train_samples": 400, "max_eval_samples": 32}, "train": {"epochs": 4, "batch_size": 8}}
DETERMINISTIC_KEYS = ("epoch", "train_loss", "val_loss", "val_accuracy", "learning_rate_end")


def write_config(tmp_path: Path, name: str = "run", **sections) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(tiny_config("layerwise", **sections)))
    return path


def ftcli(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "finetune_cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def metrics(folder: Path) -> list[dict]:
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [{k: json.loads(line)[k] for k in DETERMINISTIC_KEYS} for line in lines]


def wait_for_epochs(folder: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        path = folder / "metrics.jsonl"  # written before the epoch's checkpoint (renamed into place whole)
        if path.exists() and len(path.read_text().splitlines()) >= n and (folder / "checkpoint.safetensors").exists():
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("the run did not reach the epoch in time")


def test_kill_9_then_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    config = write_config(tmp_path, **SLOW_ENOUGH)
    whole = ftcli("train", config, "--runs-dir", tmp_path / "a")
    assert whole.wait(timeout=300) == 0, whole.communicate()

    killed = ftcli("train", config, "--runs-dir", tmp_path / "b")
    folder = tmp_path / "b" / "run"
    wait_for_epochs(folder, 1, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    summary = json.loads((folder / "summary.json").read_text())  # consistent JSON, not half-written
    assert summary["status"] == "running"
    assert 1 <= len(metrics(folder)) < 4 and (folder / "checkpoint.safetensors").exists()

    resumed = ftcli("train", config, "--runs-dir", tmp_path / "b", "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "resuming after epoch" in err
    assert metrics(folder) == metrics(tmp_path / "a" / "run")
    a = json.loads((tmp_path / "a" / "run" / "summary.json").read_text())
    b = json.loads((folder / "summary.json").read_text())
    for key in ("best_epoch", "best_val_loss", "best_val_accuracy", "inference_accuracy", "test_loss"):
        assert a[key] == b[key], key
    from safetensors.torch import load_file

    resumed_state = load_file(folder / "trained.safetensors")
    whole_state = load_file(tmp_path / "a" / "run" / "trained.safetensors")
    assert resumed_state.keys() == whole_state.keys()
    assert all(torch.equal(resumed_state[k], whole_state[k]) for k in whole_state)
    assert not (folder / "checkpoint.safetensors").exists()


def test_resume_refuses_a_different_config_and_skips_a_completed_run(tmp_path):
    config = write_config(tmp_path)
    assert ftcli("train", config, "--runs-dir", tmp_path).wait(timeout=300) == 0
    proc = ftcli("train", config, "--runs-dir", tmp_path, "--resume", "--set", "method.bottleneck=4")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "method.bottleneck: differs from the config recorded" in err
    proc = ftcli("train", config, "--runs-dir", tmp_path, "--resume")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "already completed" in err


def test_sigterm_marks_the_run_interrupted(tmp_path):
    config = write_config(tmp_path, **SLOW_ENOUGH)
    proc = ftcli("train", config, "--runs-dir", tmp_path)
    wait_for_epochs(tmp_path / "run", 1, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "interrupted"


def test_nan_loss_stops_the_run_as_failed_and_keeps_its_records(tmp_path, monkeypatch):
    from finetune_cli.training.loop import RunFailed
    from finetune_cli.workflows.train import run_and_record

    real = torch.nn.functional.cross_entropy
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", lambda *a, **k: real(*a, **k) * float("nan"))
    folder = RunFolder.create(tmp_path, "run")
    with pytest.raises(RunFailed, match=r"the training loss became nan; .* \(step 1\)"):
        run_and_record(config_from_dict(tiny_config("layerwise")), folder)
    summary = json.loads((folder.path / "summary.json").read_text())
    assert summary["status"] == "failed" and "loss became nan" in summary["error"]
    assert (folder.path / "config.yaml").exists() and not (folder.path / "trained.safetensors").exists()


@pytest.mark.parametrize("mode", METHOD_NAMES)
def test_reloaded_artifact_gives_identical_logits(tmp_path, mode):
    from finetune_cli.workflows.train import run_and_record

    cfg = config_from_dict(tiny_config(mode))
    folder = RunFolder.create(tmp_path, mode)
    captured = {}

    import finetune_cli.workflows.train as workflows_module

    original = workflows_module.train

    def spy(exp, *args, **kwargs):
        out = original(exp, *args, **kwargs)
        captured["model"] = exp.model
        return out

    workflows_module.train = spy
    try:
        summary = run_and_record(cfg, folder)
    finally:
        workflows_module.train = original
    reloaded = load_run_model(folder.path)
    batch = {"input_ids": torch.randint(1000, 3000, (4, 12)), "attention_mask": torch.ones(4, 12, dtype=torch.long)}
    captured["model"].eval()
    with torch.no_grad():
        assert torch.equal(captured["model"](**batch).logits, reloaded.model(**batch).logits)
    assert summary.status == "completed"


def test_reload_refuses_another_backbone_and_non_safetensors(tmp_path):
    from finetune_cli.workflows.train import run_and_record

    folder = RunFolder.create(tmp_path, "run")
    recorded = run_and_record(config_from_dict(tiny_config("top")), folder)
    summary = json.loads((folder.path / "summary.json").read_text())
    assert recorded.to_json() == summary == RunSummary.from_json(summary).to_json()  # typed, same JSON
    assert list(summary)[:4] == ["schema_version", "name", "status", "dataset"]
    assert list(summary)[-1] == "warnings"
    import finetune_cli.models.tiny as models

    original = models.TINY_SEED
    models.TINY_SEED = 99  # another tiny backbone: different weights, same shapes
    try:
        with pytest.raises(ArtifactError, match="different weights than at training time"):
            load_run_model(folder.path)
    finally:
        models.TINY_SEED = original
    assert summary["backbone_sha256"]
    (folder.path / "trained.safetensors").write_bytes(b"\x80\x04pickle-ish bytes")
    with pytest.raises(ArtifactError, match="not a safetensors file"):
        load_run_model(folder.path)


class Killed(BaseException):
    """Stands for kill -9: no handler sees it, nothing after it runs."""


def epochs_recorded(folder: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_a_kill_right_after_the_last_checkpoint_loses_no_epoch_on_resume(tmp_path, monkeypatch):
    import finetune_cli.training.loop as train_module
    from finetune_cli.workflows.train import run_and_record

    cfg = config_from_dict(tiny_config("layerwise", train={"epochs": 2}))
    real = train_module.save_checkpoint

    def save_then_die(path, model, is_trained, optimizer, scheduler, loop):
        real(path, model, is_trained, optimizer, scheduler, loop)
        if loop.epoch == 2:  # the checkpoint holds epoch 2; metrics.jsonl not yet
            raise Killed

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
    folder = RunFolder.create(tmp_path, "run")
    with pytest.raises(Killed):
        run_and_record(cfg, folder)
    assert epochs_recorded(folder.path) == [1, 2]  # the failed save still recorded epoch 2
    monkeypatch.undo()
    summary = run_and_record(cfg, folder, resume=True)
    assert summary.status == "completed" and epochs_recorded(folder.path) == [1, 2]


@pytest.mark.parametrize("stage", ["finetune_cli.runs.folder.RunFolder.save_trained",
                                   "finetune_cli.workflows.train.load_run_model"])
def test_sigterm_after_the_last_epoch_marks_the_run_interrupted(tmp_path, monkeypatch, stage):
    import os

    from finetune_cli.workflows.train import run_and_record

    class Escaped(BaseException):
        pass

    def escaped(signum, frame):
        raise Escaped("SIGTERM arrived outside the run's handler")

    def sigterm(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler runs here
        raise AssertionError("SIGTERM was not handled")

    previous = signal.signal(signal.SIGTERM, escaped)  # never the default: it would end pytest
    try:
        monkeypatch.setattr(stage, sigterm)
        folder = RunFolder.create(tmp_path, "run")
        with pytest.raises(KeyboardInterrupt):
            run_and_record(config_from_dict(tiny_config("top")), folder)
    finally:
        signal.signal(signal.SIGTERM, previous)
    summary = json.loads((folder.path / "summary.json").read_text())
    assert summary["status"] == "interrupted" and epochs_recorded(folder.path) == [1]


@pytest.mark.parametrize("full_at", ["checkpoint.safetensors", "trained.safetensors"])
def test_a_full_disk_is_one_line_and_marks_the_run_failed(tmp_path, monkeypatch, full_at):
    import errno
    import tempfile

    from typer.testing import CliRunner

    from finetune_cli.cli import app

    real = tempfile.mkstemp

    def disk_full(*args, prefix=None, **kwargs):
        if prefix and prefix.startswith(f".{full_at}."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, prefix=prefix, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", disk_full)
    result = CliRunner().invoke(app, ["train", str(write_config(tmp_path)), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr.splitlines()[-1:] == [
        f"ftcli: error: {tmp_path / 'runs' / 'run' / full_at}: cannot write (No space left on device)"]
    summary = json.loads((tmp_path / "runs" / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and "No space left on device" in summary["error"]
    assert epochs_recorded(tmp_path / "runs" / "run") == [1]  # #24.5: epoch 1 was evaluated: its record stays


def interrupted_run(tmp_path: Path, monkeypatch, **sections) -> tuple[Path, Path]:
    """(config file, run folder) of a 2-epoch run killed right after its first checkpoint."""
    import finetune_cli.training.loop as train_module
    from finetune_cli.workflows.train import run_and_record

    config = write_config(tmp_path, train={"epochs": 2}, **sections)
    real = train_module.save_checkpoint

    def save_then_die(*args):
        real(*args)
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "save_checkpoint", save_then_die)
        folder = RunFolder.create(tmp_path / "runs", "run")
        with pytest.raises(Killed):
            run_and_record(config_from_dict(yaml.safe_load(config.read_text())), folder)
    return config, folder.path


def resume(config: Path, *args):
    from typer.testing import CliRunner

    from finetune_cli.cli import app

    return CliRunner().invoke(app, ["train", str(config), "--runs-dir", str(config.parent / "runs"), *args])


def test_the_advice_for_a_damaged_checkpoint_works(tmp_path, monkeypatch):
    config, folder = interrupted_run(tmp_path, monkeypatch)
    (folder / "checkpoint.safetensors").write_bytes(b"\x00" * 100)
    result = resume(config, "--resume")
    assert result.exit_code == 2, (result.output, result.exception)
    error = result.stderr.splitlines()[-1]  # after the parameter counts
    assert error.startswith(f"ftcli: error: {folder / 'checkpoint.safetensors'}: not a readable ftcli checkpoint "
                            "(SafetensorError); "), error
    assert "delete it and resume" in error and "--overwrite" in error
    assert json.loads((folder / "summary.json").read_text())["status"] == "failed"
    (folder / "checkpoint.safetensors").unlink()  # as advised
    result = resume(config, "--resume")
    assert result.exit_code == 0, (result.output, result.exception)
    assert json.loads((folder / "summary.json").read_text())["status"] == "completed"
    assert epochs_recorded(folder) == [1, 2]


def test_a_checkpoint_of_other_shapes_or_without_rng_state_is_one_line(tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file

    config, folder = interrupted_run(tmp_path, monkeypatch, method={"bottleneck": 4})
    path = folder / "checkpoint.safetensors"
    assert resume(config, "--set", "method.bottleneck=8", "--resume").exit_code == 2  # the config says so first
    config.write_text(config.read_text().replace("bottleneck: 4", "bottleneck: 8"))
    (folder / "config.yaml").write_text((folder / "config.yaml").read_text().replace("bottleneck: 4", "bottleneck: 8"))
    result = resume(config, "--resume")  # a bottleneck-4 checkpoint in a bottleneck-8 run
    assert result.exit_code == 2, (result.output, result.exception)
    error = result.stderr.splitlines()[-1]
    assert error.startswith(f"ftcli: error: {path}: does not fit this run (") and "shape" in error, error

    (tmp_path / "rng").mkdir()
    config, folder = interrupted_run(tmp_path / "rng", monkeypatch)
    path = folder / "checkpoint.safetensors"
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["ftcli_checkpoint"])
    del meta["rng"]
    save_file(load_file(path), path, metadata={"ftcli_checkpoint": json.dumps(meta)})
    result = resume(config, "--resume")
    assert result.exit_code == 2, (result.output, result.exception)
    error = result.stderr.splitlines()[-1]
    assert error.startswith(f"ftcli: error: {path}: does not fit this run (missing 'rng')"), error


def test_a_checkpoint_missing_a_trained_tensor_is_one_line(tmp_path, monkeypatch):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    config, folder = interrupted_run(tmp_path, monkeypatch)
    path = folder / "checkpoint.safetensors"
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(path)
    dropped = sorted(k for k in tensors if k.startswith("model/"))[0]
    del tensors[dropped]  # resuming would silently keep that tensor as initialised
    save_file(tensors, path, metadata=metadata)
    result = resume(config, "--resume")
    assert result.exit_code == 2, (result.output, result.exception)
    error = result.stderr.splitlines()[-1]
    assert error.startswith(f"ftcli: error: {path}: does not fit this run (1 trained tensor(s) missing or "
                            f"unexpected, e.g. {dropped[len('model/'):]}); "), error
