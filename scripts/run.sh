#!/usr/bin/env bash
# `make run`: the activator with config/local.json on the local backend, in
# the foreground. Pods (queue-proxy + helloworld processes) start on the
# first request and stop after the scale-to-zero grace period.
# Ctrl-C stops the activator and every pod.
set -euo pipefail
build=$(realpath "${1:-build}")
cd "$(dirname "$0")/.."
listen=${KP_ACTIVATOR_LISTEN:-0.0.0.0:8080}
admin=${KP_ACTIVATOR_ADMIN:-127.0.0.1:9095}
port=${listen##*:}
host=helloworld-go.default.127.0.0.1.sslip.io

banner() {
    cat <<MSG

The activator serves helloworld-go on :$port (admin: $admin). No pod runs yet.
Try, in another terminal:
  curl -H 'Host: $host' http://127.0.0.1:$port/
  curl -H 'Host: candidate-$host' http://127.0.0.1:$port/
  hey -c 50 -z 30s -host $host 'http://127.0.0.1:$port/?sleep=100'
  $build/activator status -w --admin $admin   # a live table: revisions, pods, autoscaler
  curl -s http://$admin/status        # the same as JSON
  curl -s http://$admin/metrics       # Prometheus metrics
Ctrl-C to stop.

MSG
}

# The banner waits for the activator's "ready" on descriptor 3, written
# once both ports listen: a port already taken gives the activator's error
# and no banner (the pipe closes unwritten when it exits).
exec "$build/activator" --config config/local.json --listen "$listen" --admin "$admin" \
    --ready-fd 3 3> >(read -r _ && banner)
