#!/usr/bin/env bash
# Fill .device/ (git-ignored) with what the GPU machine lacks, for benchmarks/gpu_device_run.sh:
# wheels for Python 3.12 (trl, datasets + dill + multiprocess, bitsandbytes; a datasets 4.x set as a
# fallback for an older pyarrow) and the embedded model's Qwen2.5 tokenizer. About 46 MiB in all.
set -euo pipefail
cd "$(dirname "$0")/.."
dl() {
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform any -d "$@"
}
mkdir -p .device/whl .device/whl_fallback
dl .device/whl trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 bitsandbytes==0.50.2
dl .device/whl_fallback datasets==4.7.0 dill==0.4.0 multiprocess==0.70.18
.venv/bin/python - <<'PY'
from transformers import AutoTokenizer
from s2distill.models import resolve_hf_model
AutoTokenizer.from_pretrained(resolve_hf_model("default")).save_pretrained(".device/tokenizer")
PY
du -sh .device
