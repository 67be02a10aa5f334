#!/usr/bin/env bash
# Submit the MGA job to YARN with GPU executors (cluster deploy mode: the driver runs in the
# application master). Run from anywhere; paths are relative to the repository.
#
#   conf/submit-yarn.sh INPUT OUTPUT [CONFIG]
#   e.g. conf/submit-yarn.sh s3://bucket/corpus/ s3://bucket/mga/ conf/gpu.yaml
#
# Python dependencies (vLLM, torch, pyspark, ...) travel as a packed virtualenv, unpacked by YARN
# in every container as ./environment. Build it once on a machine with the nodes' OS and Python:
#   python3 -m venv /tmp/mga-venv
#   /tmp/mga-venv/bin/pip install '.[gpu,s3]' venv-pack
#   /tmp/mga-venv/bin/venv-pack -p /tmp/mga-venv -o mga-venv.tar.gz
# The job's own code is shipped as a zip with --py-files (rebuilt here on every submit), so a code
# change needs no new venv. The model must be readable at the config's model path on every node
# (local disk or a shared filesystem). Credentials for s3:// come from the nodes' AWS chain
# (instance profile, AWS_* environment), never from this command line.
set -euo pipefail
cd "$(dirname "$0")/.."
INPUT=${1:?usage: conf/submit-yarn.sh INPUT OUTPUT [CONFIG]}
OUTPUT=${2:?usage: conf/submit-yarn.sh INPUT OUTPUT [CONFIG]}
CONFIG=${3:-conf/gpu.yaml}
VENV_ARCHIVE=${VENV_ARCHIVE:-mga-venv.tar.gz}   # local path or hdfs:// / s3a:// URI
EXECUTORS=${EXECUTORS:-8}                      # = GPUs used: one GPU per executor
QUEUE=${QUEUE:-default}

mkdir -p dist
rm -f dist/mga_spark.zip
python3 -m zipfile -c dist/mga_spark.zip mga_spark

spark-submit \
  --master yarn \
  --deploy-mode cluster \
  --queue "$QUEUE" \
  --name mga-expand \
  --properties-file conf/spark-defaults.gpu.conf \
  --archives "${VENV_ARCHIVE}#environment" \
  --py-files dist/mga_spark.zip \
  --files "conf/gpu-discovery.sh,${CONFIG}" \
  --conf spark.pyspark.python=./environment/bin/python \
  --conf spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python \
  --conf spark.executor.resource.gpu.discoveryScript=./gpu-discovery.sh \
  --conf spark.dynamicAllocation.enabled=false \
  --num-executors "$EXECUTORS" \
  --driver-memory 4g \
  jobs/mga_expand.py --config "$(basename "$CONFIG")" --input "$INPUT" --output "$OUTPUT"
