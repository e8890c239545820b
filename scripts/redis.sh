#!/usr/bin/env bash
# Make sure a Redis answers on 127.0.0.1:${KADE_REDIS_PORT:-6379} for tests, the demo and benchmarks.
#
#   bash scripts/redis.sh start    no-op if something already answers PING there (e.g. the machine's
#                                  own redis-server); otherwise start our own, without persistence,
#                                  with its dir, log and pid file under <repo>/.redis/
#   bash scripts/redis.sh stop     stop only the redis this script started (pid file); never another one
#   bash scripts/redis.sh status   exit 0 if PING answers, 3 otherwise
#
# Installs nothing: needs redis-server on PATH (Debian: apt-get install redis-server).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
RDIR="$ROOT/.redis"
PORT="${KADE_REDIS_PORT:-6379}"
PIDF="$RDIR/redis-$PORT.pid"
LOG="$RDIR/redis-$PORT.log"
START_TIMEOUT="${KADE_REDIS_START_TIMEOUT:-20}"

say() { echo "redis: $*"; }
die() { echo "redis: ERROR: $*" >&2; exit 1; }

# true if a Redis answers PING on 127.0.0.1:$PORT
redis_answers() {
  if command -v redis-cli >/dev/null; then
    [[ "$(timeout 3 redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null)" == PONG ]]
  else
    local out
    out="$(timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$PORT"' || exit 1
             printf "PING\r\n" >&3; head -c 5 <&3' 2>/dev/null)" || true
    [[ "$out" == "+PONG" ]]
  fi
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null; }

# pid from our pid file, only if it is still a redis-server listening on our port
our_pid() {
  local pid=""
  [[ -f "$PIDF" ]] && pid="$(tr -dc '0-9' < "$PIDF")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  local cmd; cmd="$(tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline")" || return 0
  if [[ "$cmd" =~ redis-server.*:$PORT([^0-9]|$) ]]; then echo "$pid"; fi
  return 0
}

cmd_start() {
  if redis_answers; then
    local pid; pid="$(our_pid)"
    say "already answering on 127.0.0.1:$PORT${pid:+ (pid $pid, started by this script)}"
    return 0
  fi
  port_open && die "port $PORT is in use by something that does not answer Redis PING (set KADE_REDIS_PORT)"
  command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
  mkdir -p "$RDIR"
  rm -f "$PIDF"
  # no persistence; --daemonize writes the pid file itself. Bind both loopbacks like the
  # machine's own instance if IPv6 loopback exists; "-::1" makes ::1 optional.
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$PORT" --save "" --appendonly no \
    --dir "$RDIR" --logfile "$LOG" --pidfile "$PIDF" > /dev/null \
    || { tail -n 20 "$LOG" >&2 2>/dev/null; die "redis-server failed to start"; }
  local deadline=$((SECONDS + START_TIMEOUT))
  until redis_answers; do
    if (( SECONDS >= deadline )); then
      tail -n 20 "$LOG" >&2 2>/dev/null || true
      die "redis-server did not answer PING on 127.0.0.1:$PORT within ${START_TIMEOUT}s"
    fi
    sleep 0.1
  done
  say "started on 127.0.0.1:$PORT (pid $(cat "$PIDF" 2>/dev/null || echo '?'), log ${LOG#"$ROOT"/})"
}

cmd_stop() {
  local pid; pid="$(our_pid)"
  if [[ -z "$pid" ]]; then
    rm -f "$PIDF"
    if redis_answers; then say "127.0.0.1:$PORT is not a redis started by this script; leaving it alone"
    else say "not running"; fi
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 15))
  while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && { say "pid $pid ignored SIGTERM; sending SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; }
  rm -f "$PIDF"
  say "stopped (pid $pid)"
}

cmd_status() {
  local pid; pid="$(our_pid)"
  if redis_answers; then
    say "running: 127.0.0.1:$PORT answers PING${pid:+ (pid $pid, started by this script)}"
    return 0
  fi
  say "not running on 127.0.0.1:$PORT"
  return 3
}

case "${1:-}" in
  start)  cmd_start ;;
  stop)   cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
