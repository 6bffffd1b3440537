#!/usr/bin/env bash
# The engine's optional GPU paths against its defaults, on one machine in one go (BENCHMARKS.md, "Compiled text
# layers" and "Prompts encoded together"): W1, W4, W5, the decoder forward and its kernel profile three times
# (as shipped; with compiled layers; with prompts encoded one at a time), the fast-path check with compiled
# layers, and the first completion of an engine loading the weights from safetensors in the page cache. Run from
# the repository root on a machine with one GPU:
#
#     bench/gpu/compare.sh OUT_DIR [WHEEL_DIR]
#
# WHEEL_DIR: wheels to install first (a newer transformers, where the machine's is too old). Each run is
# time-boxed and its log kept in OUT_DIR, so one failure leaves the others' results.
set -u
out=${1:?usage: bench/gpu/compare.sh OUT_DIR [WHEEL_DIR]}
mkdir -p "$out"
if [ -n "${2:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/dc-site "$2"/*.whl
    export PYTHONPATH=/tmp/dc-site${PYTHONPATH:+:$PYTHONPATH}
fi
if ! python3 -c "import diffusion_copilot.engine" 2> /dev/null; then  # a checkout, not installed: map engine/
    mkdir -p /tmp/dc-pkg/diffusion_copilot && ln -sfn "$PWD/engine" /tmp/dc-pkg/diffusion_copilot/engine
    export PYTHONPATH=/tmp/dc-pkg${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
workloads=W1,W4,W5,step-engine,profile
run() {  # label, seconds, module and its arguments...
    local label=$1 seconds=$2
    shift 2
    timeout "$seconds" python3 -m "$@" > "$out/$label.log" 2>&1
    echo "== $label (exit $?)"
    grep -E '^(W[0-9]|profile|engine decoder|  +[0-9.]+ ms|decoder step|  [a-z_0-9]+ +[0-9.e-]+, |saved|first)' \
        "$out/$label.log" | tail -40
}
run shipped 200 bench.gpu.engine --out "$out" --workloads $workloads --label shipped
run compiled 260 bench.gpu.engine --out "$out" --workloads $workloads --label compiled \
    --engine-option compile_layers=true
run one_at_a_time 200 bench.gpu.engine --out "$out" --workloads W5 --label one_at_a_time \
    --engine-option prefill_together=false
run fastpath 200 bench.gpu.fastpath_check --compile --canvas 64 --out "$out/gpu_fastpath_check_compiled.json"
# First completion with the weights loaded from safetensors in the page cache (just written): needs ~53 GB of disk.
checkpoint=/tmp/dc-random-26b
run save_checkpoint 300 bench.gpu.engine --out "$out" --save-checkpoint $checkpoint
run first_completion 200 bench.gpu.engine --out "$out" --first-completion --checkpoint $checkpoint
rm -rf $checkpoint
