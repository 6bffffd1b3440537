# mypy: disable-error-code="no-untyped-def, untyped-decorator"
# (Triton kernel bodies: their parameters are typed by Triton's JIT, not by annotations.)
"""The Triton kernels of weight-only quantized matmuls: int8 / fp8 per channel, int4 per 128 and NVFP4 per 16,
dequantized in registers. Imported only by quant_moe.py, on first use (this module imports Triton; Triton reads
TRITON_INTERPRET when a kernel is defined, so tests run these on the CPU).

fp8 bytes and NVFP4's e4m3 scales are decoded from their bits, so the same code runs in the interpreter and on GPUs
without fp8 conversion instructions. The MoE kernels follow fused_moe.py's (same routing, same blocks).
"""

import triton
import triton.language as tl

# FORMAT codes, as quant_moe.FORMAT_CODES maps the format names
INT8, FP8, INT4, NVFP4 = tl.constexpr(0), tl.constexpr(1), tl.constexpr(2), tl.constexpr(3)


@triton.jit
def _e4m3(bits):
    """float8 e4m3fn bits (int32) -> float32."""
    exponent = (bits >> 3) & 15
    mantissa = (bits & 7).to(tl.float32)
    normal = (1.0 + mantissa * 0.125) * tl.exp2((exponent - 7).to(tl.float32))
    value = tl.where(exponent == 0, mantissa * 0.001953125, normal)  # subnormal: m / 8 * 2^-6
    return tl.where((bits & 128) != 0, -value, value)


@triton.jit
def _weight_tile(
    w_base,
    s_base,
    global_scale,
    k,
    cols,
    mask,
    stride_wn,
    stride_wk,
    stride_sn,
    stride_sk,
    FORMAT: tl.constexpr,
    GROUP: tl.constexpr,
):
    """The [BLOCK_K, BLOCK_N] float32 tile of W^T at inputs `k` and outputs `cols`, scales applied."""
    if FORMAT == INT8:
        w = tl.load(w_base + k[:, None] * stride_wk + cols[None, :] * stride_wn, mask=mask, other=0).to(tl.float32)
    elif FORMAT == FP8:
        raw = tl.load(w_base + k[:, None] * stride_wk + cols[None, :] * stride_wn, mask=mask, other=0)
        w = _e4m3(raw.to(tl.int32) & 255)
    else:
        byte = tl.load(w_base + (k // 2)[:, None] * stride_wk + cols[None, :] * stride_wn, mask=mask, other=0)
        nibble = (byte.to(tl.int32) >> ((k % 2) * 4)[:, None]) & 15
        if FORMAT == INT4:
            w = (nibble - 8).to(tl.float32)
        else:  # NVFP4: e2m1, sign in bit 3
            exponent = (nibble >> 1) & 3
            half = (nibble & 1).to(tl.float32) * 0.5
            magnitude = tl.where(exponent == 0, half, (1.0 + half) * tl.exp2((exponent - 1).to(tl.float32)))
            w = tl.where((nibble & 8) != 0, -magnitude, magnitude)
    scales = s_base + (k // GROUP)[:, None] * stride_sk + cols[None, :] * stride_sn
    if FORMAT == NVFP4:
        scale = _e4m3(tl.load(scales, mask=mask, other=0).to(tl.int32) & 255) / global_scale
    else:
        scale = tl.load(scales, mask=mask, other=0.0).to(tl.float32)
    return w * scale


@triton.jit
def linear_kernel(
    x_ptr,
    w_ptr,
    s_ptr,
    g_ptr,
    out_ptr,
    rows,
    in_features,
    out_features,
    stride_x,
    stride_wn,
    stride_wk,
    stride_sn,
    stride_sk,
    stride_out,
    FORMAT: tl.constexpr,
    GROUP: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    # One program: BLOCK_M rows of x times BLOCK_N output columns of the quantized W [out, in].
    row = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    is_row, is_col = row < rows, cols < out_features
    if FORMAT == NVFP4:  # noqa: SIM108 (a constexpr branch: Triton resolves it when compiling)
        global_scale = tl.load(g_ptr).to(tl.float32)
    else:
        global_scale = 1.0
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, in_features, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        is_k = k < in_features
        a = tl.load(x_ptr + row[:, None] * stride_x + k[None, :], mask=is_row[:, None] & is_k[None, :], other=0.0)
        w = _weight_tile(
            w_ptr,
            s_ptr,
            global_scale,
            k,
            cols,
            is_k[:, None] & is_col[None, :],
            stride_wn,
            stride_wk,
            stride_sn,
            stride_sk,
            FORMAT,
            GROUP,
        )
        acc += tl.dot(a, w.to(a.dtype))
    out = out_ptr + row[:, None] * stride_out + cols[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=is_row[:, None] & is_col[None, :])


@triton.jit
def gate_up_kernel(
    x_ptr,
    w_ptr,
    s_ptr,
    g_ptr,
    out_ptr,
    pair_of_row_ptr,
    expert_of_block_ptr,
    pairs,
    num_experts,
    hidden,
    inter,
    top_k,
    stride_x,
    stride_we,
    stride_wn,
    stride_wk,
    stride_se,
    stride_sn,
    stride_sk,
    stride_out,
    FORMAT: tl.constexpr,
    GROUP: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    # One program: BLOCK_M rows of one expert x BLOCK_N columns of its gate and of its up projection, then gelu_tanh.
    block = tl.program_id(0)
    expert = tl.load(expert_of_block_ptr + block)
    if expert < num_experts:
        rows = block * BLOCK_M + tl.arange(0, BLOCK_M)
        pair = tl.load(pair_of_row_ptr + rows)
        is_row = pair < pairs
        token = pair // top_k
        cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        is_col = cols < inter
        w_base = w_ptr + expert.to(tl.int64) * stride_we
        s_base = s_ptr + expert.to(tl.int64) * stride_se
        if FORMAT == NVFP4:  # noqa: SIM108 (a constexpr branch: Triton resolves it when compiling)
            global_scale = tl.load(g_ptr + expert).to(tl.float32)
        else:
            global_scale = 1.0
        gate = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        up = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, hidden, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            is_k = k < hidden
            a = tl.load(x_ptr + token[:, None] * stride_x + k[None, :], mask=is_row[:, None] & is_k[None, :], other=0.0)
            mask = is_k[:, None] & is_col[None, :]
            wg = _weight_tile(
                w_base, s_base, global_scale, k, cols, mask, stride_wn, stride_wk, stride_sn, stride_sk, FORMAT, GROUP
            )
            wu = _weight_tile(
                w_base,
                s_base,
                global_scale,
                k,
                cols + inter,
                mask,
                stride_wn,
                stride_wk,
                stride_sn,
                stride_sk,
                FORMAT,
                GROUP,
            )
            gate += tl.dot(a, wg.to(a.dtype))
            up += tl.dot(a, wu.to(a.dtype))
        # gelu_tanh(g) = g * sigmoid(2 * sqrt(2 / pi) * (g + 0.044715 g^3)), as in fused_moe.py
        activated = gate * tl.sigmoid(1.5957691216057308 * (gate + 0.044715 * gate * gate * gate)) * up
        out = out_ptr + rows[:, None] * stride_out + cols[None, :]
        tl.store(out, activated.to(out_ptr.dtype.element_ty), mask=is_row[:, None] & is_col[None, :])


@triton.jit
def down_kernel(
    h_ptr,
    w_ptr,
    s_ptr,
    g_ptr,
    out_ptr,
    pair_of_row_ptr,
    expert_of_block_ptr,
    pairs,
    num_experts,
    inter,
    hidden,
    stride_h,
    stride_we,
    stride_wn,
    stride_wk,
    stride_se,
    stride_sn,
    stride_sk,
    stride_out,
    route_weights,
    FORMAT: tl.constexpr,
    GROUP: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    # One program: BLOCK_M rows of one expert x BLOCK_N hidden columns of its down projection, each row scaled by its
    # routing weight and written to its pair's row of the output.
    block = tl.program_id(0)
    expert = tl.load(expert_of_block_ptr + block)
    if expert < num_experts:
        rows = block * BLOCK_M + tl.arange(0, BLOCK_M)
        pair = tl.load(pair_of_row_ptr + rows)
        is_row = pair < pairs
        cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        is_col = cols < hidden
        w_base = w_ptr + expert.to(tl.int64) * stride_we
        s_base = s_ptr + expert.to(tl.int64) * stride_se
        if FORMAT == NVFP4:  # noqa: SIM108 (a constexpr branch: Triton resolves it when compiling)
            global_scale = tl.load(g_ptr + expert).to(tl.float32)
        else:
            global_scale = 1.0
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, inter, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            is_k = k < inter
            a = tl.load(h_ptr + rows[:, None] * stride_h + k[None, :], mask=is_row[:, None] & is_k[None, :], other=0.0)
            wd = _weight_tile(
                w_base,
                s_base,
                global_scale,
                k,
                cols,
                is_k[:, None] & is_col[None, :],
                stride_wn,
                stride_wk,
                stride_sn,
                stride_sk,
                FORMAT,
                GROUP,
            )
            acc += tl.dot(a, wd.to(a.dtype))
        acc *= tl.load(route_weights + pair, mask=is_row, other=0.0)[:, None]
        out = out_ptr + pair[:, None].to(tl.int64) * stride_out + cols[None, :]
        tl.store(out, acc, mask=is_row[:, None] & is_col[None, :])
