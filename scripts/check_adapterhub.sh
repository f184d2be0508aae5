#!/usr/bin/env bash
# `ftcli export` of layerwise / pfeiffer / top loads in AdapterHub with ftcli's logits (run by .ci/run).
# AdapterHub pins transformers 4.x, so it gets its own environment (scripts/adapterhub_venv.sh); the export
# side uses ftcli's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
AH=${AH_VENV:-.venv-adapterhub}
bash scripts/adapterhub_venv.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
HF_HUB_OFFLINE=1 "$VENV/bin/python" scripts/check_adapterhub.py export "$work"
HF_HUB_OFFLINE=1 "$AH/bin/python" scripts/check_adapterhub.py load "$work"
# `ftcli bench --peers adapterhub`: AdapterHub's Houlsby step runs in this environment, training exactly
# the parameters ftcli's layerwise trains (the same count)
HF_HUB_OFFLINE=1 "$VENV/bin/ftcli" bench --model minilm-l6 --modes layerwise --peers adapterhub --adapterhub-python \
  "$AH/bin/python" --seq 32 --batch 4 --steps 1 --warmup 0 --no-memory --gemm-sizes 128 --threads 1 \
  --out "$work/bench.json" > /dev/null
"$VENV/bin/python" - "$work/bench.json" <<'PY'
import json, sys
rows = {r["name"]: r for r in json.load(open(sys.argv[1]))["rows"]}
ours, theirs = rows["layerwise"]["trainable_params"], rows["adapterhub-houlsby"]["trainable_params"]
assert ours == theirs, f"AdapterHub's Houlsby contender trains {theirs:,} parameters, ftcli's layerwise {ours:,}"
print(f"bench peer adapterhub-houlsby: {theirs:,} trained parameters, as ftcli layerwise; "
      f"ftcli/AdapterHub step {rows['layerwise']['train_ratio_to_peer']:.2f}x (1 step, not a benchmark)")
PY
