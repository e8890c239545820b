#!/usr/bin/env bash
# `npm run demo`: prepare everything, then run kade's main job on the bundled demo log.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
bash "$ROOT/scripts/prepare.sh"
KADE_LOG_LEVEL="${KADE_LOG_LEVEL:-warn}" exec node "$ROOT/dist/src/cli.js" demo
