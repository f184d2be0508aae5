"""Epoch-end checkpoints: everything needed to continue a run bit-identically, in ONE safetensors
file written atomically (no pickle: tensors in the file, everything else as JSON metadata)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save

from ..errors import FtcliError, first_line
from ..runs.folder import write_atomic
from ..runs.records import EpochRecord, RecordError

CHECKPOINT_FILE = "checkpoint.safetensors"


@dataclass
class LoopState:
    """What the loop carries from one epoch to the next."""

    epoch: int  # epochs completed
    metrics: list[EpochRecord]  # one record per evaluation so far
    best: EpochRecord | None  # the record of the best evaluation so far
    best_state: dict[str, torch.Tensor]  # trained parameters at the best epoch
    train_seconds: float
    examples: int


def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    np_state = np.random.get_state()
    tensors = {"rng/torch": torch.get_rng_state(), "rng/numpy": torch.from_numpy(np_state[1].astype(np.int64))}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = state
    meta = {"python": _to_json(random.getstate()), "numpy": [np_state[0], *np_state[2:]]}
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng/torch"])
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["rng/numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(_to_tuple(meta["python"]))
    cuda = [tensors[k] for k in sorted(t for t in tensors if t.startswith("rng/cuda/"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def _to_json(value: Any) -> Any:
    return [_to_json(v) for v in value] if isinstance(value, (tuple, list)) else value


def _to_tuple(value: Any) -> Any:
    return tuple(_to_tuple(v) for v in value) if isinstance(value, list) else value


def save_checkpoint(path: Path, model: torch.nn.Module, is_trained, optimizer, scheduler, loop: LoopState) -> None:
    """Write the checkpoint of a completed epoch atomically."""
    tensors: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        if is_trained(name):
            tensors[f"model/{name}"] = p.detach().cpu().contiguous()
    for name, t in loop.best_state.items():
        tensors[f"best/{name}"] = t
    opt = optimizer.state_dict()
    for idx, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"optim/{idx}/{key}"] = torch.as_tensor(value).detach().cpu().clone()
    rng_tensors, rng_meta = capture_rng()
    tensors.update(rng_tensors)
    meta = {"epoch": loop.epoch, "metrics": [m.to_json() for m in loop.metrics],
            "best": None if loop.best is None else loop.best.to_json(),
            "train_seconds": loop.train_seconds, "examples": loop.examples,
            "param_groups": _to_json(opt["param_groups"]), "scheduler": scheduler.state_dict(), "rng": rng_meta}
    write_atomic(path, save(tensors, metadata={"ftcli_checkpoint": json.dumps(meta)}))


class CheckpointError(FtcliError):
    exit_code = 2


# What works: the run starts again in its folder (resume without a checkpoint), or in a new one.
RESTART = "delete it and resume to start the run again from its first epoch, or train with --overwrite"


def load_checkpoint(path: Path, model: torch.nn.Module, is_trained, optimizer, scheduler) -> LoopState:
    """Restore model, optimizer, scheduler and RNG states; return the loop state to go on from.
    The checkpoint must hold exactly the parameters `is_trained` selects (as a run's trained file)."""
    meta, tensors = read_checkpoint(path)
    try:
        check_names(tensors, model, is_trained)
        check_shapes(tensors, model)
        return restore(meta, tensors, model, optimizer, scheduler)
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, RecordError) as e:
        reason = f"missing {e}" if isinstance(e, KeyError) else first_line(e)
        raise CheckpointError(f"{path}: does not fit this run ({reason}); {RESTART}") from None


def read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["ftcli_checkpoint"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no items()
    except Exception as e:  # a damaged checkpoint, whatever safetensors raises: one clear line
        raise CheckpointError(f"{path}: not a readable ftcli checkpoint ({e.__class__.__name__}); {RESTART}") from e
    return meta, tensors


def check_names(tensors: dict[str, torch.Tensor], model: torch.nn.Module, is_trained) -> None:
    """The checkpoint's model tensors are exactly the trained parameters: none missing (it would
    resume with that tensor as initialised), none from another mode."""
    saved = {k[len("model/"):] for k in tensors if k.startswith("model/")}
    expected = {n for n, _ in model.named_parameters() if is_trained(n)}
    if saved != expected:
        odd = sorted(saved ^ expected)
        raise ValueError(f"{len(odd)} trained tensor(s) missing or unexpected, e.g. {odd[0]}")


def check_shapes(tensors: dict[str, torch.Tensor], model: torch.nn.Module) -> None:
    """The trained and best-epoch tensors have the model's shapes (not those of another bottleneck)."""
    params = dict(model.named_parameters())
    for key, t in tensors.items():
        kind, _, name = key.partition("/")
        if kind in ("model", "best") and name in params and t.shape != params[name].shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, the model's is {tuple(params[name].shape)}")


def restore(meta: dict[str, Any], tensors: dict[str, torch.Tensor], model: torch.nn.Module, optimizer,
            scheduler) -> LoopState:
    params = {k[len("model/"):]: t for k, t in tensors.items() if k.startswith("model/")}
    model.load_state_dict(params, strict=False)  # the frozen rest is the model's own; names checked above
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        if key.startswith("optim/"):
            _, idx, name = key.split("/", 2)
            state.setdefault(int(idx), {})[name] = t
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    scheduler.load_state_dict(meta["scheduler"])
    restore_rng(tensors, meta["rng"])
    best_state = {k[len("best/"):]: t for k, t in tensors.items() if k.startswith("best/")}
    metrics = [EpochRecord.from_json(m, "checkpoint") for m in meta["metrics"]]  # unversioned: an older ftcli's
    best = None if meta["best"] is None else EpochRecord.from_json(meta["best"], "checkpoint")
    return LoopState(meta["epoch"], metrics, best, best_state, meta["train_seconds"], meta["examples"])
