"""Everything a run needs, built from its config before the loop starts: data, backbone, the
method's surgery and predicate, tokenized splits."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from torch import nn

from ..config import RunConfig
from ..data.objective import Objective
from ..data.splits import LoadedData, load_data
from ..data.task import Task
from ..data.tokens import Encoded, encode_split
from ..errors import ConfigError
from ..methods.peft_methods import targets_of, with_targets
from ..methods.predicate import ParamCounts, Predicate, apply_method, count_params
from ..models.backbones import Backbone, load_backbone, name_labels
from .devices import seed_everything

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


def with_select_metric(cfg: RunConfig, objective: Objective, num_labels: int) -> RunConfig:
    """The config with `train.select_metric: auto` resolved to the task type's own (printed; the
    summary records it), or a ConfigError when the metric does not fit the task type."""
    metric = cfg.train.select_metric
    if metric == "auto":
        metric = objective.default_metric
    elif metric not in objective.select_metrics:
        raise ConfigError(f"train.select_metric: {metric!r} does not fit a {objective.name} task; expected one of "
                          f"auto, {', '.join(objective.select_metrics)}")
    if metric == "f1" and num_labels != 2:  # GLUE's F1 is of label 1 against label 0
        raise ConfigError(f"train.select_metric: 'f1' is the F1 of label 1 of a two-label task; this one has "
                          f"{num_labels} labels (use macro_f1)")
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, select_metric=metric))


def prepare_experiment(cfg: RunConfig) -> Experiment:
    """Load data and backbone, apply the method's surgery, tokenize. Fails before any training."""
    data = load_data(cfg.data, cfg.seed, cfg.train.threshold)
    given = cfg.train.select_metric
    cfg = with_select_metric(cfg, data.spec.objective, data.spec.num_labels)
    seed_everything(cfg.seed)  # the new head and the adapters are initialised under the run seed
    backbone = load_backbone(cfg.model, data.spec.num_outputs)
    name_labels(backbone.model, data.spec.label_names)
    is_trained = apply_method(backbone.model, cfg.method, cfg.model.layout)
    counts = count_params(backbone.model, is_trained, backbone.params)
    targets = targets_of(with_targets(cfg.method, backbone.model, cfg.model.layout))
    encoded = {split: encode_split(part, data.spec, backbone.tokenizer, cfg.model.max_length)
               for split, part in data.parts.items()}
    if cfg.train.select_metric != given:  # printed once nothing can fail any more
        log.info("train.select_metric: auto -> %s (%s task)", cfg.train.select_metric, data.spec.objective.name)
    if targets is not None and targets != targets_of(cfg.method):
        log.info("method.%s.target_modules: auto -> %s (%s layout)", cfg.method.mode, ", ".join(targets),
                 backbone.layout)
    return Experiment(cfg, data, backbone, is_trained, counts, encoded, targets)
