#!/usr/bin/env bash
# Docker HEALTHCHECK of the Jetson image; exit 0 healthy, 1 unhealthy (reason on stdout,
# which `docker inspect` shows). It checks, cheaply enough to run every 30 s:
#   1. the package still imports (venv and shared libraries intact);
#   2. the engine the entry point chose is still in the cache volume and not empty;
#   3. when SKELMTL_HEARTBEAT names a file the runtime touches while it processes frames,
#      that file is younger than SKELMTL_HEARTBEAT_MAX_AGE seconds (default 30).
set -uo pipefail

state_dir="${SKELMTL_STATE_DIR:-/tmp/skelmtl}"
python="${SKELMTL_PYTHON:-python3}"

if ! "$python" -c "import edge" >/dev/null 2>&1; then
    echo "unhealthy: the skelmtl package does not import"
    exit 1
fi

if [ -f "$state_dir/engine" ]; then
    engine="$(cat "$state_dir/engine")"
    if [ ! -s "$engine" ]; then
        echo "unhealthy: engine $engine is missing or empty (was the cache volume removed?)"
        exit 1
    fi
fi

heartbeat="${SKELMTL_HEARTBEAT:-}"
if [ -n "$heartbeat" ]; then
    if [ ! -e "$heartbeat" ]; then
        echo "unhealthy: no heartbeat file $heartbeat"
        exit 1
    fi
    age=$(($(date +%s) - $(stat -c %Y "$heartbeat")))
    if [ "$age" -gt "${SKELMTL_HEARTBEAT_MAX_AGE:-30}" ]; then
        echo "unhealthy: heartbeat $heartbeat is ${age}s old"
        exit 1
    fi
fi

if [ -f "$state_dir/fallback" ]; then
    # still serving, so healthy for Docker; `docker inspect` shows why it is slower
    echo "healthy (degraded: $(cat "$state_dir/fallback"))"
    exit 0
fi

echo "healthy"
exit 0
