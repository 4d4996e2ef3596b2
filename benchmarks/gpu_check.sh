#!/usr/bin/env bash
# Issue 18's GPU check in one command (benchmarks/README.md): the 1B training throughput against
# TRL, full fine-tuning's MFU, an 8B-shaped QLoRA step and the serving benchmark; one table
# printed, every number in gpu_check.json (or $GPU_CHECK_JSON).
#
# For a GPU machine without a package registry: the wheels `make gpu-wheels` put in .whl/ (or
# $GPU_CHECK_WHEELS) are installed beside its own packages first. GPU_CHECK_SMOKE=1 runs the
# same code on tiny shapes on the CPU, with the Python given as $PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
wheels=${GPU_CHECK_WHEELS:-.whl}
if compgen -G "$wheels/*.whl" >/dev/null; then
    site=${GPU_CHECK_SITE:-/tmp/gpu-check-site}
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "$wheels"/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
exec "$python" benchmarks/gpu_check.py "$@"
