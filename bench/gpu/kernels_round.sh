#!/usr/bin/env bash
# The kernel layer on one GPU (BENCHMARKS.md, "Triton kernels"), in two parts so each fits one device call; the
# engine part runs the defaults (Triton fused MoE) against the grouped matmuls, with and without the canvas
# attention and fp8 dense projections:
#
#     bench/gpu/kernels_round.sh OUT_DIR WHEEL_DIR checks   # kernel tests on the GPU, then the MoE tile sweep,
#                                                           # which rewrites engine/kernels/moe_tiles.json
#     bench/gpu/kernels_round.sh OUT_DIR WHEEL_DIR engine   # the engine's step and workloads per kernel path
#
# WHEEL_DIR: wheels to install first (a newer transformers, where the machine's is too old). Each run is
# time-boxed and its log kept in OUT_DIR.
set -u
out=${1:?usage: bench/gpu/kernels_round.sh OUT_DIR WHEEL_DIR checks|engine}
wheels=${2:?} part=${3:?}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/dc-site "$wheels"/*.whl
mkdir -p /tmp/dc-pkg/diffusion_copilot
for package in engine server models; do ln -sfn "$PWD/$package" /tmp/dc-pkg/diffusion_copilot/$package; done
export PYTHONPATH=/tmp/dc-site:/tmp/dc-pkg PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/device.txt"
run() {  # label, seconds, command...
    local label=$1 seconds=$2
    shift 2
    timeout "$seconds" "$@" > "$out/$label.log" 2>&1
    echo "== $label (exit $?)"
    grep -E '^(W[0-9]|profile|engine decoder|decoder|  +[0-9.]+ ms|bf16|fp8|[0-9]+ (passed|failed)|FAILED|.*(passed|failed) in)' \
        "$out/$label.log" | tail -40
}
engine() {  # label, options...
    local label=$1
    shift
    run "$label" 120 python3 -m bench.gpu.engine --out "$out" --workloads step-engine,W1,W3,W4,W5 --label "$label" "$@"
}
grouped=(--engine-option triton_moe=false)
canvas=(--engine-option canvas_attention=true)
case $part in
checks)
    run tests 150 python3 -m pytest -q -p no:cacheprovider -o addopts= tests/engine/kernels/test_fused_moe.py tests/engine/kernels/test_moe_tiles.py \
        tests/engine/kernels/test_canvas_attention.py tests/engine/kernels/test_grouped_moe.py tests/engine/kernels/test_cuda_graphs.py tests/engine/weights/test_checkpoint.py
    run sweep 330 python3 -m bench.gpu.moe_kernels --out "$out" --table engine/kernels/moe_tiles.json
    cp engine/kernels/moe_tiles.json "$out/"
    ;;
engine)
    engine fp8_grouped --fp8 "${grouped[@]}"
    engine fp8 --fp8
    engine fp8_canvas --fp8 "${canvas[@]}"
    engine fp8_canvas_dense --fp8 --fp8-dense "${canvas[@]}"
    engine bf16_grouped "${grouped[@]}"
    engine bf16 "${canvas[@]}"
    ;;
esac
