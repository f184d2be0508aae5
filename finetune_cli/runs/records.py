"""What a run folder records, as typed values: one `EpochRecord` per evaluation (metrics.jsonl) and the
`RunSummary` (summary.json). Both are written from these dataclasses and read back into them; every
record on disk carries `schema_version`.

Scores are written flat, `val_<metric>` in an evaluation record and `best_val_<metric>` /
`inference_<metric>` (test) in the summary, for whichever metrics the task type's objective has
(data/objective.py); they are read back into mappings of metric -> value.

Version 1 is what ftcli wrote before records had a version (no `schema_version` key): the same keys,
some of them absent in older folders (read back as None); version 2 added the key; version 3 the
task types (`task_type`, their metrics, `best_val_accuracy` and `inference_accuracy` no longer
always present); version 4 the encoder family (`model_type`, `layout`, `targets`); version 5 the
resolved `learning_rate` and `warnings` (e.g. a collapsed model); version 6 the resolved
`mixed_precision` (auto: what this machine does natively). A folder written by a newer ftcli
(a higher version) is refused with one line instead of being half-understood.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import FtcliError

SCHEMA_VERSION = 6  # 2: `schema_version` in every record; 3: task types and their metrics; 4: model family;
# 5: the resolved learning rate and the kept model's warnings; 6: the resolved mixed precision
UNVERSIONED = 1  # records written before they carried a version


class RecordError(FtcliError):
    """A record that this ftcli cannot read (e.g. written by a newer one)."""


def read_version(data: dict[str, Any], where: str) -> int:
    """The schema version of a record read from disk; a newer one than this ftcli's is refused."""
    version = data.get("schema_version", UNVERSIONED)
    if type(version) is not int or version < UNVERSIONED:  # bool is an int subclass: refused too
        raise RecordError(f"{where}: schema_version {version!r} is not a version (1, 2, ...)")
    if version > SCHEMA_VERSION:
        raise RecordError(f"{where}: schema_version {version!r} is newer than this ftcli reads "
                          f"({SCHEMA_VERSION}); upgrade finetune-cli to read it")
    return version


def known_fields(kind: type, data: dict[str, Any]) -> dict[str, Any]:
    """The keys of `data` that are fields of the dataclass `kind` (a field it lacks is left out)."""
    return {f.name: data[f.name] for f in dataclasses.fields(kind) if f.name in data}


VAL_PARTS = ("val_loss", "val_per_class", "val_confusion_matrix")  # the val_* keys that are not scores


def scores_of(data: dict[str, Any], prefix: str, besides: tuple[str, ...] = ()) -> dict[str, float | None]:
    """The flat `<prefix><metric>` keys of a record as {metric: value}."""
    return {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix) and k not in besides
            and (v is None or isinstance(v, (int, float))) and not isinstance(v, bool)}


@dataclass(frozen=True)
class EpochRecord:
    """One evaluation on validation during training: a line of metrics.jsonl. At an epoch's end it
    also has that epoch's throughput (train_seconds to learning_rate_end); a mid-epoch evaluation
    (train.eval_every_steps) leaves them None."""

    epoch: int  # the epoch it was made in (in progress, for a mid-epoch one)
    train_loss: float  # mean training loss of the epoch so far
    val_loss: float
    val_scores: dict[str, float | None] = field(default_factory=dict)  # metric -> value (val_<metric>)
    step: int | None = None  # the optimizer step (None: recorded before evaluations had steps)
    epoch_progress: float | None = None  # epochs done, e.g. 1.5 halfway through the second
    val_per_class: list[dict[str, Any]] | None = None  # {precision, recall, f1, support} per label
    val_confusion_matrix: list[list[int]] | None = None  # single-label, [true][predicted]; None above 100 labels
    train_seconds: float | None = None  # the epoch's training time (evaluation excluded)
    train_examples_per_s: float | None = None
    pad_ratio: float | None = None  # tokens computed / real tokens over the epoch's batches
    learning_rate_end: float | None = None
    evals_without_improvement: int = 0  # evaluations in a row without a better select_metric

    @property
    def at_epoch_end(self) -> bool:
        return self.train_seconds is not None

    def value(self, metric: str) -> float | None:
        """Its validation value of a metric (`train.select_metric`); None: not measured or undefined."""
        return self.val_loss if metric == "loss" else self.val_scores.get(metric)

    def to_json(self) -> dict[str, Any]:
        """Its metrics.jsonl line: schema_version first, scores flat; unset optional fields left out."""
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "epoch": self.epoch, "step": self.step,
                               "epoch_progress": self.epoch_progress, "train_loss": self.train_loss,
                               "val_loss": self.val_loss, **{f"val_{k}": v for k, v in self.val_scores.items()}}
        for f in dataclasses.fields(self)[4:]:
            out.setdefault(f.name, getattr(self, f.name))
        return {k: v for k, v in out.items() if v is not None or k.startswith("val_") and k not in VAL_PARTS
                or k == "evals_without_improvement"}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "metrics.jsonl") -> EpochRecord:
        read_version(data, where)
        try:
            return cls(**known_fields(cls, data), val_scores=scores_of(data, "val_", VAL_PARTS))
        except TypeError as e:  # a required field missing
            raise RecordError(f"{where}: not an evaluation record ({e})") from None


@dataclass(frozen=True)
class RunDescription:
    """What a run is, known before training: the first half of its summary.json."""

    dataset: str
    mode: str
    bottleneck: int | None  # for the methods sized by method.bottleneck
    model: str
    backbone_sha256: str | None
    trainable_params: int
    total_params: int
    backbone_params: int | None
    trainable_pct: float
    seed: int
    epochs: int
    data_source: str | None
    data_sizes: dict[str, int] | None
    label_names: list[str] | None  # label id i is label_names[i] (inferred from train when not configured)
    data_notes: list[str] | None  # what was done to the source: rows without a gold label dropped, splits carved
    data_cache: dict[str, str] | None  # checked rows (Arrow sources) and tokenized splits: hit | miss | off
    versions: dict[str, str] | None
    task_type: str = "single_label"  # the objective's name (data/objective.py)
    model_type: str | None = None  # the backbone's config.model_type (None: recorded before version 4)
    layout: str | None = None  # its architecture-table entry (models/families.py); None: none, or before version 4
    targets: list[str] | None = None  # lora / ia3: target modules as resolved (method.<mode>.target_modules: auto)
    learning_rate: float | None = None  # train.learning_rate as resolved (auto: the method's); None: before version 5
    # train.mixed_precision as resolved (no | bf16 | fp16; auto: this machine's native choice); None: before
    # version 6, when the config's value was never auto
    mixed_precision: str | None = None


@dataclass(frozen=True)
class RunOutcome:
    """What a completed run measured: the second half of its summary.json."""

    select_metric: str | None  # what picked the best evaluation on validation (None: recorded before it existed)
    best_epoch: int  # the epoch of the best evaluation (in progress, for a mid-epoch one)
    best_step: int | None  # its optimizer step (None: a run recorded before evaluations had steps)
    epochs_completed: int  # fewer than `epochs` when train.early_stopping_patience stopped the run
    best_val_loss: float | None
    # the best evaluation's scores on validation (best_val_<metric>), and the test split's of the
    # model reloaded from the run folder (inference_<metric>): the task type's metrics; a run
    # recorded before a metric was measured lacks it
    best_val_scores: dict[str, float | None]
    test_scores: dict[str, float | None]
    test_loss: float | None
    test_per_class: list[dict[str, Any]] | None  # {precision, recall, f1, support} per label, label_names order
    test_confusion_matrix: list[list[int]] | None  # [true label][predicted label] -> test examples
    train_seconds: float
    train_examples_per_s: float
    wall_seconds: float | None
    peak_memory_mb: float | None
    peak_memory_method: str | None
    device: str | None
    num_processes: int | None
    trained_file_bytes: int | None
    pad_ratio: float | None
    cached_features: str | None
    warnings: list[str] | None = None  # what looks wrong with the kept model (a collapse); None: none, or before v5

    def value(self, key: str) -> Any:
        """An outcome field by its summary.json name (compare's columns): `best_val_<metric>` and
        `inference_<metric>` are scores (None where not recorded), anything else a field."""
        if key.startswith("best_val_") and key != "best_val_loss":
            return self.best_val_scores.get(key[len("best_val_"):])
        if key.startswith("inference_"):
            return self.test_scores.get(key[len("inference_"):])
        return getattr(self, key)

    def to_json(self) -> dict[str, Any]:
        """Its summary.json keys, the scores flat, in field order."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "best_val_scores":
                out.update({f"best_val_{k}": v for k, v in self.best_val_scores.items()})
            elif f.name == "test_scores":
                out.update({f"inference_{k}": v for k, v in self.test_scores.items()})
            else:
                out[f.name] = getattr(self, f.name)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunOutcome:
        plain = {f.name: data.get(f.name) for f in dataclasses.fields(cls) if not f.name.endswith("_scores")}
        return cls(**plain, best_val_scores=scores_of(data, "best_val_", ("best_val_loss",)),
                   test_scores=scores_of(data, "inference_"))


@dataclass(frozen=True)
class RunSummary:
    """A run's summary.json: `running` (description only), then `completed` (with its outcome), or
    `interrupted` / `failed` (with the error)."""

    name: str
    status: str
    description: RunDescription
    outcome: RunOutcome | None = None
    error: str | None = None
    schema_version: int = SCHEMA_VERSION  # of the file it was read from (written: always the current one)

    def to_json(self) -> dict[str, Any]:
        """summary.json: one flat mapping, schema_version first, keys in this order."""
        out = {"schema_version": SCHEMA_VERSION, "name": self.name, "status": self.status,
               **dataclasses.asdict(self.description)}
        if self.outcome is not None:
            out.update(self.outcome.to_json())
        if self.error is not None:
            out["error"] = self.error
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "summary.json") -> RunSummary:
        """A summary read back from disk (a field it lacks is None; a newer schema is refused)."""
        version = read_version(data, where)

        def part(kind: type) -> Any:
            fields = dataclasses.fields(kind)
            return kind(**{f.name: data.get(f.name, f.default if f.default is not dataclasses.MISSING else None)
                           for f in fields})

        outcome = RunOutcome.from_json(data) if data.get("status") == "completed" else None
        return cls(data.get("name"), data.get("status"), part(RunDescription), outcome, data.get("error"), version)
