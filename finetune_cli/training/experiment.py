"""Everything a run needs, built from its config before the loop starts: data, backbone, the
method's surgery and predicate, tokenized splits."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..config import RunConfig
from ..data.objective import Objective
from ..data.splits import LoadedData, load_data
from ..data.task import Task
from ..data.tokens import Encoded, encode_split
from ..methods.predicate import ParamCounts, Predicate, apply_method, count_params
from ..models import Backbone, load_backbone, name_labels
from .devices import seed_everything


@dataclass
class Experiment:
    """A run, prepared: what the loop trains and on what."""

    cfg: RunConfig
    data: LoadedData
    backbone: Backbone
    is_trained: Predicate  # the one predicate: what trains and what is saved
    counts: ParamCounts
    encoded: dict[str, Encoded]  # train / validation / test, tokenized without padding

    @property
    def model(self) -> nn.Module:
        return self.backbone.model

    @property
    def spec(self) -> Task:
        return self.data.spec

    @property
    def objective(self) -> Objective:
        return self.data.spec.objective


def prepare_experiment(cfg: RunConfig) -> Experiment:
    """Load data and backbone, apply the method's surgery, tokenize. Fails before any training."""
    data = load_data(cfg.data, cfg.seed)
    seed_everything(cfg.seed)  # the new head and the adapters are initialised under the run seed
    backbone = load_backbone(cfg.model, data.spec.num_labels)
    name_labels(backbone.model, data.spec.label_names)
    is_trained = apply_method(backbone.model, cfg.method)
    counts = count_params(backbone.model, is_trained, backbone.params)
    encoded = {split: encode_split(part, data.spec, backbone.tokenizer, cfg.model.max_length)
               for split, part in data.parts.items()}
    return Experiment(cfg, data, backbone, is_trained, counts, encoded)
