"""Every method on every encoder family of the architecture table (models/families.py), on tiny random
models built from each family's transformers config class: what trains, how many parameters (formulas
from the config, not from the model), identity at zero init, reload = trained, exports that load."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import CONFIGS, FAST, ftcli

from finetune_cli.config import MethodConfig, ModelConfig
from finetune_cli.errors import ConfigError
from finetune_cli.methods.adapters import Adapter
from finetune_cli.methods.predicate import apply_method, count_params, trained_state_dict
from finetune_cli.methods.registry import METHOD_NAMES
from finetune_cli.models.backbones import load_backbone
from finetune_cli.models.families import BY_MODEL_TYPE, FAMILIES
from finetune_cli.models.tiny import TINY_NAMES
from finetune_cli.runs.artifacts import load_run_model

M, C, R = 8, 3, 8  # adapter bottleneck, labels, LoRA rank (ftcli's default)
BATCH = {"input_ids": torch.randint(1000, 3000, (4, 12)), "attention_mask": torch.ones(4, 12, dtype=torch.long),
         "token_type_ids": torch.zeros(4, 12, dtype=torch.long)}
BATCH["attention_mask"][1, 9:] = 0  # one padded row


def model_type(name: str) -> str:
    return name.removeprefix("tiny-random-")


def build(name: str, mode: str, seed: int = 0, **method):
    torch.manual_seed(seed)
    backbone = load_backbone(ModelConfig(name=name), C)
    is_trained = apply_method(backbone.model, MethodConfig(mode=mode, bottleneck=M, **method))
    return backbone, is_trained


# ---- trainable parameters from the config alone ---------------------------------------------------

def head(t: str, d: int, c: int) -> int:
    """The classification head (everything outside the backbone)."""
    linear = d * c + c
    if t in ("bert", "albert"):
        return linear  # the pooler sits in the backbone and does not train (method.train_pooler: false)
    if t == "modernbert":
        return d * d + d + linear  # head.dense without bias (classifier_bias false) + head.norm weight only
    return d * d + d + linear  # a dense layer before the classifier (RoBERTa head, pre_classifier, ContextPooler)


def distinct_layers(t: str, cfg) -> int:
    return cfg.num_hidden_groups * cfg.inner_group_num if t == "albert" else cfg.num_hidden_layers


def layernorm_params(t: str, cfg) -> int:
    """Every LayerNorm of the backbone: 2 per layer and the embeddings' (ELECTRA, ALBERT: of the
    embedding size); DeBERTa-v3 one more on its relative embeddings; ModernBERT weight-only norms,
    pre-LN: per layer before attention (not in layer 0) and before the MLP, the embeddings', a final one."""
    d, a = cfg.hidden_size, distinct_layers(t, cfg)
    if t == "modernbert":
        return (2 * a + 1) * d
    embeddings = 2 * getattr(cfg, "embedding_size", d) if t in ("electra", "albert") else 2 * d
    return embeddings + a * 2 * 2 * d + (2 * d if t == "deberta-v2" else 0)


def ffn_size(t: str, cfg) -> int:
    return cfg.hidden_dim if t == "distilbert" else cfg.intermediate_size


def biases(t: str, cfg) -> int:
    """BitFit: q, k, v, attention output, 2 LayerNorms, feed-forward in and out (7d + f) per layer,
    plus the family's biases outside the layers."""
    d, a, f = cfg.hidden_size, distinct_layers(t, cfg), ffn_size(t, cfg)
    e = getattr(cfg, "embedding_size", d)
    outside = {"bert": d + d,  # embeddings LayerNorm + pooler
               "electra": e + d,  # embeddings LayerNorm + embeddings_project
               "deberta-v2": d + d,  # embeddings LayerNorm + relative-embeddings LayerNorm
               "albert": e + d + d}.get(t, d)  # embeddings LN + embedding_hidden_mapping_in + pooler; else emb. LN
    return a * (7 * d + f) + outside


def one_layer(t: str, cfg) -> int:
    d, f = cfg.hidden_size, ffn_size(t, cfg)
    if t == "modernbert":  # the last layer: attn_norm, Wqkv, Wo, mlp_norm, Wi (gated: 2f), Wo; no biases
        return d + 3 * d * d + d * d + d + 2 * f * d + f * d
    return 4 * (d * d + d) + 2 * 2 * d + (d * f + f) + (f * d + d)


def lora(t: str, cfg) -> int:
    d, a = cfg.hidden_size, distinct_layers(t, cfg)
    return a * R * (d + 3 * d) if t == "modernbert" else a * 2 * R * (d + d)  # fused Wqkv, or query and value


def ia3(t: str, cfg) -> int:
    """Key and value outputs, the feed-forward output's input; BERT-like and DeBERTa names
    (`output.dense`) also match the attention output projection, ModernBERT's fused Wqkv scales 3d."""
    d, a, f = cfg.hidden_size, distinct_layers(t, cfg), ffn_size(t, cfg)
    three = t in ("bert", "roberta", "xlm-roberta", "electra", "deberta-v2", "modernbert")
    return a * ((3 * d if three else 2 * d) + f)


def expected_trainable(t: str, mode: str, cfg, total: int) -> int:
    d, a = cfg.hidden_size, distinct_layers(t, cfg)
    adapter = 2 * M * d + M + d
    h = head(t, d, C)
    return {"full": total, "top": adapter + h, "layerwise": 2 * a * adapter + layernorm_params(t, cfg) + h,
            "pfeiffer": a * adapter + h, "lora": lora(t, cfg) + h, "ia3": ia3(t, cfg) + h,
            "bitfit": biases(t, cfg) + h if t != "modernbert" else None, "top_layers": one_layer(t, cfg) + h,
            "layernorm": layernorm_params(t, cfg) + h, "head": h}[mode]


def test_bitfit_on_a_model_without_biases_is_refused_not_silently_head():
    with pytest.raises(ConfigError, match="bitfit trains the backbone's biases, and this modernbert model has none"):
        build("tiny-random-modernbert", "bitfit")


CASES = [(n, m) for n in TINY_NAMES for m in METHOD_NAMES if (model_type(n), m) != ("modernbert", "bitfit")]


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_every_method_on_every_family(name, mode):
    """Counts = the formula; new modules at zero init leave the logits exactly unchanged; training
    moves only what trains; the saved tensors reload into the same logits."""
    plain = load_backbone(ModelConfig(name=name), C).model.eval()
    backbone, is_trained = build(name, mode, init_std=0.0)  # adapters start at zero: identities
    model = backbone.model.eval()
    counts = count_params(model, is_trained, backbone.params)
    assert counts.trainable == expected_trainable(model_type(name), mode, model.config, counts.total)
    model.load_state_dict({**model.state_dict(), **{k: v for k, v in plain.state_dict().items()
                                                      if k in model.state_dict()}})
    with torch.no_grad():  # adapters at zero, LoRA's B at zero, (IA)3's vectors at one: exactly the same logits
        assert torch.equal(model(**BATCH).logits, plain(**BATCH).logits)
    move_off_zero(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_two_steps(model)
    trained = {n for n, _ in model.named_parameters() if is_trained(n)}
    assert {n for n, p in model.named_parameters() if p.grad is not None} == trained  # the optimizer's reach
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    # only what trains moves; what trains moves (up to float32: a key's scale or DeBERTa's relative-embedding
    # LayerNorm may get a gradient too small to change a weight of 1.0 in two steps)
    assert changed <= trained and len(changed) >= len(trained) - 2
    reloaded, _ = build(name, mode, seed=1)  # another seed: another head and adapters until loaded
    assert not reloaded.model.load_state_dict(trained_state_dict(model, is_trained), strict=False).unexpected_keys
    with torch.no_grad():
        assert torch.equal(reloaded.model.eval()(**BATCH).logits, model(**BATCH).logits)


def move_off_zero(model) -> None:
    """Adapters and LoRA's B away from zero, so that every trained tensor gets a gradient."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if isinstance(model.get_submodule(name.rsplit(".", 2)[0]), Adapter) or "lora_B" in name:
                p.normal_(0, 0.1)


def train_two_steps(model) -> None:
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(**BATCH).logits, torch.tensor([0, 1, 2, 1])).backward()
        optimizer.step()


def test_every_tiny_model_is_a_family_of_the_table_and_albert_shares_its_adapters():
    assert {model_type(n) for n in TINY_NAMES} == set(BY_MODEL_TYPE)
    backbone, _ = build("tiny-random-albert", "layerwise")
    assert backbone.model.config.num_hidden_layers == 2  # two depths ...
    assert len([m for m in backbone.model.modules() if isinstance(m, Adapter)]) == 2  # ... one shared layer: 2 adapters
    assert FAMILIES["albert"].shared_layers


# ---- end to end: train, reload from the folder, export -----------------------------------------

def train(tmp_path, name: str, mode: str, *extra: str):
    runs = tmp_path / "runs"
    result = ftcli("train", CONFIGS / "smoke" / "layerwise.yaml", "--runs-dir", runs, "--name", mode,
                   "--set", f"model.name={name}", "--set", f"method.mode={mode}", *FAST, *extra)
    assert result.exit_code == 0, result.output
    return runs / mode


@pytest.mark.parametrize("name", TINY_NAMES)
def test_exports_load_without_ftcli_and_predict_the_same(tmp_path, name):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    for mode in ("full", "lora"):
        run = train(tmp_path, name, mode)
        out = tmp_path / f"out-{mode}"
        result = ftcli("export", run, out)
        assert result.exit_code == 0, result.output
        if mode == "full":
            exported = AutoModelForSequenceClassification.from_pretrained(out).eval()
        else:
            base = load_backbone(ModelConfig(name=name), 2).model
            exported = PeftModel.from_pretrained(base, out).eval()
        with torch.no_grad():
            assert torch.equal(exported(**BATCH).logits, load_run_model(run).model(**BATCH).logits)
        assert json.loads((out / "ftcli_export.json").read_text())["label_names"] == ["neg", "pos"]


@pytest.mark.parametrize("name", TINY_NAMES)
def test_layerwise_runs_export_to_adapterhub_names_or_say_why_not(tmp_path, name):
    from safetensors.torch import load_file

    run = train(tmp_path, name, "layerwise")
    summary = json.loads((run / "summary.json").read_text())
    family = BY_MODEL_TYPE[model_type(name)]
    assert (summary["model_type"], summary["layout"]) == (model_type(name), family.name)
    result = ftcli("export", run, tmp_path / "out")
    if model_type(name) not in ADAPTERHUB:
        reason = (f"AdapterHub has no {family.name} interface" if family.adapterhub_blocks is None else
                  f"AdapterHub's {family.name} attention adapter computes another function")
        assert result.exit_code == 2 and reason in result.output
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
        return
    assert result.exit_code == 0, result.output
    layer, blocks = ADAPTERHUB[model_type(name)]
    assert set(load_file(tmp_path / "out" / "adapter.safetensors")) == {
        f"{layer.format(i=i)}.{block}.adapters.layerwise.{part}.{tensor}" for i in (0, 1) for block in blocks
        for part in ("adapter_down.0", "adapter_up") for tensor in ("weight", "bias")}


# Where AdapterHub keeps a layer's two Houlsby adapters, read from its per-model mixins (adapters 1.3,
# src/adapters/models/<family>/mixin_*.py), not from ftcli's table: the export must match these names.
# ALBERT's attention adapter is refused (see models/families.py); ModernBERT and MPNet have no interface.
BERT_BLOCKS = ("attention.output", "output")  # BertSelfOutputAdaptersMixin, BertOutputAdaptersMixin
ADAPTERHUB = {"bert": ("bert.encoder.layer.{i}", BERT_BLOCKS), "roberta": ("roberta.encoder.layer.{i}", BERT_BLOCKS),
              "xlm-roberta": ("roberta.encoder.layer.{i}", BERT_BLOCKS),
              "electra": ("electra.encoder.layer.{i}", BERT_BLOCKS),
              "deberta-v2": ("deberta.encoder.layer.{i}", BERT_BLOCKS),
              "distilbert": ("distilbert.transformer.layer.{i}", ("attention_adapters", "output_adapters"))}


# ---- a layout the table does not know ------------------------------------------------------------

@pytest.fixture
def renamed_bert(tmp_path):
    """A tiny BERT saved under a model type the table does not know (a registered copy of BertConfig)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    class RenamedConfig(BertConfig):
        model_type = "renamed-bert"

    class RenamedModel(BertForSequenceClassification):
        config_class = RenamedConfig

    try:
        AutoConfig.register("renamed-bert", RenamedConfig)
        AutoModelForSequenceClassification.register(RenamedConfig, RenamedModel)
    except ValueError:  # registered by an earlier test in this process
        pass
    backbone = load_backbone(ModelConfig(name="tiny-random-bert"), 2)
    config = RenamedConfig(**{k: v for k, v in backbone.model.config.to_dict().items() if k != "model_type"})
    model = RenamedModel(config)
    model.load_state_dict(backbone.model.state_dict())
    model.save_pretrained(tmp_path / "renamed")
    backbone.tokenizer.save_pretrained(tmp_path / "renamed")
    return tmp_path / "renamed"


def test_an_unknown_layout_is_one_line_naming_the_overrides_and_the_overrides_work(tmp_path, renamed_bert):
    runs = tmp_path / "runs"

    def run(mode: str, *extra: str):
        return ftcli("train", CONFIGS / "smoke" / "layerwise.yaml", "--runs-dir", runs,
                     "--name", mode + str(len(extra)), "--set", f"model.name={renamed_bert}",
                     "--set", f"method.mode={mode}", *FAST, *extra)

    refused = run("layerwise")
    assert refused.exit_code == 2
    assert refused.output.strip() == (
        "ftcli: error: model.layout: no layout known for model type 'renamed-bert' (method layerwise needs its "
        "layer list and sublayer outputs); set model.layout to the family it is laid out like (bert, roberta, electra, "
        "deberta-v2, distilbert, albert, modernbert, mpnet), or give method.lora.target_modules / "
        "method.ia3.target_modules explicitly")
    assert run("lora").exit_code == 2
    assert run("full").exit_code == 0  # a method that needs no layout trains as it is
    assert run("layerwise", "--set", "model.layout=bert").exit_code == 0
    done = run("lora", "--set", "method.lora.target_modules=[query,value]")
    assert done.exit_code == 0, done.output
    summary = json.loads((runs / "lora2" / "summary.json").read_text())
    assert (summary["model_type"], summary["layout"], summary["targets"]) == ("renamed-bert", None, ["query", "value"])


def test_the_targets_auto_resolves_to_is_printed_and_recorded(tmp_path):
    run = train(tmp_path, "tiny-random-deberta-v2", "lora")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["targets"] == ["query_proj", "value_proj"]
    assert (run / "config.yaml").read_text().count("target_modules: auto") == 2  # as given (lora, ia3)


def test_auto_targets_and_the_explicit_defaults_recorded_before_them_are_the_same_setting():
    """Runs recorded before `auto` (schema < 4: no model.layout, targets written out as BERT's names)
    group and resume with new ones on any backbone; a recorded model type resolves auto to its family's
    targets; a method's own section never separates runs of another method."""
    from finetune_cli.runs.compare import normalized

    for name in ("minilm-l6", "bert-base-uncased", "some/hub-model"):
        old = {"model": {"name": name}, "method": {"mode": "lora", "lora": {"target_modules": ["query", "value"]},
                                                  "ia3": {"target_modules": ["key", "value", "output.dense"]}}}
        new = {"model": {"name": name, "layout": "auto"}, "method": {"mode": "lora"}}
        assert normalized(old) == normalized(new), name
        full = normalized({**old, "method": {**old["method"], "mode": "full"}})
        assert full == normalized({**new, "method": {"mode": "full", "lora": {"r": 64}}})  # lora's r: not full's
    distil = normalized({"model": {"name": "distilbert-base-uncased", "layout": "auto"}, "method": {"mode": "ia3"}},
                        model_type="distilbert")["method"]
    assert distil["ia3"] == {"target_modules": ("k_lin", "v_lin", "ffn.lin2"), "feedforward_modules": ("ffn.lin2",)}
    explicit = normalized({"model": {"name": "x", "layout": "auto"}, "method": {"mode": "lora", "lora": {
        "target_modules": ["query", "value"]}}})["method"]  # recorded since auto: explicit stays explicit
    assert explicit["lora"]["target_modules"] == ("query", "value")


# Which module's input an adapter of layer 0 shifts, read from each family's transformers forward code
# (not from ftcli's table): post-LN, the LayerNorm after the sublayer's residual add; pre-LN ModernBERT,
# the next sublayer's norm (which reads the residual sum). (attention adapter, feed-forward adapter)
SHIFTED = {"bert": ("attention.output.LayerNorm", "output.LayerNorm"),
           "roberta": ("attention.output.LayerNorm", "output.LayerNorm"),
           "xlm-roberta": ("attention.output.LayerNorm", "output.LayerNorm"),
           "electra": ("attention.output.LayerNorm", "output.LayerNorm"),
           "deberta-v2": ("attention.output.LayerNorm", "output.LayerNorm"),
           "distilbert": ("sa_layer_norm", "output_layer_norm"),
           "albert": ("attention.LayerNorm", "full_layer_layer_norm"),
           "mpnet": ("attention.LayerNorm", "output.LayerNorm"),
           "modernbert": ("mlp_norm", "+1.attn_norm")}  # +1: the next layer's


@pytest.mark.parametrize("name", TINY_NAMES)
def test_each_houlsby_adapter_sits_on_its_sublayer_output_before_the_residual_add(name):
    """An adapter whose only non-zero weight is its up-projection's bias c adds exactly c to the
    sublayer's output: the sum the residual LayerNorm (pre-LN: the next norm) reads moves by c, all
    of it, wherever the table put the adapter, if it is the right place."""
    backbone, _ = build(name, "layerwise", init_std=0.0)
    model = backbone.model.eval()
    layers = model.get_submodule({"distilbert": "distilbert.transformer.layer", "albert":
                                  "albert.encoder.albert_layer_groups.0.albert_layers",
                                  "modernbert": "model.layers"}.get(model_type(name), f"{model.base_model_prefix}"
                                                                                        ".encoder.layer"))
    adapters = [m for m in layers[0].modules() if isinstance(m, Adapter)]  # attention's first, in module order
    assert len(adapters) == 2
    for adapter, path in zip(adapters, SHIFTED[model_type(name)], strict=True):
        target = layers[1].get_submodule(path[3:]) if path.startswith("+1.") else layers[0].get_submodule(path)
        seen: list[torch.Tensor] = []
        handle = target.register_forward_pre_hook(lambda mod, args, seen=seen: seen.append(args[0].detach().clone()))
        with torch.no_grad():
            model(**BATCH)
            calls = len(seen)  # ALBERT's shared layer runs at every depth: compare the first depth's
            adapter.up.bias.fill_(0.25)
            model(**BATCH)
            adapter.up.bias.zero_()
        handle.remove()
        torch.testing.assert_close(seen[calls] - seen[0], torch.full_like(seen[0], 0.25), rtol=0, atol=1e-5)
