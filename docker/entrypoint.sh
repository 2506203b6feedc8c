#!/usr/bin/env bash
# Entry point of the Jetson image: make sure the TensorRT engine for this GPU, JetPack and
# TensorRT exists in the cache volume (building it on first start), then exec skelmtl.
#
#   docker run ... skelmtl:jp6                       # the image's CMD: run on camera 0
#   docker run ... skelmtl:jp6 run --source 0 --publish zmq+tcp://*:5556
#   docker run ... skelmtl:jp6 selfcheck             # prove TensorRT here (docs/jetson.md)
#   docker run ... skelmtl:jp6 prepare-engine        # build (or find) the engine, print it
#   docker run ... skelmtl:jp6 run --model=@engine --backend tensorrt ...  # @engine = its path
#   docker run ... skelmtl:jp6 run --model /data/other.onnx ...   # no engine step
#   docker run ... skelmtl:jp6 bench --engine-cache /cache/engines  # bench uses the same cache
#
# `run` without --model gets `--model <cached engine>`; in any other command an argument
# `@engine` (or `--model=@engine`) is replaced by that path. SKELMTL_ENGINE_BUILD=off skips
# the engine step (e.g. to run the ONNX model on the CPU with the ONNX Runtime backend).
# SKELMTL_ENGINE_FALLBACK=cpu: when the engine cannot be built, `run` falls back to the ONNX
# model on ONNX Runtime (CPU) instead of exiting, says so on stderr, and the health check
# reports the degraded state; off by default.
set -euo pipefail
# Without this, `set -e` does not apply inside $(...), and a failed engine build would go
# unnoticed; every $(...) below also checks its status explicitly.
shopt -s inherit_errexit

state_dir="${SKELMTL_STATE_DIR:-/tmp/skelmtl}"
python="${SKELMTL_PYTHON:-python3}"
placeholder="@engine"

has_model_arg() {
    local a
    for a in "$@"; do
        case "$a" in --model | --model=*) return 0 ;; esac
    done
    return 1
}

has_placeholder() {
    local a
    for a in "$@"; do
        case "$a" in *"$placeholder"*) return 0 ;; esac
    done
    return 1
}

# Prints the engine path; builds it on first start (its log goes to stderr).
ensure_engine() {
    local out
    # The cache folder: $SKELMTL_ENGINE_CACHE, else $SKELMTL_CACHE/engines (/cache/engines).
    out="$("$python" -m edge.engine.cache ensure)" || return
    # The last line is the path, whatever a library may have printed before it.
    out="${out##*$'\n'}"
    if [ ! -s "$out" ]; then
        echo "skelmtl-entrypoint: the engine cache returned no engine (got '$out')" >&2
        return 1
    fi
    mkdir -p "$state_dir"
    # The health check reads this to verify the engine is still in the volume.
    printf '%s\n' "$out" >"$state_dir/engine"
    printf '%s\n' "$out"
}

if [ "${1:-}" = "prepare-engine" ]; then
    shift
    exec "$python" -m edge.engine.cache ensure "$@"
fi

# The device check: it finds or builds the engine itself, in the same cache.
if [ "${1:-}" = "selfcheck" ]; then
    shift
    exec "$python" -m calibration.selfcheck "$@"
fi

if [ "${SKELMTL_ENGINE_BUILD:-auto}" != "off" ]; then
    if [ "${1:-}" = "run" ] && ! has_model_arg "$@"; then
        shift
        rm -f "$state_dir/fallback"
        if engine="$(ensure_engine)"; then
            set -- run --model "$engine" "$@"
        else
            status=$?
            # Opt-in: keep the robot served by the CPU rather than restart-looping on an
            # engine this device cannot build. Off by default: slower inference must be chosen.
            if [ "${SKELMTL_ENGINE_FALLBACK:-off}" != "cpu" ]; then
                exit "$status"
            fi
            model="${SKELMTL_MODEL:-}"
            if [ -z "$model" ]; then
                model="$("$python" -c 'from edge.engine.cache import shipped_model; print(shipped_model())')" || exit
            fi
            echo "skelmtl-entrypoint: no TensorRT engine (the reason is above); SKELMTL_ENGINE_FALLBACK=cpu: running $model with ONNX Runtime on the CPU" >&2
            mkdir -p "$state_dir"
            rm -f "$state_dir/engine"
            printf 'ONNX Runtime on the CPU: the TensorRT engine build failed (exit %s)\n' "$status" >"$state_dir/fallback"
            set -- run --model "$model" --backend onnxruntime "$@"
        fi
    elif has_placeholder "$@"; then
        engine="$(ensure_engine)" || exit
        args=()
        for a in "$@"; do
            args+=("${a//"$placeholder"/$engine}")
        done
        set -- "${args[@]}"
    fi
elif has_placeholder "$@"; then
    echo "skelmtl-entrypoint: $placeholder given but SKELMTL_ENGINE_BUILD=off" >&2
    exit 2
fi

exec skelmtl "$@"
