#!/usr/bin/env bash
# Single-node Apache Kafka 3.9.1 broker (KRaft, combined broker+controller) for tests, the demo
# and benchmarks, run straight from Maven-resolved jars (no Docker, no tarball download).
#
#   bash scripts/kafka.sh start     fetch jars if needed, format storage once, start, wait until ready
#   bash scripts/kafka.sh stop      SIGTERM (controlled shutdown), SIGKILL after a timeout
#   bash scripts/kafka.sh status    exit 0 if a broker answers on the port, 3 otherwise
#   bash scripts/kafka.sh logs [-f] [N]   last N (default 100) lines of .kafka/broker.log
#   bash scripts/kafka.sh fetch     only resolve the jars into .kafka/libs-3.9.1 (idempotent)
#   bash scripts/kafka.sh reset     stop, then delete .kafka/data (next start reformats)
#   bash scripts/kafka.sh tool <main class> [args...]   run a Kafka CLI class from the same jars, e.g.
#        bash scripts/kafka.sh tool org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#
# Environment:
#   KADE_KAFKA_PORT (9092)             PLAINTEXT listener on 127.0.0.1
#   KADE_KAFKA_CONTROLLER_PORT (9093)  KRaft controller listener on 127.0.0.1
#   KADE_KAFKA_HEAP_OPTS ("-Xms256m -Xmx512m")
#   KADE_KAFKA_START_TIMEOUT (90)      seconds to wait for readiness
#   KADE_KAFKA_STOP_TIMEOUT (30)       seconds to wait after SIGTERM before SIGKILL
#   KADE_KAFKA_FRESH=1                 wipe .kafka/data before starting (only when not running)
#
# Layout (all under <repo>/.kafka, which is git-ignored):
#   libs-3.9.1/  jars     data/  KRaft storage     server.properties  generated config
#   broker.log   broker.pid       fetch.log  mvn output of the last fetch
# See docs/kafka-broker.md.
set -euo pipefail

KAFKA_VERSION=3.9.1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
RUNTIME="$ROOT/scripts/kafka-runtime"
KDIR="$ROOT/.kafka"
LIBS="$KDIR/libs-$KAFKA_VERSION"
DATA="$KDIR/data"
CFG="$KDIR/server.properties"
LOG="$KDIR/broker.log"
PIDF="$KDIR/broker.pid"
PORT="${KADE_KAFKA_PORT:-9092}"
CPORT="${KADE_KAFKA_CONTROLLER_PORT:-9093}"
HEAP_OPTS="${KADE_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
START_TIMEOUT="${KADE_KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KADE_KAFKA_STOP_TIMEOUT:-30}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
LOGOPT="-Dlog4j.configuration=file:$RUNTIME/log4j.properties"

say() { echo "kafka: $*"; }
die() { echo "kafka: ERROR: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- probes ------------------------------------------------------------------------------------

# true if something accepts TCP connections on 127.0.0.1:$1
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# true if a Kafka broker answers an ApiVersions v0 request on 127.0.0.1:$1 (correlation id "KADE",
# error code 0). A port that is bound but not serving yet (the broker binds its listener long
# before it processes requests) times out here.
kafka_answers() {
  local out
  out="$(timeout 3 bash -c '
      exec 3<>/dev/tcp/127.0.0.1/'"$1"' || exit 1
      printf "\x00\x00\x00\x0e\x00\x12\x00\x00KADE\x00\x04kade" >&3
      head -c 10 <&3 | od -An -tx1 | tr -d " \n"' 2>/dev/null)" || true
  [[ "${out:8:12}" == "4b4144450000" ]]
}

# true if process $1 is a JVM running kafka.Kafka with OUR config file
is_our_broker() {
  local cmd
  cmd="$(tr '\0' ' ' 2>/dev/null < "/proc/$1/cmdline")" || return 1
  [[ "$cmd" == *" kafka.Kafka $CFG"* ]]
}

# pids of all such processes
our_pids() {
  local f pid
  for f in /proc/[0-9]*/cmdline; do
    pid="${f#/proc/}"; pid="${pid%/cmdline}"
    if is_our_broker "$pid"; then echo "$pid"; fi
  done
  return 0
}

pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

recorded_pid() {
  local pid=""
  [[ -f "$PIDF" ]] && pid="$(tr -dc '0-9' < "$PIDF")"
  if pid_alive "$pid" && is_our_broker "$pid"; then
    echo "$pid"
  fi
}

# --- fetch -------------------------------------------------------------------------------------

libs_ok() {
  [[ -f "$LIBS/.complete" ]] && [[ "$(cat "$LIBS/.complete")" == "$(sha256sum < "$RUNTIME/pom.xml")" ]]
}

cmd_fetch() {
  mkdir -p "$KDIR"
  libs_ok && return 0
  exec 8>"$KDIR/.fetch.lock"
  flock -w 600 8 || die "timed out waiting for another fetch"
  libs_ok && { exec 8>&-; return 0; }
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven) and $LIBS is missing"
  local t0 tmp; t0="$(now)"; tmp="$LIBS.tmp.$$"
  rm -rf "$tmp"
  say "resolving Kafka $KAFKA_VERSION jars with Maven into ${LIBS#"$ROOT"/} ..."
  if ! mvn -B -q -Dstyle.color=never -f "$RUNTIME/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" > "$KDIR/fetch.log" 2>&1; then
    tail -n 40 "$KDIR/fetch.log" >&2; rm -rf "$tmp"; die "mvn dependency:copy-dependencies failed"
  fi
  local j
  for j in "kafka_2.13-$KAFKA_VERSION.jar" "kafka-server-$KAFKA_VERSION.jar" "kafka-raft-$KAFKA_VERSION.jar" \
           "kafka-tools-$KAFKA_VERSION.jar" slf4j-reload4j-1.7.36.jar reload4j-1.2.25.jar; do
    [[ -f "$tmp/$j" ]] || { rm -rf "$tmp"; die "jar $j missing after mvn"; }
  done
  sha256sum < "$RUNTIME/pom.xml" > "$tmp/.complete"
  rm -rf "$LIBS"; mv "$tmp" "$LIBS"
  say "jars ready: $(ls "$LIBS" | wc -l) files, $(du -sh "$LIBS" | cut -f1), $(since "$t0") s"
  exec 8>&-
}

# --- config / format ---------------------------------------------------------------------------

write_config() {
  cat > "$CFG" <<EOF
# generated by scripts/kafka.sh -- edits are overwritten on every start
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
# single node: internal topics with RF 1 and few partitions
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
# tests create their topics explicitly
auto.create.topics.enable=false
# fast group joins and short session timeouts in tests
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
# after a crash (kill -9) the restarted controller rejects the broker's re-registration
# (DUPLICATE_BROKER_REGISTRATION) until the old session expires: default 9 s -> ~16 s restarts
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
# 128 MB by default, allocated on the heap at startup
log.cleaner.dedupe.buffer.size=33554432
EOF
}

gen_cluster_id() {  # 16 random bytes, base64url without padding, not starting with '-' (like Uuid.randomUuid)
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* ]] && { echo "$id"; return; }
  done
}

format_storage() {
  local t0 id; t0="$(now)"; id="$(gen_cluster_id)"
  rm -rf "$DATA"; mkdir -p "$DATA"
  if ! "$JAVA" -Xmx256m "$LOGOPT" -cp "$LIBS/*" kafka.tools.StorageTool format -t "$id" -c "$CFG" \
        >> "$KDIR/format.log" 2>&1; then
    tail -n 30 "$KDIR/format.log" >&2; die "StorageTool format failed"
  fi
  say "formatted ${DATA#"$ROOT"/} (cluster id $id) in $(since "$t0") s"
}

# --- start / stop ------------------------------------------------------------------------------

launch() {
  [[ -f "$LOG" ]] && mv -f "$LOG" "$LOG.1"
  # setsid: own session, so a Ctrl-C / SIGHUP of the calling terminal or npm does not reach it.
  # 8>&- 9>&-: the broker must not inherit the flock fds, or it would hold the lock forever.
  # shellcheck disable=SC2086
  setsid "$JAVA" $HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true "$LOGOPT" \
    -cp "$LIBS/*" kafka.Kafka "$CFG" < /dev/null >> "$LOG" 2>&1 8>&- 9>&- &
  local pid=$!
  sleep 0.2
  # setsid forks only when it is a process group leader; fall back to scanning /proc
  if ! is_our_broker "$pid"; then
    pid="$(our_pids | head -n1)"
  fi
  echo "$pid" > "$PIDF"
}

# wait_ready <pid> <t0>: 0 when ready, 1 if the process died, 2 on timeout
wait_ready() {
  local pid="$1" t0="$2" deadline=$((SECONDS + START_TIMEOUT))
  while (( SECONDS < deadline )); do
    if [[ -n "$pid" ]] && ! pid_alive "$pid"; then return 1; fi
    if grep -q 'Kafka Server started' "$LOG" 2>/dev/null && kafka_answers "$PORT"; then
      say "broker ready on 127.0.0.1:$PORT (pid $pid) after $(since "$t0") s"
      return 0
    fi
    sleep 0.25
  done
  return 2
}

fail_start() {
  echo "kafka: ---- last 60 lines of ${LOG#"$ROOT"/} ----" >&2
  tail -n 60 "$LOG" >&2 || true
  die "$1"
}

cmd_start() {
  mkdir -p "$KDIR"
  exec 9>"$KDIR/.lock"
  flock -w 300 9 || die "timed out waiting for another kafka.sh start/stop"

  local pid; pid="$(recorded_pid)"
  if kafka_answers "$PORT"; then
    say "a broker is already answering on 127.0.0.1:$PORT${pid:+ (pid $pid)}; nothing to do"
    return 0
  fi
  if [[ -n "$pid" ]] && ! grep -q "^listeners=PLAINTEXT://127.0.0.1:$PORT," "$CFG" 2>/dev/null; then
    die "the broker started by this script (pid $pid) uses $(grep '^listeners=' "$CFG"), not port $PORT; run 'kafka.sh stop' first"
  fi
  if [[ -n "$pid" ]]; then
    say "broker pid $pid is alive but not answering yet; waiting for it"
    local rc=0; wait_ready "$pid" "$(now)" || rc=$?
    (( rc == 0 )) && return 0
    kill_pid "$pid"
    fail_start "broker pid $pid did not become ready (killed it)"
  fi
  # leftovers of a crashed run: stale pid file, or our JVM running without a pid file
  rm -f "$PIDF"
  for pid in $(our_pids); do say "killing orphaned broker pid $pid"; kill_pid "$pid"; done

  port_open "$PORT" && die "port $PORT is in use by something that is not a Kafka broker (set KADE_KAFKA_PORT)"
  port_open "$CPORT" && die "controller port $CPORT is in use (set KADE_KAFKA_CONTROLLER_PORT)"
  command -v "$JAVA" >/dev/null || die "java not found (apt-get install openjdk-17-jre-headless)"

  cmd_fetch
  write_config
  [[ "${KADE_KAFKA_FRESH:-0}" == 1 ]] && rm -rf "$DATA"
  local reused=0
  if [[ -f "$DATA/meta.properties" ]] && grep -q '^node.id=1$' "$DATA/meta.properties"; then
    reused=1
    say "reusing formatted storage ${DATA#"$ROOT"/} ($(grep '^cluster.id=' "$DATA/meta.properties"))"
  else
    format_storage
  fi

  local t0 rc=0; t0="$(now)"
  launch; pid="$(cat "$PIDF")"
  say "starting broker pid $pid on 127.0.0.1:$PORT (controller $CPORT), log ${LOG#"$ROOT"/}"
  wait_ready "$pid" "$t0" || rc=$?
  if (( rc == 1 && reused == 1 )); then
    say "broker exited while starting on reused storage; wiping and reformatting once"
    echo "kafka: ---- last 20 lines of the failed start ----"; tail -n 20 "$LOG" || true
    format_storage
    t0="$(now)"; rc=0
    launch; pid="$(cat "$PIDF")"
    wait_ready "$pid" "$t0" || rc=$?
  fi
  case "$rc" in
    0) return 0 ;;
    1) rm -f "$PIDF"; fail_start "broker process exited during startup" ;;
    *) kill_pid "$pid"; rm -f "$PIDF"; fail_start "broker not ready after ${START_TIMEOUT}s (killed it)" ;;
  esac
}

# kill_pid <pid>: SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL
kill_pid() {
  local pid="$1" deadline=$((SECONDS + STOP_TIMEOUT))
  pid_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  while pid_alive "$pid" && (( SECONDS < deadline )); do sleep 0.2; done
  if pid_alive "$pid"; then
    say "pid $pid still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while pid_alive "$pid"; do sleep 0.1; done
  fi
}

cmd_stop() {
  mkdir -p "$KDIR"
  exec 9>"$KDIR/.lock"
  flock -w 300 9 || die "timed out waiting for another kafka.sh start/stop"
  local pids pid t0; t0="$(now)"
  pids="$( { recorded_pid; our_pids; } | sort -u)"
  if [[ -z "$pids" ]]; then
    rm -f "$PIDF"
    if kafka_answers "$PORT"; then
      say "a broker answers on 127.0.0.1:$PORT but was not started by this script; leaving it alone"
    else
      say "not running"
    fi
    return 0
  fi
  for pid in $pids; do kill_pid "$pid"; done
  rm -f "$PIDF"
  say "stopped (pid $(echo $pids)) in $(since "$t0") s"
}

cmd_status() {
  local pid; pid="$(recorded_pid)"
  if kafka_answers "$PORT"; then
    say "running: 127.0.0.1:$PORT answers${pid:+ (pid $pid, started by this script)}"
    return 0
  fi
  if [[ -n "$pid" ]]; then say "pid $pid alive but 127.0.0.1:$PORT not answering (starting or wedged)"
  else say "not running on 127.0.0.1:$PORT"; fi
  return 3
}

cmd_logs() {
  local follow="" n=100 a
  for a in "$@"; do case "$a" in -f|--follow) follow=1 ;; *) n="$a" ;; esac; done
  [[ -f "$LOG" ]] || die "no log yet (${LOG#"$ROOT"/})"
  if [[ -n "$follow" ]]; then exec tail -n "$n" -F "$LOG"; else tail -n "$n" "$LOG"; fi
}

cmd_reset() {
  cmd_stop
  rm -rf "$DATA" "$CFG"
  say "deleted ${DATA#"$ROOT"/}"
}

cmd_tool() {
  [[ $# -ge 1 ]] || die "usage: kafka.sh tool <main class> [args...]"
  cmd_fetch
  exec "$JAVA" -Xmx256m "$LOGOPT" -cp "$LIBS/*" "$@"
}

case "${1:-}" in
  start)  cmd_start ;;
  stop)   cmd_stop ;;
  status) cmd_status ;;
  logs)   shift; cmd_logs "$@" ;;
  fetch)  cmd_fetch; say "jars in ${LIBS#"$ROOT"/}" ;;
  reset)  cmd_reset ;;
  tool)   shift; cmd_tool "$@" ;;
  *) echo "usage: $0 start|stop|status|logs [-f] [N]|fetch|reset|tool <class> [args]" >&2; exit 2 ;;
esac
