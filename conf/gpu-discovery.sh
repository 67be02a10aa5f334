#!/usr/bin/env bash
# Spark GPU discovery script (spark.worker.resource.gpu.discoveryScript or
# spark.executor.resource.gpu.discoveryScript): prints the GPUs this host offers as
#   {"name": "gpu", "addresses": ["0", "1", ...]}
# The addresses are nvidia-smi indices, which is what CUDA_VISIBLE_DEVICES takes; the engine of
# a task is pinned to the address Spark assigned it (mga_spark.vllm_engine.bind_device).
set -euo pipefail
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu-discovery: nvidia-smi not found on $(hostname)" >&2
  exit 1
fi
addresses=$(nvidia-smi --query-gpu=index --format=csv,noheader | tr -d ' ' \
  | awk 'NF { printf "%s\"%s\"", (n++ ? ", " : ""), $1 }')
echo "{\"name\": \"gpu\", \"addresses\": [${addresses}]}"
