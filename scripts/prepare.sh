#!/usr/bin/env bash
# Makes a fresh clone runnable: system tools (Java 17, Maven, Redis) when missing, npm
# dependencies when missing or stale, the TypeScript build, then Redis and the Kafka broker.
#   bash scripts/prepare.sh            all of it
#   bash scripts/prepare.sh --no-services
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
export DEBIAN_FRONTEND=noninteractive KAFKAJS_NO_PARTITIONER_WARNING=1

java_major() {  # major version of `java` on PATH, 0 if none
  command -v java >/dev/null || { echo 0; return; }
  java -version 2>&1 | awk -F'"' '/version/ { split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit }'
}

pkgs=()
(( $(java_major) >= 17 )) || pkgs+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || pkgs+=(maven)
command -v redis-server >/dev/null || pkgs+=(redis-server)
command -v redis-cli >/dev/null || pkgs+=(redis-tools)
if (( ${#pkgs[@]} )); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "kade needs: ${pkgs[*]} (install them, e.g. sudo apt-get install ${pkgs[*]})" >&2
    exit 1
  fi
  echo "installing: ${pkgs[*]}"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${pkgs[@]}"
fi
command -v node >/dev/null && command -v npm >/dev/null || { echo "node/npm missing (Node >= 20 required)" >&2; exit 1; }

# npm ci when node_modules is missing or older than the lock file.
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi
npx tsc -p tsconfig.json
[[ "${1:-}" == "--no-services" ]] || bash scripts/services.sh start
