#!/usr/bin/env bash
# `make run`: the sample app behind the queue-proxy, in the foreground.
# Ctrl-C drains the queue-proxy and stops both.
set -euo pipefail
build=${1:-build}
app_port=${APP_PORT:-8080}
qp_port=${QP_PORT:-8012}

"$build/helloworld" &
app=$!
trap 'kill -TERM $app $qp 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
export PORT=$app_port TARGET=${TARGET:-World}

SERVING_NAMESPACE=default SERVING_CONFIGURATION=helloworld-go \
SERVING_REVISION=helloworld-go-00001 SERVING_SERVICE=helloworld-go \
SERVING_POD=helloworld-go-00001-local SERVING_POD_IP=127.0.0.1 \
QUEUE_SERVING_PORT=$qp_port QUEUE_SERVING_TLS_PORT=8112 USER_PORT=$app_port \
CONTAINER_CONCURRENCY=${CONTAINER_CONCURRENCY:-10} REVISION_TIMEOUT_SECONDS=300 \
SERVING_LOGGING_CONFIG= SERVING_LOGGING_LEVEL=info \
SERVING_READINESS_PROBE="{\"tcpSocket\":{\"port\":$app_port,\"host\":\"127.0.0.1\"},\"successThreshold\":1}" \
SERVING_REQUEST_METRICS_BACKEND=prometheus KP_DRAIN_QUIET_PERIOD_SECONDS=1 \
  "$build/queue-proxy" &
qp=$!

cat <<MSG

helloworld is listening on :$app_port behind the queue-proxy on :$qp_port.
Try:
  curl http://127.0.0.1:$qp_port/
  curl 'http://127.0.0.1:$qp_port/?sleep=500'
  hey -c 50 -z 10s 'http://127.0.0.1:$qp_port/?sleep=100'
  curl http://127.0.0.1:9090/metrics            # autoscaler stats
  curl http://127.0.0.1:9091/metrics            # request metrics
Ctrl-C to stop.

MSG
wait $qp
