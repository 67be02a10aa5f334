#!/usr/bin/env bash
# Test double of conf/gpu-discovery.sh for machines without GPUs: reports the addresses in
# FAKE_GPU_ADDRESSES (space-separated, default "0 1") in Spark's discovery format.
set -euo pipefail
read -r -a ids <<< "${FAKE_GPU_ADDRESSES:-0 1}"
out=""
for id in "${ids[@]}"; do out+="${out:+, }\"${id}\""; done
echo "{\"name\": \"gpu\", \"addresses\": [${out}]}"
