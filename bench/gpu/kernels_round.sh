#!/usr/bin/env bash
# The kernel layer on one GPU (BENCHMARKS.md, "The step with the kernel layer"), in parts that each fit one device
# call. `core`: the kernel tests on the GPU; the engine's defaults (Triton fused MoE) against the grouped matmuls of
# the previous main and against the fastest options (canvas attention, fp8 dense projections, compiled layers), each
# with W1-W5, the decoder forward alone and its kernel profile; the fast paths' logits against the stock modules on
# the full 30 layers. `more`: bf16 on grouped matmuls and with the canvas attention, the quantized formats, the first
# completion from process start with cold and then warm kernel caches, and W1/W3 with int4 experts under a 22 GB
# cap. `sweep` re-tunes the fused MoE tiles (rewrites engine/kernels/moe_tiles.json). `load`: `quantize` on the
# full-size shape (18 of 30 layers: source and output fit the machine's disk) and loading its int4 output onto the
# GPU with the page cache cold and warm:
#
#     bench/gpu/kernels_round.sh OUT_DIR WHEEL_DIR core|more|sweep|load
#
# WHEEL_DIR: wheels to install first (a newer transformers, where the machine's is too old). Each run is
# time-boxed and its log kept in OUT_DIR; OUT_DIR/round.tgz holds every log and JSON.
set -u
out=${1:?usage: bench/gpu/kernels_round.sh OUT_DIR WHEEL_DIR core|more|sweep|load}
wheels=${2:?} part=${3:?}
mkdir -p "$out/files"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/dc-site "$wheels"/*.whl
mkdir -p /tmp/dc-pkg/diffusion_copilot
for package in engine server models; do ln -sfn "$PWD/$package" /tmp/dc-pkg/diffusion_copilot/$package; done
export PYTHONPATH=/tmp/dc-site:/tmp/dc-pkg PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/files/device.txt"
deadline=$((SECONDS + ${ROUND_SECONDS:-500}))  # the whole part ends inside one device call
run() {  # label, seconds (cut to the time left), command...
    local label=$1 seconds=$2
    shift 2
    local started=$SECONDS left=$((deadline - SECONDS))
    ((left < seconds)) && seconds=$left
    ((seconds < 20)) && { echo "== $label skipped: no time left"; return; }
    timeout "$seconds" "$@" > "$out/files/$label.log" 2>&1
    echo "== $label (exit $?, $((SECONDS - started)) s)"
    grep -E '^(W[0-9]|profile| +load on| +[a-z0-9]+ \(dense|source:|engine decoder|decoder|first completion|  +[0-9.]+ ms|bf16|fp8|int|nvfp4|[a-z_0-9]+ +[0-9.]+ |[0-9]+ (passed|failed)|FAILED|.*(passed|failed) in|\[.*FAILED)' \
        "$out/files/$label.log" | cut -c1-220 | tail -30
    tar czf "$out/round.tgz" -C "$out/files" .
}
engine() {  # label, seconds, options...
    local label=$1 seconds=$2
    shift 2
    run "$label" "$seconds" python3 -m bench.gpu.engine --out "$out/files" --label "$label" \
        --workloads "${workloads:-step-engine,W1,W2,W3,W4,W5,profile}" "$@"
}
profile() {  # the heaviest kernels of each run's profiled forward
    python3 - "$out/files" <<'EOF'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("gpu_engine*.json")):
    record = json.loads(path.read_text()).get("workloads", {}).get("profile", {})
    if "top_kernels" in record:
        print(f"-- {path.stem}: forward {record['forward_ms']:.2f} ms, busy {record['kernel_ms_per_forward']:.2f} ms")
        for k in record["top_kernels"][:10]:
            print(f"   {k['ms_per_forward']:6.3f} ms x{k['count']:5.1f}  {k['name'][:110]}")
EOF
}
grouped=(--engine-option triton_moe=false)
canvas=(--engine-option canvas_attention=true)
fastest=("${canvas[@]}" --engine-option compile_layers=true)
case $part in
core)  # most wanted first: a part cut short by the deadline still answers the main questions
    workloads=step-engine,W1,W2,W3,W4,W5,W7,W8,profile engine fp8 100 --fp8  # W7/W8: completion vs edit, 128
    engine bf16 80
    run fastpath 90 python3 -m bench.gpu.fastpath_check --layers 30 --canvas 64 --reps 3 \
        --out "$out/files/gpu_fastpath_check_30_layers.json"
    engine fp8_fastest 120 --fp8 --fp8-dense "${fastest[@]}"
    engine fp8_grouped 70 --fp8 "${grouped[@]}"
    run tests 100 python3 -m pytest -q -p no:cacheprovider -o addopts= tests/engine/kernels \
        tests/engine/weights/test_checkpoint.py tests/engine/weights/test_weight_formats.py
    profile
    ;;
more)
    engine bf16_grouped 80 "${grouped[@]}"
    run quant 110 python3 -m bench.gpu.quant_check --layers 24  # 30 bf16 layers and their fp8 copy overfill 80 GB
    cp bench/results/quant_check*.json "$out/files/" 2> /dev/null
    run first_cold 75 python3 -m bench.gpu.engine --out "$out/files" --first-completion --fp8 --label cold
    run first_warm 75 python3 -m bench.gpu.engine --out "$out/files" --first-completion --fp8 --label warm
    # int4 experts as on a 24 GB RTX card: the memory capped at 22 GB (the bandwidth stays the H100's)
    run int4_cap22 90 python3 -m bench.gpu.engine --out "$out/files" --workloads step-engine,W1,W3 --weights int4 \
        --memory-cap-gb 22 --label int4_cap22
    engine bf16_canvas 90 "${canvas[@]}"
    ;;
sweep)
    run sweep 330 python3 -m bench.gpu.moe_kernels --out "$out/files" --table engine/kernels/moe_tiles.json
    cp engine/kernels/moe_tiles.json "$out/files/"
    ;;
load)
    run quantize_load 480 python3 -m bench.latency.quantize --work /tmp/quantize-bench --layers 18 --formats int4 \
        --load cuda --out "$out/files/quantize_command_gpu.json"
    ;;
esac
tar czf "$out/round.tgz" -C "$out/files" .
