"""`ftcli predict`: one run, several runs sharing one frozen backbone, per-input selection."""

from __future__ import annotations

import json

import pytest
from helpers import CONFIGS, FAST, ftcli

from finetune_cli.runs.artifacts import load_run_model, share_frozen


@pytest.fixture(scope="module")
def two_tasks(tmp_path_factory):
    runs = tmp_path_factory.mktemp("predict") / "runs"
    for name, sets in {"imdb": [], "ag": ["--set", "data.dataset=ag_news"]}.items():
        result = ftcli("train", CONFIGS / "smoke" / "layerwise.yaml", "--runs-dir", runs, "--name", name, *FAST, *sets)
        assert result.exit_code == 0, result.output
    return runs


def test_predict_one_run_prints_labels_and_probabilities(two_tasks):
    result = ftcli("predict", two_tasks / "imdb", "--text", "A wonderful film.", "--text", "Dull.")
    assert result.exit_code == 0, result.output
    preds = [json.loads(line) for line in result.stdout.splitlines()]
    assert [p["index"] for p in preds] == [0, 1]
    for p in preds:
        assert p["label"] in ("neg", "pos") and abs(sum(p["probabilities"].values()) - 1) < 1e-4
    assert "on disk per task" in result.stderr


def test_several_runs_share_the_backbone_and_rows_pick_their_run(two_tasks, tmp_path):
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(json.dumps({"text": "Stocks fell sharply.", "run": "ag"}) + "\n"
                      + json.dumps({"text": "I loved this movie."}) + "\n")
    result = ftcli("predict", two_tasks / "imdb", two_tasks / "ag", "--file", inputs)
    assert result.exit_code == 0, result.output
    preds = [(p["index"], p["run"], p["label"]) for p in map(json.loads, result.stdout.splitlines())]
    assert [(i, r) for i, r, _ in preds] == [(0, "ag"), (1, "ag"), (1, "imdb")]
    assert preds[0][2] in ("World", "Sports", "Business", "Sci/Tech")
    runs = [load_run_model(two_tasks / n) for n in ("imdb", "ag")]
    assert share_frozen(runs) > 0
    a, b = (dict(r.model.named_parameters()) for r in runs)
    assert a["bert.embeddings.word_embeddings.weight"] is b["bert.embeddings.word_embeddings.weight"]
    assert a["classifier.weight"] is not b["classifier.weight"]
    assert a["classifier.weight"].shape[0] == 2 and b["classifier.weight"].shape[0] == 4


def test_predict_errors_are_one_line(two_tasks, tmp_path):
    result = ftcli("predict", two_tasks / "imdb")
    assert result.exit_code == 2 and "nothing to predict" in result.stderr
    bad = tmp_path / "in.jsonl"
    bad.write_text('{"text": "ok"}\n{not json\n')
    result = ftcli("predict", two_tasks / "imdb", "--file", bad)
    assert result.exit_code == 2 and "row 2: not valid JSON" in result.stderr
    result = ftcli("predict", tmp_path)
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_a_run_named_full_model_keeps_its_own_size(two_tasks, tmp_path):
    import shutil

    from finetune_cli.workflows.predict import predict_runs

    shutil.copytree(two_tasks / "imdb", tmp_path / "full_model")  # its size once collided with full_model_bytes
    found = predict_runs([tmp_path / "full_model", two_tasks / "ag"], [{"text": "Fine."}])
    trained = (tmp_path / "full_model" / "trained.safetensors").stat().st_size
    assert found.run_bytes == {"full_model": trained, "ag": (two_tasks / "ag" / "trained.safetensors").stat().st_size}
    assert found.full_model_bytes > 100 * trained and found.shared_bytes_saved > 0
    assert [(p["index"], p["run"]) for p in found.rows] == [(0, "ag"), (0, "full_model")]


@pytest.mark.parametrize(("args", "rows", "message"), [
    (["--text", ""], None, "input row 1: 'text' is empty; there is nothing to classify"),
    (["--text", "   "], None, "input row 1: 'text' is empty; there is nothing to classify"),
    (["--text", "fine", "--pair", "other"], None, "--pair: every run given takes one text (it would be ignored)"),
    ([], [{"text": 5}], "input row 1: 'text' is not text (got 5)"),
], ids=["empty", "whitespace", "pair_on_single_text", "number"])
def test_inputs_that_cannot_be_classified_are_refused_in_one_line(two_tasks, tmp_path, args, rows, message):
    """#24.11: each of these used to give a confident prediction, or say 'missing text'."""
    if rows is not None:
        (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        args = ["--file", tmp_path / "in.jsonl"]
    result = ftcli("predict", two_tasks / "imdb", *args)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == f"ftcli: error: {message}" or message in result.stderr, result.stderr


def test_a_run_folder_that_does_not_exist_is_named_as_such(tmp_path):
    result = ftcli("predict", tmp_path / "runs" / "typo", "--text", "fine")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"ftcli: error: {tmp_path / 'runs' / 'typo'}: no such folder; give a run " \
                                    f"folder `ftcli train` wrote (`ftcli compare {tmp_path / 'runs'}` lists the " \
                                    "completed ones)"


def test_a_folder_that_is_no_run_is_named_as_such(tmp_path):
    result = ftcli("predict", tmp_path, "--text", "fine")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"ftcli: error: {tmp_path}: not a run folder (no summary.json); give a folder " \
                                    "`ftcli train` wrote"
