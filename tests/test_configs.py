"""Every shipped config loads; bad configs fail with one line naming the dotted key."""

from __future__ import annotations

import dataclasses

import pytest
from helpers import CONFIGS, tiny_config

from finetune_cli.config import RunConfig, config_from_dict, load_config
from finetune_cli.config_yaml import apply_overrides
from finetune_cli.errors import ConfigError

SHIPPED = sorted(p for p in CONFIGS.rglob("*.yaml") if not p.read_text().startswith("# ftcli sweep"))


def test_the_nine_paper_configs_and_smoke_configs_are_shipped():
    names = {p.relative_to(CONFIGS).as_posix() for p in SHIPPED}
    for ds in ("imdb", "snli", "ag_news"):
        for mode in ("full", "top", "layerwise"):
            assert f"{ds}_{mode}.yaml" in names
    assert {"smoke/full.yaml", "smoke/top.yaml", "smoke/layerwise.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_shipped_config_loads_and_opens_with_its_command(path):
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig)
    rel = path.relative_to(CONFIGS.parent).as_posix()
    assert path.read_text().splitlines()[0] == f"# ftcli train {rel}"


def test_paper_configs_use_per_mode_learning_rates():
    for ds in ("imdb", "snli", "ag_news"):
        assert load_config(CONFIGS / f"{ds}_full.yaml").train.learning_rate == pytest.approx(1e-4)  # claim.yaml
        assert load_config(CONFIGS / f"{ds}_layerwise.yaml").train.learning_rate == pytest.approx(1e-3)


def test_every_field_has_a_comment():
    import inspect

    from finetune_cli import config, config_yaml

    source = inspect.getsource(config_yaml)  # where the YAML is read
    for cls in (config.ModelConfig, config.DataConfig, config.MethodConfig, config.LoraConfig, config.IA3Config,
                config.TrainConfig):
        block = inspect.getsource(cls).splitlines()
        for f in dataclasses.fields(cls):
            i = next(i for i, line in enumerate(block) if line.strip().startswith(f"{f.name}:"))
            assert block[i - 1].strip().startswith("#"), f"{cls.__name__}.{f.name} has no comment"
    assert "yaml.load(" not in source.replace("yaml.load(text, Loader=_Loader)", "")
    assert "import yaml" not in inspect.getsource(config)  # config.py builds from plain data only


@pytest.mark.parametrize(("data", "message"), [
    ({"train": {"epochs": 0}}, "train.epochs: got 0, expected an integer >= 1"),
    ({"train": {"learning_rate": "fast"}}, "train.learning_rate: got 'fast', expected 'auto' or a number"),
    ({"train": {"learning_rate": 5}}, "train.learning_rate: got 5.0, expected a number <= 1.0"),
    ({"train": {"learning_rate": 0}}, "train.learning_rate: got 0.0, expected a number > 0.0"),
    ({"train": {"class_weights": "inverse"}}, "train.class_weights: got 'inverse', expected one of 'none', 'balanced'"),
    ({"data": {"text": 3}}, "data.text: got 3, expected a non-empty list of strings"),
    ({"method": {"mode": "dora"}}, "method.mode: got 'dora', expected one of 'full'"),
    ({"method": {"bottlenek": 8}}, "method.bottlenek: unknown key; allowed keys here: mode, bottleneck"),
    ({"data": {"dataset": "mnli"}}, "data.dataset: got 'mnli', expected one of 'imdb', 'snli', 'ag_news'"),
    ({"optimizer": {}}, "optimizer: unknown key; allowed keys here: model, data, method, train, seed, name"),
    ({"train": {"epochs": True}}, "train.epochs: got True, expected an integer"),
    ({"train": {"max_grad_norm": float("nan")}}, "train.max_grad_norm: got nan, expected a finite number"),
    ({"train": 3}, "train: expected a mapping of keys to values, got 3"),
    ({"name": "../etc"}, "name: got '../etc', expected letters, digits"),
])
def test_bad_values_name_the_dotted_key(data, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_overrides_are_yaml_values_validated_like_the_file():
    overrides = ["method.bottleneck=16", "train.learning_rate=1e-4", "data.max_train_samples=null"]
    data = apply_overrides(tiny_config(), overrides)
    cfg = config_from_dict(data)
    assert (cfg.method.bottleneck, cfg.train.learning_rate, cfg.data.max_train_samples) == (16, 1e-4, None)
    with pytest.raises(ConfigError, match=r"^method.bottleneck: got -1"):
        config_from_dict(apply_overrides(tiny_config(), ["method.bottleneck=-1"]))
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides({}, ["method.bottleneck"])
    with pytest.raises(ConfigError, match="^seed: is a value, not a section"):
        apply_overrides({"seed": 1}, ["seed.x=1"])


def test_yaml_problems_are_one_line(tmp_path):
    cases = {"empty.yaml": "", "list.yaml": "- 1\n- 2\n", "broken.yaml": "model: [1,\n",
             "python.yaml": "seed: !!python/object/apply:os.system ['echo hi']\n"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError) as info:
            load_config(tmp_path / name)
        assert str(info.value).startswith(str(tmp_path / name)) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
