#!/usr/bin/env bash
# The one prepared GPU check (issue 26): run on a lent GPU machine from the repository root, with
# .device/ carried (wheels of trl, datasets, bitsandbytes and their small needs; the Qwen2.5 tokenizer).
#   bash benchmarks/gpu_device_run.sh OUT_DIR
# Prepare .device/ here first:  bash benchmarks/gpu_device_prepare.sh
# Both benchmarks write their JSON after every part, so a run stopped at its time limit still returns
# what it measured. Rehearsed on the CPU with:  python benchmarks/gpu_e2e.py --smoke; python benchmarks/gpu_train.py --smoke
set -uo pipefail
OUT=${1:?usage: gpu_device_run.sh OUT_DIR}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
site=/tmp/s2d_site
install() { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$@"; }
install .device/whl/*.whl || exit 3
export PYTHONPATH="$site:$PWD/src"
if ! python3 -c "import datasets, trl" 2>/tmp/import_err.txt; then
    cat /tmp/import_err.txt
    # the image's pyarrow is older than datasets 5 needs: the datasets 4.x set instead
    install .device/whl_fallback/*.whl || exit 3
fi
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python3 -c "import torch, transformers, peft, trl, datasets, accelerate; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__, 'peft', peft.__version__, 'trl', trl.__version__, 'datasets', datasets.__version__, 'accelerate', accelerate.__version__)"
    python3 -c "import bitsandbytes; print('bitsandbytes', bitsandbytes.__version__)"
} 2>&1 | tee "$OUT/gpu_env.txt"
# 1. one whole pipeline on CUDA, kill -9 in training, resume (the must-have: first)
timeout "${E2E_LIMIT:-240}" python3 benchmarks/gpu_e2e.py --tokenizer .device/tokenizer --out "$OUT" 2>&1 \
    | tail -n 60
echo "e2e exit ${PIPESTATUS[0]}"
# 2. training speed and memory against TRL (0.5B, 1.5B, 7B, QLoRA 7B), generation GPU vs CPU
timeout "${TRAIN_LIMIT:-300}" python3 benchmarks/gpu_train.py --tokenizer .device/tokenizer --out "$OUT" \
    --only "${PARTS:-0.5B,7B,qlora,generate,1.5B}" 2>&1 | grep -v "Warning\|warn(" | tail -n 80
echo "gpu_train exit ${PIPESTATUS[0]}"
