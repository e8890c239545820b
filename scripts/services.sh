#!/usr/bin/env bash
# Test/demo services: Redis (scripts/redis.sh) and a single-node Kafka broker (scripts/kafka.sh).
#   bash scripts/services.sh start    redis first, then kafka; no-op for what already answers
#   bash scripts/services.sh stop     kafka first, then redis (only a redis that redis.sh started)
#   bash scripts/services.sh status   exit 0 only if both answer
set -euo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"

case "${1:-}" in
  start)
    bash "$DIR/redis.sh" start
    bash "$DIR/kafka.sh" start
    ;;
  stop)
    rc=0
    bash "$DIR/kafka.sh" stop || rc=$?
    bash "$DIR/redis.sh" stop || rc=$?
    exit "$rc"
    ;;
  status)
    rc=0
    bash "$DIR/redis.sh" status || rc=$?
    bash "$DIR/kafka.sh" status || rc=$?
    exit "$rc"
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
