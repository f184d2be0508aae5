"""`ftcli bench --peers`: PEFT's LoRA loop and AdapterHub's Houlsby step as contenders in the same
interleaved rounds, each ftcli mode's ratio to its peer, and the side-by-side table."""

from __future__ import annotations

import json
import sys

import pytest
from helpers import ftcli

from finetune_cli.bench.peers import parse_peers
from finetune_cli.bench.render import render_peers
from finetune_cli.bench.run import run_bench
from finetune_cli.errors import ConfigError

TINY = {"model": "tiny-random-bert", "seq": 16, "batch": 4, "steps": 2, "warmup": 1, "eval_batch": 8,
        "bottleneck": 8, "memory": False, "gemm_sizes": (64,)}


def test_peft_lora_is_measured_next_to_ftcli_lora_with_the_same_trained_parameters():
    result = run_bench(modes=["full"], peers=parse_peers("peft"), precisions=("fp32", "bf16"), **TINY)
    rows = {(r["name"], r["precision"]): r for r in result["rows"]}
    assert sorted({name for name, _ in rows}) == ["full", "lora", "peft-lora", "reference"]  # lora added for its peer
    peer, lora = rows[("peft-lora", "fp32")], rows[("lora", "fp32")]
    assert peer["kind"] == "peer" and lora["peer"] == "peft-lora" and rows[("full", "bf16")]["peer"] == "reference"
    assert peer["trainable_params"] == lora["trainable_params"]  # the same LoRA matrices and head train
    assert lora["train_ratio_to_peer"] == pytest.approx(lora["train_examples_per_s"] / peer["train_examples_per_s"])
    assert peer["last_loss"] == peer["last_loss"] and peer["train_ratio_to_peer"] is None  # a loss; no peer itself
    table = render_peers(result)
    assert table.row_count == 4 and [c.header for c in table.columns][3] == "train ×"  # (full, lora) x 2 precisions


def test_no_peers_no_peer_table_and_unknown_peers_are_one_line():
    assert render_peers(run_bench(modes=["lora"], **TINY)) is None
    with pytest.raises(ConfigError, match="--peers: got 'peft,hf', expected a comma-separated list of peft, "):
        parse_peers("peft,hf")


FAKE_CHILD = """#!{python}
# stands in for AdapterHub's environment: answers adapterhub_child.py's protocol, records the requests
import json, sys
spec = json.load(open(sys.argv[2]))
log = open({log!r}, "a")
log.write(json.dumps({{"script": sys.argv[1], "also_trained": spec["also_trained"], "config": spec["config"]}}) + "\\n")
print("ready 12345", flush=True)
for line in sys.stdin:
    log.write(line)
    words = line.split()
    if words[0] == "train":
        print(0.002, 0.69, flush=True)
    elif words[0] == "eval":
        print(0.001, flush=True)
    else:
        break
"""


def test_the_adapterhub_child_is_driven_step_by_step_and_closed(tmp_path):
    python, log = tmp_path / "python", tmp_path / "requests.log"
    python.write_text(FAKE_CHILD.format(python=sys.executable, log=str(log)))
    python.chmod(0o755)
    out = tmp_path / "bench.json"
    result = ftcli("bench", "--model", "minilm-l6", "--modes", "layerwise", "--peers", "adapterhub", "--seq", "16",
                   "--batch", "2", "--steps", "2", "--warmup", "1", "--eval-batch", "4", "--no-memory",
                   "--gemm-sizes", "64", "--adapterhub-python", python, "--out", out)
    assert result.exit_code == 0, result.output
    first, *requests = log.read_text().splitlines()
    spec = json.loads(first)
    assert spec["script"].endswith("finetune_cli/bench/adapterhub_child.py")
    assert spec["config"]["mh_adapter"] and spec["config"]["reduction_factor"] == 384 / 64  # Houlsby, m = 64
    assert "classifier.weight" in spec["also_trained"] and any("LayerNorm" in n for n in spec["also_trained"])
    assert not any("adapter" in n for n in spec["also_trained"])  # plain names, the adapters' own left to AdapterHub
    eval_steps = 3  # bench's default: max(3, steps // 2); + 1 warm-up
    assert requests == ["train 0 fp32", "train 1 fp32", "train 2 fp32", *["eval fp32"] * (1 + eval_steps), "quit"]
    rows = {r["name"]: r for r in json.loads(out.read_text())["rows"]}
    peer = rows["adapterhub-houlsby"]
    assert peer["train_step_seconds"]["median"] == 0.002 and peer["trainable_params"] == 12345
    assert rows["layerwise"]["train_ratio_to_peer"] == pytest.approx(rows["layerwise"]["train_examples_per_s"] / 1000)
    assert "ftcli against its peers" in result.output and "adapterhub-houlsby" in result.output


def test_adapterhub_peer_needs_its_environment_and_minilm(tmp_path):
    result = ftcli("bench", "--model", "minilm-l6", "--modes", "layerwise", "--peers", "adapterhub", "--seq", "16",
                   "--batch", "2", "--steps", "1", "--no-memory", "--gemm-sizes", "64", "--adapterhub-python",
                   tmp_path / "nope" / "python", "--out", tmp_path / "b.json")
    assert result.exit_code == 2 and "--adapterhub-python: cannot run" in result.output
    assert "building" not in result.output  # before minutes of building
    tiny = ftcli("bench", "--model", "tiny-random-bert", "--peers", "adapterhub", "--seq", "16", "--batch", "2",
                 "--steps", "1", "--no-memory", "--gemm-sizes", "64", "--out", tmp_path / "b.json")
    assert tiny.exit_code == 2 and "AdapterHub's environment holds MiniLM only" in tiny.output
