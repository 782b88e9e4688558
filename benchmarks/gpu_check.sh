#!/usr/bin/env bash
# The prepared GPU run (issue: paper-scale speed). One command on a machine with a GPU:
#   bash benchmarks/gpu_check.sh            # builds .venv if needed, then benchmarks/gpu_check.py --size paper
# It trains each of the eight paper configurations for 200 steps on paper-shape data (1920x1080) with local or
# random weights, embeds a 530-track test gallery, and writes benchmarks/results/gpu_<card>.json (steps/s,
# samples/s, crops/s, peak GPU memory, card, driver). Without CUDA it runs the same code at tiny sizes on the CPU
# (benchmarks/results/gpu_check_cpu_tiny.json) to prove that it works. Extra arguments go to gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s venv
PY=.venv/bin/python
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  "$PY" -m benchmarks.gpu_check --size paper --prepare-only "$@"  # data, random text encoders, crop stores: once
  exec timeout 600 "$PY" -m benchmarks.gpu_check --size paper "$@"   # the result file is rewritten per config
else
  echo "no CUDA device: running at tiny sizes on the CPU (proves the script; no GPU numbers)"
  exec "$PY" -m benchmarks.gpu_check --size tiny "$@"
fi
