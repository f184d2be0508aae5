"""`ftcli tune` end to end on the tiny model: the studies, pruning recorded as `pruned`, resuming
without repeating finished trials, two workers on one study, the final runs and the recommendation
(a tested function of the numbers), and bad input as one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import CONFIGS, ftcli

from finetune_cli.methods.registry import METHODS
from finetune_cli.runs.compare import compare_runs
from finetune_cli.runs.recommend import recommend
from finetune_cli.workflows import tune_study

TINY = ["--set", "data.max_train_samples=32", "--set", "data.max_eval_samples=16", "--set", "train.epochs=2",
        "--set", "train.eval_every_steps=1"]
CONFIG = CONFIGS / "smoke" / "top.yaml"


def tune(runs, *args: str):
    return ftcli("tune", CONFIG, "--runs-dir", runs, "--name", "t", *TINY, *args)


def trials(runs, method: str) -> list[str]:
    return sorted(p.name for p in (runs / "t" / "trials").iterdir() if p.name.startswith(method + "_t"))


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    runs = tmp_path_factory.mktemp("tune") / "runs"
    result = tune(runs, "--methods", "head,top", "--budget", "2", "--seeds", "2")
    assert result.exit_code == 0, result.output
    return runs, result


def test_each_method_gets_its_trials_its_final_seeds_and_the_answer(tuned):
    runs, result = tuned
    assert trials(runs, "head") == ["head_t0", "head_t1"] and trials(runs, "top") == ["top_t0", "top_t1"]
    assert sorted(p.name for p in (runs / "t" / "final").iterdir()) == [
        "head.best", "head_seed=0", "head_seed=1", "top.best", "top_seed=0", "top_seed=1"]  # .best: whose runs
    answer = json.loads((runs / "t" / "tune.json").read_text())
    found = compare_runs(runs / "t" / "final")
    assert [r["n"] for r in found.rows] == [2, 2]  # seeds grouped: one row per method
    assert answer["recommendation"] == recommend(found.rows, answer["metric"])  # computed, not written
    assert answer["recommendation"][-1] in result.stdout and answer["recommendation"][-1].startswith("recommended: ")
    for method in ("head", "top"):
        rate = answer["best"][method]["train.learning_rate"]
        low, high = METHODS[method].tune_range
        assert low <= rate <= high and METHODS[method].tune_range != METHODS["full"].tune_range  # its own
        assert answer["trial_examples"][method] == 2 * 2 * 32  # two trials x two epochs x 32 examples
    best = json.loads((runs / "t" / "final" / "head_seed=0" / "summary.json").read_text())
    assert best["name"] == "head_seed=0" and best["learning_rate"] == answer["best"]["head"]["train.learning_rate"]
    assert "tune head: trial 1 complete" in result.output


def test_a_rerun_resumes_the_studies_without_repeating_a_trial(tuned):
    runs, _ = tuned
    before = (runs / "t" / "final" / "head_seed=1" / "trained.safetensors").stat().st_mtime_ns
    result = tune(runs, "--methods", "head,top", "--budget", "3", "--seeds", "2")
    assert result.exit_code == 0, result.output
    assert trials(runs, "head") == ["head_t0", "head_t1", "head_t2"]  # one more, not three
    assert result.output.count("tune head: trial") == 1
    best = json.loads((runs / "t" / "tune.json").read_text())["best"]["head"]["train.learning_rate"]
    final = runs / "t" / "final" / "head_seed=1"
    for seed in (0, 1):  # the final runs are of the best trial as it is now (a new best: made anew)
        assert json.loads((runs / "t" / "final" / f"head_seed={seed}" / "summary.json").read_text())[
            "learning_rate"] == best
    trial_of = int((runs / "t" / "final" / "head.best").read_text())
    same = trial_of in (0, 1)  # the best was one of the first two trials: its final runs were kept
    assert (final / "trained.safetensors").stat().st_mtime_ns == before or not same


def test_another_config_for_an_existing_study_is_refused(tuned):
    runs, _ = tuned
    result = tune(runs, "--methods", "head", "--budget", "3", "--set", "train.batch_size=8")
    assert result.exit_code == 2
    assert "study t-head was created with another config, --set or --space" in result.stderr


def test_pruned_trials_are_recorded_pruned_and_shown_by_compare(tmp_path, monkeypatch):
    import optuna

    monkeypatch.setattr(tune_study, "make_pruner", lambda name: optuna.pruners.ThresholdPruner(lower=1.5))
    result = tune(tmp_path, "--methods", "head", "--budget", "2", "--seeds", "1")
    assert result.exit_code == 1  # every trial pruned at its first evaluation: nothing to answer with
    assert "tune head: no trial completed (all pruned or failed)" in result.stderr
    for name in trials(tmp_path, "head"):
        summary = json.loads((tmp_path / "t" / "trials" / name / "summary.json").read_text())
        assert summary["status"] == "pruned" and summary["error"].startswith("pruned by ftcli tune at step 1")
    shown = ftcli("compare", tmp_path / "t" / "trials")
    assert "status 'pruned': pruned by ftcli tune at step 1" in shown.stderr
    assert "tune head: trial 1 pruned at step 1 (0.5000) (0 done, 2 pruned; best -)" in result.output


def test_two_workers_share_one_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "finetune_cli", "tune", str(CONFIG), "--runs-dir", str(tmp_path), "--name", "t",
               *TINY, "--methods", "head", "--budget", "4", "--seeds", "1", "--storage", storage]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for _ in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    done = [line for _, err in outputs for line in err.splitlines() if line.startswith("tune head: trial")]
    assert 4 <= len(trials(tmp_path, "head")) <= 5 and len(done) == len(trials(tmp_path, "head"))
    rates = [json.loads((tmp_path / "t" / "trials" / n / "summary.json").read_text())["learning_rate"]
             for n in trials(tmp_path, "head")]
    assert len(set(rates)) == len(rates)  # the two workers' samplers are seeded apart: no trial twice
    assert not (tmp_path / "t" / "study.db").exists()  # the given storage, not the default


@pytest.mark.parametrize(("args", "message"), [
    (["--methods", "head,dora"], "--methods: got head,dora; expected different methods of full, top"),
    (["--space", "train.learning_rate=1e-2..1e-4"], "a range is LO..HI with 0 < LO < HI"),
    (["--space", "train.learnig_rate=1e-4..1e-2"], "--space: 'train.learnig_rate' is not a config value to tune"),
    (["--space", "method.bottleneck=8,99999"], "method.bottleneck: got 99999, expected an integer <= 8192"),
    (["--budget", "0"], "--budget: got '0', expected a number of trials per method"),
    (["--storage", "postgresql://nobody@127.0.0.1:1/none"], "--storage postgresql://nobody@127.0.0.1:1/none: "
                                                             "cannot open"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    result = tune(tmp_path, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "t").exists()


def row(mode, test, sem, params, seconds, epochs=3):
    return {"mode": mode, "inference_accuracy": test, "inference_accuracy_sem": sem, "trainable_params": params,
            "train_seconds": seconds, "epochs": epochs}


def test_the_recommendation_is_computed_from_the_numbers():
    rows = [row("full", 0.900, 0.003, 1_000_000, 300), row("layerwise", 0.896, 0.003, 27_000, 180),
            row("top", 0.850, 0.004, 5_000, 30)]
    assert recommend(rows, "accuracy") == [
        "layerwise: 0.4 ± 0.4 points below full at 2.7% of the parameters and 0.6x its time per epoch; "
        "the difference is within noise",
        "top: 5.0 ± 0.5 points below full at 0.5% of the parameters and 0.1x its time per epoch; "
        "the difference is outside noise",
        "recommended: layerwise, within noise of the best (full) on test accuracy with 27,000 trained parameters"]
    alone = recommend([row("top", 0.85, None, 5_000, 30), row("head", 0.80, None, 100, 10)], "accuracy")
    assert alone == ["head: 5.0 points below top at 2.0% of the parameters and 0.3x its time per epoch; "
                     "no noise estimate (one seed)",
                     "recommended: top, the best on test accuracy with 5,000 trained parameters"]
    errors = [{**row("full", 0.30, 0.01, 1_000, 30), "inference_mse": 0.30, "inference_mse_sem": 0.01},
              {**row("lora", 0.25, 0.01, 10, 30), "inference_mse": 0.25, "inference_mse_sem": 0.01}]
    assert recommend(errors, "mse")[0] == ("lora: 0.05 MSE ± 0.0141 lower than full at 1.0% of the parameters "
                                           "and 1.0x its time per epoch; the difference is outside noise")
    assert recommend(errors, "mse")[-1].startswith("recommended: lora, the best on test MSE")


def test_trials_run_as_ray_tasks_on_one_study(tmp_path):
    pytest.importorskip("ray")
    command = [sys.executable, "-m", "finetune_cli", "tune", str(CONFIG), "--runs-dir", str(tmp_path), "--name", "t",
               *TINY, "--methods", "head", "--budget", "3", "--seeds", "1", "--launcher", "ray", "--workers", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert 3 <= len(trials(tmp_path, "head")) <= 4  # two workers on one budget of 3 (at most one extra)
    assert (tmp_path / "t" / "final" / "head_seed=0" / "summary.json").exists()
    assert done.stdout.strip().splitlines()[-1].startswith("recommended: head")
