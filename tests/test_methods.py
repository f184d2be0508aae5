"""Exact trainable-parameter counts (closed forms), identity at zero init, what a step changes; every
method of the registry, and DoRA (LoRA's `use_dora`)."""

from __future__ import annotations

import pytest
import torch
from helpers import CONFIGS, tiny_config

from finetune_cli.config import LoraConfig, MethodConfig, ModelConfig, config_from_dict
from finetune_cli.errors import ConfigError, ModelError
from finetune_cli.methods.adapters import Adapter, add_layerwise_adapters
from finetune_cli.methods.predicate import apply_method, count_params, trained_state_dict
from finetune_cli.methods.registry import METHOD_NAMES
from finetune_cli.models.backbones import load_backbone
from finetune_cli.models.families import FAMILIES

BERT = FAMILIES["bert"]


def closed_form(mode: str, L: int, d: int, m: int, inter: int, labels: int, k: int = 1, r: int = 8) -> int:
    """The paper's counts: adapter = 2md+m+d; a LayerNorm = 2d; head = d*labels+labels; LoRA rank r."""
    adapter, layernorms, head = 2 * m * d + m + d, (2 * L + 1) * 2 * d, d * labels + labels
    layer = 4 * (d * d + d) + 2 * d + (d * inter + inter) + (inter * d + d) + 2 * d
    return {
        "layerwise": 2 * L * adapter + layernorms + head,
        "pfeiffer": L * adapter + head,  # one adapter per layer, LayerNorms frozen (AdapterHub seq_bn)
        "lora": L * 2 * r * (d + d) + head,  # query and value, each A: r x d and B: d x r
        # key and value scale their d outputs; attention output and FFN output scale their inputs (d, inter)
        "ia3": L * (3 * d + inter) + head,
        # q, k, v, attention output, its LayerNorm, output, its LayerNorm (7d) + intermediate; embeddings'
        # LayerNorm and the pooler (2d)
        "bitfit": L * (7 * d + inter) + 2 * d + head,
        "top": adapter + head,
        "layernorm": layernorms + head,
        "head": head,
        "top_layers": k * layer + head,
    }[mode]


def tiny(mode: str, labels: int = 2, **method):
    backbone = load_backbone(ModelConfig(name="tiny-random-bert"), labels)
    is_trained = apply_method(backbone.model, MethodConfig(mode=mode, bottleneck=8, **method))
    return backbone, is_trained


@pytest.mark.parametrize("mode", [m for m in METHOD_NAMES if m != "full"])  # full: every parameter
@pytest.mark.parametrize("labels", [2, 3])
def test_tiny_trainable_counts_equal_the_closed_form(mode, labels):
    backbone, is_trained = tiny(mode, labels)
    counts = count_params(backbone.model, is_trained, backbone.params)
    assert counts.trainable == closed_form(mode, L=2, d=32, m=8, inter=64, labels=labels)
    requires_grad = sum(p.numel() for p in backbone.model.parameters() if p.requires_grad)
    assert requires_grad == counts.trainable  # the predicate and the freezing agree


def test_tiny_exact_numbers():
    got = {}
    for mode in METHOD_NAMES:
        backbone, is_trained = tiny(mode)
        got[mode] = count_params(backbone.model, is_trained, backbone.params).trainable
    assert got == {"full": 1_011_426, "layerwise": 2_594, "top": 618, "head": 66, "layernorm": 386,
                   "top_layers": 8_610, "pfeiffer": 1_170, "lora": 2_114, "ia3": 386, "bitfit": 706}


def test_lora_rank_targets_and_layernorms():
    lora = LoraConfig(r=4, target_modules=("query", "key", "value"), train_layernorms=True)
    backbone, is_trained = tiny("lora", lora=lora)
    layernorms = (2 * 2 + 1) * 2 * 32
    assert count_params(backbone.model, is_trained, 0).trainable == 2 * 3 * 4 * (32 + 32) + layernorms + 66
    names = [n for n in map(str, backbone.model.state_dict()) if is_trained(n)]
    assert not any("base_layer" in n for n in names)  # the frozen weight PEFT wraps never trains
    with pytest.raises(ConfigError, match="method.lora.target_modules: "):
        tiny("lora", lora=LoraConfig(target_modules=("no_such_layer",)))


@pytest.mark.parametrize("mode", ["lora", "ia3", "pfeiffer", "bitfit"])
def test_new_methods_start_at_the_identity(mode):
    """LoRA's B starts at zero and (IA)3's vectors at one: logits equal the plain model's bit for bit;
    Pfeiffer adapters do once their up-projections are zeroed; BitFit changes no module."""
    torch.manual_seed(0)
    plain = load_backbone(ModelConfig(name="tiny-random-bert"), 2).model.eval()
    adapted = load_backbone(ModelConfig(name="tiny-random-bert"), 2).model.eval()
    adapted.load_state_dict(plain.state_dict())
    apply_method(adapted, MethodConfig(mode=mode, bottleneck=8, init_std=0.1))
    batch = {"input_ids": torch.randint(1000, 2000, (3, 11)), "attention_mask": torch.ones(3, 11, dtype=torch.long)}
    with torch.no_grad():
        adapters = [m for m in adapted.modules() if isinstance(m, Adapter)]
        assert len(adapters) == (2 if mode == "pfeiffer" else 0)
        if adapters:
            assert not torch.equal(plain(**batch).logits, adapted(**batch).logits)
            for a in adapters:
                a.up.weight.zero_()
        torch.testing.assert_close(plain(**batch).logits, adapted(**batch).logits, rtol=0, atol=0)


def test_top_layers_k_and_train_pooler():
    backbone, is_trained = tiny("top_layers", top_layers=2)
    assert count_params(backbone.model, is_trained, 0).trainable == closed_form("top_layers", 2, 32, 8, 64, 2, k=2)
    backbone, is_trained = tiny("layerwise", train_pooler=True)
    assert count_params(backbone.model, is_trained, 0).trainable == 2_594 + 32 * 32 + 32


def test_params_line_in_peft_form():
    backbone, is_trained = tiny("layerwise")
    line = count_params(backbone.model, is_trained, backbone.params).line()
    assert line == "trainable params: 2,594 || all params: 1,013,634 || trainable%: 0.2559"


def test_saved_state_is_exactly_what_trains():
    backbone, is_trained = tiny("layerwise")
    state = trained_state_dict(backbone.model, is_trained)
    assert set(state) == {n for n, p in backbone.model.named_parameters() if p.requires_grad}
    assert sum(t.numel() for t in state.values()) == 2_594


def test_adapters_with_zero_up_projection_leave_logits_unchanged():
    torch.manual_seed(0)
    plain = load_backbone(ModelConfig(name="tiny-random-bert"), 2).model.eval()
    adapted = load_backbone(ModelConfig(name="tiny-random-bert"), 2).model.eval()
    adapted.load_state_dict(plain.state_dict())
    add_layerwise_adapters(adapted, BERT, 8, 1e-1, "gelu")
    apply_method(adapted, MethodConfig(mode="top", bottleneck=8, init_std=0.1))  # and a top adapter
    adapters = [m for m in adapted.modules() if isinstance(m, Adapter)]
    assert len(adapters) == 5
    batch = {"input_ids": torch.randint(1000, 2000, (3, 11)), "attention_mask": torch.ones(3, 11, dtype=torch.long)}
    with torch.no_grad():
        assert not torch.equal(plain(**batch).logits, adapted(**batch).logits)
        for a in adapters:
            a.up.weight.zero_()
        torch.testing.assert_close(plain(**batch).logits, adapted(**batch).logits, rtol=0, atol=0)


def test_structure_mismatch_is_an_error_not_a_no_op():
    backbone = load_backbone(ModelConfig(name="tiny-random-bert"), 2)
    del backbone.model.bert.encoder.layer[1].output.dropout
    with pytest.raises(ModelError, match=r"bert.encoder.layer.1 has no module at 'output.dropout' \(BertLayer\); "
                                         "the bert layout expects one; set model.layout"):
        add_layerwise_adapters(backbone.model, BERT, 8, 1e-3, "gelu")
    assert not any(isinstance(m, Adapter) for m in backbone.model.modules())  # nothing half-done
    with pytest.raises(ModelError, match="bottleneck: 32 must be smaller than the hidden size 32"):
        add_layerwise_adapters(backbone.model, BERT, 32, 1e-3, "gelu")


DORA = {"lora": {"use_dora": True}}  # the `method` section of a DoRA run


@pytest.mark.parametrize(("mode", "method"), [(m, {}) for m in METHOD_NAMES] + [("lora", DORA)],
                         ids=[*METHOD_NAMES, "dora"])
def test_a_training_epoch_changes_exactly_the_trained_weights(mode, method):
    from finetune_cli.training.experiment import prepare_experiment
    from finetune_cli.training.loop import train

    exp = prepare_experiment(config_from_dict(tiny_config(mode, method=method)))
    before = {n: p.detach().clone() for n, p in exp.model.named_parameters()}
    train(exp, on_epoch=lambda metrics: None)
    for name, p in exp.model.named_parameters():
        if exp.is_trained(name):
            assert not torch.equal(before[name], p), f"{name} should have trained"
        else:
            assert torch.equal(before[name], p), f"{name} is frozen but changed"


@pytest.mark.slow
def test_minilm_counts_equal_the_closed_form():
    backbone = load_backbone(ModelConfig(name="minilm-l6"), 2)
    assert backbone.params == 22_713_216
    is_trained = apply_method(backbone.model, MethodConfig(mode="layerwise", bottleneck=64))
    counts = count_params(backbone.model, is_trained, backbone.params)
    adapters = sum(p.numel() for n, p in backbone.model.named_parameters() if ".adapter." in n)
    assert adapters == 595_200 == 2 * 6 * (2 * 64 * 384 + 64 + 384)
    assert counts.trainable == closed_form("layerwise", L=6, d=384, m=64, inter=1536, labels=2) == 605_954
    for mode, expected in {"top": 50_370, "head": 770, "layernorm": 10_754, "top_layers": 1_775_234,
                           "pfeiffer": 6 * (2 * 64 * 384 + 64 + 384) + 770, "lora": 6 * 2 * 8 * 768 + 770,
                           "ia3": 6 * (3 * 384 + 1536) + 770, "bitfit": 6 * (7 * 384 + 1536) + 2 * 384 + 770}.items():
        backbone = load_backbone(ModelConfig(name="minilm-l6"), 2)
        is_trained = apply_method(backbone.model, MethodConfig(mode=mode, bottleneck=64))
        trainable = count_params(backbone.model, is_trained, backbone.params).trainable
        assert trainable == expected == closed_form(mode, L=6, d=384, m=64, inter=1536, labels=2)


def test_attention_dropout_is_opt_in_and_keeps_the_backbone_identity():
    default = load_backbone(ModelConfig(name="tiny-random-bert"), 2)
    off = load_backbone(ModelConfig(name="tiny-random-bert", attention_dropout=0.0), 2)
    assert default.model.bert.encoder.layer[0].attention.self.dropout.p == 0.1
    assert off.model.bert.encoder.layer[0].attention.self.dropout.p == 0.0
    assert off.sha256 == default.sha256  # same weights: runs with either setting reload the same backbone


@pytest.mark.slow
def test_methods_budget_sweep_matches_budgets_within_ten_percent():
    from finetune_cli.workflows.sweep import load_sweep

    counts = {}
    for run in load_sweep(CONFIGS / "sweeps" / "methods_budget.yaml").runs:
        if run.cfg.seed == 0 and run.cfg.data.dataset == "ag_news" and run.cfg.method.mode != "full":
            backbone = load_backbone(run.cfg.model, 4)
            is_trained = apply_method(backbone.model, run.cfg.method)
            counts[run.name] = count_params(backbone.model, is_trained, 0).trainable - (384 * 4 + 4)
    budgets = [("layerwise_bottleneck=6", "pfeiffer_bottleneck=16", "lora_r=8"),
               ("layerwise_bottleneck=32", "pfeiffer_bottleneck=64", "lora_r=32")]
    for names in budgets:
        sizes = [counts[f"seed=0_dataset=ag_news_mode={n}"] for n in names]
        assert max(sizes) <= 1.1 * min(sizes), dict(zip(names, sizes, strict=True))
    assert sizes == [309_888, 297_600, 294_912]


def test_bypassed_adapters_are_identities_and_come_back_even_after_an_error():
    from finetune_cli.methods.adapters import adapters_in, bypassed

    backbone = load_backbone(ModelConfig(name="tiny-random-bert"), 2)
    apply_method(backbone.model, MethodConfig(mode="layerwise", bottleneck=8, init_std=0.5))
    model = backbone.model.eval()
    adapters = adapters_in(model)
    adapters[0].active = False  # already off: stays off after the block
    h = torch.randn(2, 3, 32)
    with pytest.raises(RuntimeError, match="boom"), bypassed(adapters):
        assert not any(a.active for a in adapters)
        assert torch.equal(adapters[1](h), h)
        raise RuntimeError("boom")
    assert [a.active for a in adapters] == [False] + [True] * (len(adapters) - 1)


def test_dora_trains_and_saves_its_magnitude_vectors_and_starts_at_the_identity():
    """DoRA = LoRA + one trained magnitude per output of each target (query and value: d each, L layers):
    PEFT lists `lora_magnitude_vector` among its layer's own tensors, so the one predicate picks it up."""
    torch.manual_seed(0)
    plain = load_backbone(ModelConfig(name="tiny-random-bert"), 2).model.eval()
    backbone, is_trained = tiny("lora", lora=LoraConfig(use_dora=True))
    backbone.model.load_state_dict(plain.state_dict(), strict=False)  # the same base weights and head
    magnitudes = {n: p for n, p in backbone.model.named_parameters() if ".lora_magnitude_vector." in n}
    assert len(magnitudes) == 2 * 2 and all(p.numel() == 32 for p in magnitudes.values())
    assert all(is_trained(n) and p.requires_grad for n, p in magnitudes.items())
    counts = count_params(backbone.model, is_trained, backbone.params)
    assert counts.trainable == closed_form("lora", L=2, d=32, m=8, inter=64, labels=2) + 2 * 2 * 32 == 2_242
    state = trained_state_dict(backbone.model, is_trained)
    assert set(magnitudes) <= set(state) and sum(t.numel() for t in state.values()) == 2_242
    batch = {"input_ids": torch.randint(1000, 2000, (3, 11)), "attention_mask": torch.ones(3, 11, dtype=torch.long)}
    with torch.no_grad():  # B = 0 and magnitudes = the weights' norms: the backbone's own logits
        torch.testing.assert_close(backbone.model.eval()(**batch).logits, plain(**batch).logits, rtol=0, atol=1e-6)


def test_dora_reloads_from_its_run_folder_with_the_trained_logits(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    import finetune_cli.workflows.train as workflows
    from finetune_cli.runs.artifacts import load_run_model
    from finetune_cli.runs.folder import RunFolder

    captured, real_train = {}, workflows.train

    def spy(exp, *args, **kwargs):  # keep the trained model the run saved
        out = real_train(exp, *args, **kwargs)
        captured["model"] = exp.model
        return out

    monkeypatch.setattr(workflows, "train", spy)
    cfg = config_from_dict(tiny_config("lora", method=DORA))
    summary = workflows.run_and_record(cfg, RunFolder.create(tmp_path, "dora"))
    assert summary.status == "completed" and summary.to_json()["trainable_params"] == 2_242
    assert sum(".lora_magnitude_vector." in n for n in load_file(tmp_path / "dora" / "trained.safetensors")) == 4
    reloaded = load_run_model(tmp_path / "dora")
    assert reloaded.cfg.method.lora.use_dora
    batch = {"input_ids": torch.randint(1000, 3000, (4, 12)), "attention_mask": torch.ones(4, 12, dtype=torch.long)}
    with torch.no_grad():
        assert torch.equal(captured["model"].eval()(**batch).logits, reloaded.model(**batch).logits)
