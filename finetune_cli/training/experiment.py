"""Everything a run needs, built from its config before the loop starts: data, backbone, the
method's surgery and predicate, tokenized splits."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
from torch import nn

from ..config import RunConfig
from ..data.balance import balanced_weights, is_imbalanced
from ..data.objective import Objective
from ..data.splits import LoadedData, load_data, part_labels
from ..data.task import Task
from ..data.tokens import Encoded, encode_split
from ..errors import ConfigError
from ..methods.peft_methods import targets_of, with_targets
from ..methods.predicate import ParamCounts, Predicate, apply_method, count_params
from ..methods.registry import METHODS
from ..models.backbones import Backbone, load_backbone, name_labels
from .devices import resolve_precision, seed_everything

log = logging.getLogger(__name__)


@dataclass
class Experiment:
    """A run, prepared: what the loop trains and on what."""

    cfg: RunConfig
    data: LoadedData
    backbone: Backbone
    is_trained: Predicate  # the one predicate: what trains and what is saved
    counts: ParamCounts
    encoded: dict[str, Encoded]  # train / validation / test, tokenized without padding
    targets: list[str] | None  # lora / ia3: the target modules, `auto` resolved for the model's family

    @property
    def model(self) -> nn.Module:
        return self.backbone.model

    @property
    def spec(self) -> Task:
        return self.data.spec

    @property
    def objective(self) -> Objective:
        return self.data.spec.objective


def label_counts(data: LoadedData) -> list[int] | None:
    """Training examples per label id of a task with classes (None: multi-label, regression)."""
    if not data.spec.objective.has_classes:
        return None
    return np.bincount(part_labels(data.parts["train"]), minlength=data.spec.num_labels).tolist()


def with_select_metric(cfg: RunConfig, objective: Objective, num_labels: int,
                       counts: list[int] | None = None) -> RunConfig:
    """The config with `train.select_metric: auto` resolved (the task type's own; macro-F1 on a task
    whose training labels are imbalanced), or a ConfigError when the metric does not fit the task type."""
    metric = cfg.train.select_metric
    if metric == "auto":
        metric = "macro_f1" if counts and is_imbalanced(counts) else objective.default_metric
    elif metric not in objective.select_metrics:
        raise ConfigError(f"train.select_metric: {metric!r} does not fit a {objective.name} task; expected one of "
                          f"auto, {', '.join(objective.select_metrics)}")
    if metric == "f1" and num_labels != 2:  # GLUE's F1 is of label 1 against label 0
        raise ConfigError(f"train.select_metric: 'f1' is the F1 of label 1 of a two-label task; this one has "
                          f"{num_labels} labels (use macro_f1)")
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, select_metric=metric))


def with_learning_rate(cfg: RunConfig) -> RunConfig:
    """The config with `train.learning_rate: auto` resolved to the method's own (methods/registry.py)."""
    if cfg.train.learning_rate != "auto":
        return cfg
    rate = METHODS[cfg.method.mode].learning_rate
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, learning_rate=rate))


def with_class_weights(data: LoadedData, cfg: RunConfig, counts: list[int] | None) -> LoadedData:
    """The data with its objective weighting classes (`train.class_weights: balanced`)."""
    if cfg.train.class_weights == "none":
        return data
    if counts is None:
        raise ConfigError(f"train.class_weights: 'balanced' is for a single-label task, not {data.spec.objective.name}")
    objective = dataclasses.replace(data.spec.objective, class_weights=balanced_weights(counts))
    return dataclasses.replace(data, spec=dataclasses.replace(data.spec, objective=objective))


def resolve_train(cfg: RunConfig, data: LoadedData) -> tuple[RunConfig, LoadedData, list[str]]:
    """The `auto` training settings resolved for this task and method, the objective weighted when
    asked, and one line per `auto` resolved (printed once nothing can fail any more)."""
    counts = label_counts(data)
    resolved = with_learning_rate(with_select_metric(cfg, data.spec.objective, data.spec.num_labels, counts))
    precision, why = resolve_precision(cfg.train.mixed_precision)
    resolved = dataclasses.replace(resolved, train=dataclasses.replace(resolved.train, mixed_precision=precision))
    data = with_class_weights(data, cfg, counts)
    lines = [f"train.mixed_precision: auto -> {precision} ({why}; `no` keeps fp32)"] if why else []
    if cfg.train.select_metric != resolved.train.select_metric:
        why = "imbalanced training labels" if resolved.train.select_metric == "macro_f1" else "the task's own"
        lines.append(f"train.select_metric: auto -> {resolved.train.select_metric} "
                     f"({data.spec.objective.name} task, {why})")
    if cfg.train.learning_rate != resolved.train.learning_rate:
        lines.append(f"train.learning_rate: auto -> {resolved.train.learning_rate:g} ({cfg.method.mode}'s own)")
    return resolved, data, lines


def prepare_experiment(cfg: RunConfig) -> Experiment:
    """Load data and backbone, apply the method's surgery, tokenize. Fails before any training."""
    data = load_data(cfg.data, cfg.seed, cfg.train.threshold)
    cfg, data, resolved = resolve_train(cfg, data)
    seed_everything(cfg.seed)  # the new head and the adapters are initialised under the run seed
    backbone = load_backbone(cfg.model, data.spec.num_outputs)
    name_labels(backbone.model, data.spec.label_names)
    is_trained = apply_method(backbone.model, cfg.method, cfg.model.layout)
    counts = count_params(backbone.model, is_trained, backbone.params)
    targets = targets_of(with_targets(cfg.method, backbone.model, cfg.model.layout))
    encoded = {split: encode_split(part, data.spec, backbone.tokenizer, cfg.model.max_length)
               for split, part in data.parts.items()}
    for line in resolved:  # printed once nothing can fail any more
        log.info("%s", line)
    if targets is not None and targets != targets_of(cfg.method):
        log.info("method.%s.target_modules: auto -> %s (%s layout)", cfg.method.mode, ", ".join(targets),
                 backbone.layout)
    return Experiment(cfg, data, backbone, is_trained, counts, encoded, targets)
