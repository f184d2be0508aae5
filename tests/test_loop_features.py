"""train.grad_accumulation_steps and train.early_stopping_patience: what they compute, what they
record, and that --resume respects them. The loop stays mode-blind (they are loop settings)."""

from __future__ import annotations

import pytest
import torch
from helpers import scripted, tiny_config

import finetune_cli.training.loop as train_module
from finetune_cli.config import config_from_dict
from finetune_cli.training.experiment import prepare_experiment
from finetune_cli.training.loop import train


def trained_weights(tmp_path, batch_size: int, accumulate: int, mode: str = "layerwise", **train_cfg):
    """Train the tiny model one epoch on 48 examples in a fixed order, dropout off (the only randomness
    that micro-batches would draw differently); returns the trained tensors."""
    cfg = config_from_dict(tiny_config(mode, train={"batch_size": batch_size, "grad_accumulation_steps": accumulate,
                                                    "group_by_length": False, "epochs": 1, **train_cfg}))
    exp = prepare_experiment(cfg)
    for module in exp.model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    result = train(exp, on_epoch=lambda records: None)
    return result.best_state, result.metrics


@pytest.mark.parametrize("mode", ["layerwise", "full"])
def test_accumulating_two_batches_of_8_equals_one_batch_of_16(tmp_path, mode):
    big, big_metrics = trained_weights(tmp_path, 16, 1, mode)
    small, small_metrics = trained_weights(tmp_path, 8, 2, mode)
    unaccumulated, _ = trained_weights(tmp_path, 8, 1, mode)
    assert big_metrics[0].step == small_metrics[0].step == 3  # optimizer steps on 48 examples
    for name in big:
        torch.testing.assert_close(small[name], big[name], rtol=1e-4, atol=1e-5)
    assert any(not torch.allclose(unaccumulated[n], big[n], atol=1e-4) for n in big)  # the test can fail


def scripted_evaluation(monkeypatch, accuracies: list[float]):
    """The loop's validation accuracies, in the order given (an evaluation past the end fails)."""
    queue = list(accuracies)

    def evaluate(model, loader, accelerator, objective):
        return scripted(queue.pop(0))

    monkeypatch.setattr(train_module, "evaluate", evaluate)


def early_stopping_run(checkpoint=None, resume=False, on_epoch=lambda records: None):
    cfg = config_from_dict(tiny_config("top", train={"epochs": 6, "early_stopping_patience": 2}))
    return train(prepare_experiment(cfg), on_epoch, checkpoint=checkpoint, resume=resume)


def test_early_stopping_after_patience_epochs_without_a_better_validation_accuracy(monkeypatch):
    scripted_evaluation(monkeypatch, [0.5, 0.6, 0.55, 0.6, 0.7, 0.7])
    result = early_stopping_run()
    assert [m.epoch for m in result.metrics] == [1, 2, 3, 4]  # epochs 3 and 4 did not beat 0.6
    assert [m.evals_without_improvement for m in result.metrics] == [0, 0, 1, 2]
    assert result.best.epoch == 2  # the kept model is the best epoch's


def test_without_patience_every_epoch_trains(monkeypatch):
    scripted_evaluation(monkeypatch, [0.5, 0.4, 0.3])
    cfg = config_from_dict(tiny_config("top", train={"epochs": 3}))
    assert len(train(prepare_experiment(cfg), lambda records: None).metrics) == 3


def test_a_resumed_run_keeps_counting_patience_and_does_not_train_past_the_stop(tmp_path, monkeypatch):
    scripted_evaluation(monkeypatch, [0.5, 0.6, 0.55])

    def die_after_epoch_3(records):
        if len(records) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        early_stopping_run(tmp_path / "checkpoint.safetensors", on_epoch=die_after_epoch_3)
    scripted_evaluation(monkeypatch, [0.6])  # epoch 4: no better than epoch 2 -> stop
    resumed = early_stopping_run(tmp_path / "checkpoint.safetensors", resume=True)
    assert [m.epoch for m in resumed.metrics] == [1, 2, 3, 4]
    assert [m.evals_without_improvement for m in resumed.metrics] == [0, 0, 1, 2]
    scripted_evaluation(monkeypatch, [])  # a stopped run resumed again trains (and evaluates) nothing
    again = early_stopping_run(tmp_path / "checkpoint.safetensors", resume=True)
    assert again.metrics == resumed.metrics


def test_accumulation_resumes_bit_identically(tmp_path):
    cfg = config_from_dict(tiny_config("layerwise", train={"epochs": 2, "batch_size": 8,
                                                             "grad_accumulation_steps": 2}))
    whole = train(prepare_experiment(cfg), lambda records: None)

    def die_after_epoch_1(records):
        if len(records) == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(prepare_experiment(cfg), die_after_epoch_1, checkpoint=tmp_path / "c.safetensors")
    resumed = train(prepare_experiment(cfg), lambda records: None, checkpoint=tmp_path / "c.safetensors", resume=True)
    for name, tensor in whole.best_state.items():
        assert torch.equal(tensor, resumed.best_state[name])
    assert [m.step for m in resumed.metrics] == [3, 6]


def steps_config(**train_cfg):
    """48 examples in batches of 8: 6 optimizer steps per epoch."""
    return config_from_dict(tiny_config("layerwise", train={"batch_size": 8, "epochs": 2, "eval_every_steps": 2,
                                                            **train_cfg}))


TIMES = ("train_seconds", "train_examples_per_s")


def test_eval_every_steps_adds_mid_epoch_evaluations():
    result = train(prepare_experiment(steps_config()), lambda records: None)
    assert [(m.epoch, m.step) for m in result.metrics] == [(1, 2), (1, 4), (1, 6), (2, 8), (2, 10), (2, 12)]
    assert [round(m.epoch_progress, 3) for m in result.metrics] == [0.333, 0.667, 1.0, 1.333, 1.667, 2.0]
    assert [m.at_epoch_end for m in result.metrics] == [False, False, True] * 2  # epoch ends only
    assert result.epochs_completed == 2


def test_the_best_evaluation_may_be_mid_epoch_and_its_state_is_kept(monkeypatch):
    states, accuracies = [], [0.5, 0.9, 0.6, 0.7, 0.8, 0.6]  # the best is the 2nd: step 4, mid-epoch 1
    exp = prepare_experiment(steps_config())

    def evaluate(model, loader, accelerator, objective):
        states.append({n: p.detach().clone() for n, p in exp.model.named_parameters() if exp.is_trained(n)})
        return scripted(accuracies[len(states) - 1])

    monkeypatch.setattr(train_module, "evaluate", evaluate)
    result = train(exp, lambda records: None)
    assert (result.best.epoch, result.best.step) == (1, 4)
    assert not torch.equal(states[1][next(iter(states[1]))], states[-1][next(iter(states[1]))])
    for name, tensor in states[1].items():
        assert torch.equal(dict(exp.model.named_parameters())[name].detach(), tensor)


def test_eval_every_steps_resumes_bit_identically(tmp_path):
    whole = train(prepare_experiment(steps_config()), lambda records: None)

    def die_at_the_end_of_epoch_1(records):
        if records[-1].epoch_progress == 1.0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(prepare_experiment(steps_config()), die_at_the_end_of_epoch_1, checkpoint=tmp_path / "c.safetensors")
    resumed = train(prepare_experiment(steps_config()), lambda records: None, checkpoint=tmp_path / "c.safetensors",
                    resume=True)
    drop = lambda records: [{k: v for k, v in m.to_json().items() if k not in TIMES} for m in records]  # noqa: E731
    assert drop(resumed.metrics) == drop(whole.metrics)
    for name, tensor in whole.best_state.items():
        assert torch.equal(tensor, resumed.best_state[name])


def test_early_stopping_counts_evaluations_and_can_stop_mid_epoch(monkeypatch):
    scripted_evaluation(monkeypatch, [0.5, 0.6, 0.55, 0.5, 0.7])  # evaluations at steps 2, 4, 6, 8: stop at 8
    result = train(prepare_experiment(steps_config(epochs=3, early_stopping_patience=2)), lambda records: None)
    assert [m.step for m in result.metrics] == [2, 4, 6, 8]
    assert [m.evals_without_improvement for m in result.metrics] == [0, 0, 1, 2]
    assert result.epochs_completed == 1 and result.best.step == 4


# Three epochs whose best differs by metric: accuracy peaks at epoch 2, macro-F1 at 1, loss (lowest) at 3.
ACCURACY, MACRO_F1, LOSS = [0.5, 0.7, 0.6], [0.6, 0.4, 0.5], [0.9, 0.8, 0.3]


@pytest.mark.parametrize(("metric", "best_epoch"), [("accuracy", 2), ("macro_f1", 1), ("loss", 3)])
def test_select_metric_picks_the_best_evaluation_by_that_metric(monkeypatch, metric, best_epoch):
    queue = [scripted(a, loss, f1) for a, f1, loss in zip(ACCURACY, MACRO_F1, LOSS, strict=True)]
    monkeypatch.setattr(train_module, "evaluate", lambda model, loader, accelerator, objective: queue.pop(0))
    cfg = config_from_dict(tiny_config("top", train={"epochs": 3, "select_metric": metric}))
    result = train(prepare_experiment(cfg), lambda records: None)
    assert result.best.epoch == best_epoch
    assert [m.value("macro_f1") for m in result.metrics] == MACRO_F1  # recorded whatever the metric
    assert [m.val_loss for m in result.metrics] == LOSS


def test_early_stopping_waits_for_the_select_metric(monkeypatch):
    queue = [scripted(a, loss, f1) for a, f1, loss in zip(ACCURACY, MACRO_F1, LOSS, strict=True)]
    monkeypatch.setattr(train_module, "evaluate", lambda model, loader, accelerator, objective: queue.pop(0))
    cfg = config_from_dict(tiny_config("top", train={"epochs": 5, "early_stopping_patience": 2,
                                                     "select_metric": "macro_f1"}))
    result = train(prepare_experiment(cfg), lambda records: None)
    # accuracy improved at epoch 2, macro-F1 did not: by macro-F1 the patience runs out after epoch 3
    assert [m.evals_without_improvement for m in result.metrics] == [0, 1, 2]
    assert result.epochs_completed == 3 and result.best.epoch == 1


def test_a_resumed_run_keeps_selecting_by_its_metric(tmp_path, monkeypatch):
    evaluations = [scripted(a, loss, f1) for a, f1, loss in zip(ACCURACY, MACRO_F1, LOSS, strict=True)]
    queue = evaluations[:2]
    monkeypatch.setattr(train_module, "evaluate", lambda model, loader, accelerator, objective: queue.pop(0))
    cfg = config_from_dict(tiny_config("top", train={"epochs": 3, "select_metric": "loss"}))

    def die_after_epoch_2(records):
        if len(records) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(prepare_experiment(cfg), die_after_epoch_2, checkpoint=tmp_path / "c.safetensors")
    queue = evaluations[2:]  # epoch 3: the lowest loss, after the resume
    resumed = train(prepare_experiment(cfg), lambda records: None, checkpoint=tmp_path / "c.safetensors",
                    resume=True)
    assert resumed.best.epoch == 3 and [m.evals_without_improvement for m in resumed.metrics] == [0, 0, 0]
    assert all(set(m.val_scores) == {"accuracy", "macro_f1"} for m in resumed.metrics)  # records survive it


def test_runs_of_different_precisions_train_in_one_process(tmp_path):
    """A sweep or tune runs its cells in one process; accelerate keeps one precision per process
    unless it is reset between runs (a bf16 cell after an fp32 one failed before)."""
    from helpers import CONFIGS, FAST, ftcli

    for precision in ("no", "bf16", "no"):
        result = ftcli("train", CONFIGS / "smoke" / "top.yaml", "--runs-dir", tmp_path, "--name", f"p-{precision}",
                       "--overwrite", "--set", f"train.mixed_precision={precision}", *FAST)
        assert result.exit_code == 0, result.output
