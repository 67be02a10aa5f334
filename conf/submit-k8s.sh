#!/usr/bin/env bash
# Submit the MGA job to Kubernetes with GPU executors, using the image of docker/Dockerfile.gpu
# (vLLM, pyspark, Java and this package installed; Spark's own entrypoint).
#
#   IMAGE=registry.example.com/mga-spark:gpu K8S_API=https://k8s-api:6443 \
#     conf/submit-k8s.sh INPUT OUTPUT [CONFIG-IN-IMAGE]
#
# The code, configs and discovery script are in the image, so the application is a local://
# path and nothing is shipped. The model comes from a volume (a PersistentVolumeClaim named by
# MODEL_PVC, mounted at /models on every executor). s3:// credentials come from
# the pods' AWS chain: a service-account role (IRSA / workload identity) or the Kubernetes
# secret AWS_SECRET (keys access-key, secret-key), never from this command line.
set -euo pipefail
cd "$(dirname "$0")/.."
INPUT=${1:?usage: conf/submit-k8s.sh INPUT OUTPUT [CONFIG]}
OUTPUT=${2:?usage: conf/submit-k8s.sh INPUT OUTPUT [CONFIG]}
CONFIG=${3:-/opt/mga-spark/conf/gpu.yaml}
IMAGE=${IMAGE:?set IMAGE to the pushed docker/Dockerfile.gpu image}
K8S_API=${K8S_API:?set K8S_API, e.g. https://kubernetes.default.svc}
NAMESPACE=${NAMESPACE:-mga}
SERVICE_ACCOUNT=${SERVICE_ACCOUNT:-spark}
EXECUTORS=${EXECUTORS:-8}
MODEL_PVC=${MODEL_PVC:-mga-models}
AWS_SECRET=${AWS_SECRET:-}

secret_env=()
if [[ -n "$AWS_SECRET" ]]; then
  for role in driver executor; do
    secret_env+=(--conf "spark.kubernetes.${role}.secretKeyRef.AWS_ACCESS_KEY_ID=${AWS_SECRET}:access-key"
                 --conf "spark.kubernetes.${role}.secretKeyRef.AWS_SECRET_ACCESS_KEY=${AWS_SECRET}:secret-key")
  done
fi
volume=spark.kubernetes.executor.volumes.persistentVolumeClaim.models

spark-submit \
  --master "k8s://${K8S_API}" \
  --deploy-mode cluster \
  --name mga-expand \
  --properties-file conf/spark-defaults.gpu.conf \
  --conf spark.kubernetes.container.image="$IMAGE" \
  --conf spark.kubernetes.namespace="$NAMESPACE" \
  --conf spark.kubernetes.authenticate.driver.serviceAccountName="$SERVICE_ACCOUNT" \
  --conf spark.executor.instances="$EXECUTORS" \
  --conf spark.executor.resource.gpu.vendor=nvidia.com \
  --conf spark.executor.resource.gpu.discoveryScript=/opt/mga-spark/conf/gpu-discovery.sh \
  --conf "${volume}.options.claimName=${MODEL_PVC}" \
  --conf "${volume}.mount.path=/models" \
  --conf "${volume}.mount.readOnly=true" \
  "${secret_env[@]}" \
  local:///opt/mga-spark/jobs/mga_expand.py --config "$CONFIG" --input "$INPUT" --output "$OUTPUT"
