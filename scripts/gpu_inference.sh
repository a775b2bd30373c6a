#!/usr/bin/env bash
# The CUDA column of the inference benchmark, in one call on a lent GPU machine
# (a few minutes on an H200; `run` tool: `bash scripts/gpu_inference.sh`). Writes the JSON and logs
# to $OUT (default ./gpu-inference/).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-inference}
mkdir -p "$OUT"
PY=${PY:-python3}
# The GPU machine has its own CUDA PyTorch and no network: run the package from the tree.
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version --format=csv | tee "$OUT/gpu.txt"
# stylize on CUDA end to end (half precision, channels_last), then the tables.
$PY -m fastpercept stylize src/fastpercept/assets/example.jpg -o "$OUT/example-mosaic-cuda.jpg" --device cuda
timeout 240 $PY benchmarks/inference.py --device cuda --backends torch --compile --batch 8 --json \
    > "$OUT/inference-cuda.json" 2> "$OUT/inference-cuda.log" || echo "inference benchmark: exit $?"
tail -n 5 "$OUT"/*.log
