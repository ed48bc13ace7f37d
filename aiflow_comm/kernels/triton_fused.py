"""Triton projection fused with group quantization: one tiled matmul per program, no float tile.

``project_quantize_triton`` computes ``x @ W.T + b`` tile by tile (``tl.dot`` over ``K`` blocks,
float32 accumulation) and quantizes each output tile in the matmul's epilogue, so the float
projection is never written to memory. A program owns ``BLOCK_M`` rows and whole quantization
groups of output columns. Groups map onto the tile in *group space*: a tile is ``GPB`` groups of
``WIDTH`` columns (``WIDTH`` the group size rounded up to a power of two), column ``j`` of group
``g`` being output feature ``g * G + j``; padding columns (``j >= G``, or past ``out_features``)
load zero weights and never reach the codes. A group wider than ``_MAX_TILE_N`` columns is cut
into chunks of ``_CHUNK_N`` columns: the program then owns one group and runs its matmul twice, a
first pass for the group's max/min and a second one for the codes (the same tiles in the same
order, hence the same values). The epilogue is :mod:`aiflow_comm.kernels.triton_quant`'s: the
same scale formula, IEEE division and round-half-to-even trick, so a tile's codes are the
reference's codes of the values the tile holds.

``dequantize_project_triton`` is the converse: a dequantization prologue decodes a block of codes
(whole groups, or a chunk of one wide group) into float32 registers, ``tl.dot`` multiplies it with
the weight tile, and the epilogue adds the bias and stores the output.

Float32 operands go through ``tl.dot(..., input_precision="ieee")``, never TF32; float16 and
bfloat16 operands of one dtype go to ``tl.dot`` as they are (their products are exact in float32,
the sums float32). The sums may run in another order than the reference's matmul: see
:mod:`aiflow_comm.kernels.fused` for what that allows.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from aiflow_comm.kernels.layout import GroupLayout, empty_packed
from aiflow_comm.kernels.triton_quant import (
    code_byte_mask,
    code_tile,
    group_scale,
    nan_max,
    nan_min,
    store_scales,
    tile_stats,
    to_bfloat16,
)

__all__ = ["dequantize_project_triton", "project_quantize_triton"]

_TILE_N = 128  # output columns a project_quantize program aims for
_MAX_TILE_N = 256  # a group up to this wide is one tile; wider groups are cut into chunks
_CHUNK_N = 128  # columns per chunk of a wide group
_TILE_K = 64  # dequantize_project: decoded values per K step (whole groups, or a chunk of one)
_BLOCK_M = 64
_TILE_FLOATS = 8192  # float32 accumulators of a program's tile
_BLOCK_K = 32  # project_quantize: input features per K step
_BLOCK_N = 64  # dequantize_project: output columns per program
_MIN_DOT = 16  # tl.dot needs every tile dimension >= 16
_NUM_WARPS = 4


@triton.jit
def _project_tile(
    x_ptr, w_ptr, b_ptr, rows, row_mask, cols, col_mask, K,
    stride_xm, stride_xk, stride_wn, stride_wk,
    HAS_BIAS: tl.constexpr, SAME16: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """``x[rows] @ W[cols].T + b[cols]`` as a float32 ``(BM, BN)`` tile; masked columns are 0."""
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    x_rows = x_ptr + rows[:, None] * stride_xm
    w_cols = w_ptr + cols[None, :] * stride_wn
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K).to(tl.int64)
        k_mask = k < K
        a = tl.load(x_rows + k[None, :] * stride_xk, row_mask[:, None] & k_mask[None, :], other=0.0)
        b = tl.load(w_cols + k[:, None] * stride_wk, k_mask[:, None] & col_mask[None, :], other=0.0)
        if SAME16:  # float16/bfloat16 products are exact in the float32 accumulator
            acc = tl.dot(a, b, acc)
        else:
            acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    if HAS_BIAS:
        acc += tl.load(b_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)[None, :]
    return acc


@triton.jit
def _tile_columns(g0, c, N, G, GPB: tl.constexpr, WIDTH: tl.constexpr):
    """Output features of chunk ``c`` of groups ``g0 .. g0 + GPB`` (group-major), and a mask."""
    t = tl.arange(0, GPB * WIDTH)
    pos = c * WIDTH + t % WIDTH
    cols = (g0 + t // WIDTH).to(tl.int64) * G + pos
    return cols, (pos < G) & (cols < N)


@triton.jit
def _project_quantize_kernel(
    x_ptr, w_ptr, b_ptr, codes_ptr, scales_ptr, zero_points_ptr,
    M, N, K, G, n_groups, group_bytes, row_bytes, stride_xm, stride_xk, stride_wn, stride_wk,
    BITS: tl.constexpr, SYMMETRIC: tl.constexpr, PADDED: tl.constexpr,
    HAS_BIAS: tl.constexpr, SAME16: tl.constexpr, BM: tl.constexpr, GPB: tl.constexpr,
    WIDTH: tl.constexpr, N_CHUNKS: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """Quantize the projection of ``BM`` rows on ``GPB`` groups of ``N_CHUNKS`` chunks."""
    VPB: tl.constexpr = 8 // BITS
    BN: tl.constexpr = GPB * WIDTH
    m0 = tl.program_id(0).to(tl.int64) * BM
    g0 = tl.program_id(1).to(tl.int64) * GPB
    rows = m0 + tl.arange(0, BM)
    row_mask = rows < M
    # The tile seen as BM * GPB groups of WIDTH values: row r is (row m0 + r // GPB, group
    # g0 + r % GPB), the layout of triton_quant's group tiles.
    r = tl.arange(0, BM * GPB)
    t_row = m0 + r // GPB
    t_group = g0 + r % GPB
    valid = (t_row < M) & (t_group < n_groups)
    first = t_group * G
    first_byte = t_group * group_bytes
    codes_base = codes_ptr + t_row * row_bytes + first_byte
    i = tl.arange(0, WIDTH)
    j = tl.arange(0, WIDTH // VPB)

    cols, col_mask = _tile_columns(g0, 0, N, G, GPB, WIDTH)
    acc = _project_tile(
        x_ptr, w_ptr, b_ptr, rows, row_mask, cols, col_mask, K,
        stride_xm, stride_xk, stride_wn, stride_wk, HAS_BIAS, SAME16, BM, BN, BLOCK_K,
    )  # fmt: skip
    y = tl.reshape(acc, BM * GPB, WIDTH)
    mask = (i[None, :] < G) & (first[:, None] + i[None, :] < N)
    high, low = tile_stats(y, mask, SYMMETRIC, PADDED)
    for c in range(1, N_CHUNKS):  # first pass over a wide group: its max/min
        cols_c, col_mask_c = _tile_columns(g0, c, N, G, GPB, WIDTH)
        acc_c = _project_tile(
            x_ptr, w_ptr, b_ptr, rows, row_mask, cols_c, col_mask_c, K,
            stride_xm, stride_xk, stride_wn, stride_wk, HAS_BIAS, SAME16, BM, BN, BLOCK_K,
        )  # fmt: skip
        i_c = c * WIDTH + i
        mask_c = (i_c[None, :] < G) & (first[:, None] + i_c[None, :] < N)
        high_c, low_c = tile_stats(tl.reshape(acc_c, BM * GPB, WIDTH), mask_c, SYMMETRIC, PADDED)
        high = nan_max(high, high_c)
        low = nan_min(low, low_c)
    scale = group_scale(high, low, BITS, SYMMETRIC)
    nan_possible = tl.max(tl.where(scale < float("inf"), 0, 1)) > 0
    if N_CHUNKS == 1:
        codes = code_tile(
            y, i, mask, low, scale, nan_possible, 0, 0,
            BITS, SYMMETRIC, False, PADDED, BM * GPB, WIDTH,
        )  # fmt: skip
        byte_mask = code_byte_mask(valid, j, first_byte, group_bytes, row_bytes)
        tl.store(codes_base[:, None] + j[None, :], codes, mask=byte_mask)
    else:
        for c in range(N_CHUNKS):  # second pass: the same tiles again, quantized
            cols_c, col_mask_c = _tile_columns(g0, c, N, G, GPB, WIDTH)
            acc_c = _project_tile(
                x_ptr, w_ptr, b_ptr, rows, row_mask, cols_c, col_mask_c, K,
                stride_xm, stride_xk, stride_wn, stride_wk, HAS_BIAS, SAME16, BM, BN, BLOCK_K,
            )  # fmt: skip
            i_c = c * WIDTH + i
            j_c = c * (WIDTH // VPB) + j
            mask_c = (i_c[None, :] < G) & (first[:, None] + i_c[None, :] < N)
            codes = code_tile(
                tl.reshape(acc_c, BM * GPB, WIDTH), i_c, mask_c, low, scale, nan_possible, 0, 0,
                BITS, SYMMETRIC, False, PADDED, BM * GPB, WIDTH,
            )  # fmt: skip
            byte_mask_c = code_byte_mask(valid, j_c, first_byte, group_bytes, row_bytes)
            tl.store(codes_base[:, None] + j_c[None, :], codes, mask=byte_mask_c)
    t = t_row * n_groups + t_group
    store_scales(scales_ptr, zero_points_ptr, t, valid, high, low, scale, SYMMETRIC)


@triton.jit
def _dequantize_project_kernel(
    codes_ptr, scales_ptr, zero_points_ptr, w_ptr, b_ptr, out_ptr,
    M, N, K, G, n_groups, group_bytes, row_bytes, stride_wn, stride_wk,
    BITS: tl.constexpr, SYMMETRIC: tl.constexpr, HAS_BIAS: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, KPB: tl.constexpr, WIDTH: tl.constexpr,
    N_CHUNKS: tl.constexpr,
):  # fmt: skip
    """``BM x BN`` outputs: per K step, ``KPB`` groups (or a chunk of one) decoded, then dotted."""
    VPB: tl.constexpr = 8 // BITS
    rows = tl.program_id(0).to(tl.int64) * BM + tl.arange(0, BM)
    cols = tl.program_id(1).to(tl.int64) * BN + tl.arange(0, BN)
    row_mask = rows < M
    col_mask = cols < N
    t = tl.arange(0, KPB * WIDTH)
    w_cols = w_ptr + cols[None, :] * stride_wn
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for g0 in range(0, n_groups, KPB):
        group = (g0 + t // WIDTH).to(tl.int64)
        for c in range(N_CHUNKS):  # not unrolled: the pipeliner stages every unrolled dot
            pos = c * WIDTH + t % WIDTH
            k = group * G + pos
            k_mask = (pos < G) & (k < K)
            mask = row_mask[:, None] & k_mask[None, :]
            byte = rows[:, None] * row_bytes + (group * group_bytes + pos // VPB)[None, :]
            q = tl.load(codes_ptr + byte, mask=mask, other=0).to(tl.int32)
            if VPB > 1:
                q = (q >> ((pos % VPB) * BITS)[None, :]) & ((1 << BITS) - 1)
            if SYMMETRIC:
                q -= 1 << (BITS - 1)
            meta = rows[:, None] * n_groups + group[None, :]
            v = q.to(tl.float32) * tl.load(scales_ptr + meta, mask=mask, other=0.0)
            if not SYMMETRIC:  # a multiply, then an add: the reference's two roundings
                v = v + tl.load(zero_points_ptr + meta, mask=mask, other=0.0)
            a = tl.where(mask, v, 0.0)
            w_mask = k_mask[:, None] & col_mask[None, :]
            w = tl.load(w_cols + k[:, None] * stride_wk, w_mask, other=0.0).to(tl.float32)
            acc = tl.dot(a, w, acc, input_precision="ieee")
    if HAS_BIAS:
        acc += tl.load(b_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)[None, :]
    if out_ptr.dtype.element_ty == tl.bfloat16:
        out = to_bfloat16(acc)
    else:
        out = acc.to(out_ptr.dtype.element_ty)
    offsets = rows[:, None] * N + cols[None, :]
    tl.store(out_ptr + offsets, out, mask=row_mask[:, None] & col_mask[None, :])


def _block_m(rows: int, tile_n: int) -> int:
    """Rows per program: at most ``_TILE_FLOATS`` accumulators (64 registers a thread)."""
    return max(_MIN_DOT, min(_BLOCK_M, _TILE_FLOATS // tile_n, triton.next_power_of_2(rows)))


def _group_tiling(group: int, groups: int, bits: int, target: int, widest: int, chunk: int):
    """``(groups per tile, tile width per group, chunks per group)`` for groups of ``group``."""
    width = max(triton.next_power_of_2(group), 8 // bits)
    if width > widest:
        return 1, chunk, triton.cdiv(group, chunk)
    per_tile = min(max(target // width, 1), triton.next_power_of_2(groups))
    return max(per_tile, triton.cdiv(_MIN_DOT, width)), width, 1


def _bias_args(bias: torch.Tensor | None, weight: torch.Tensor) -> tuple[torch.Tensor, bool]:
    return (weight, False) if bias is None else (bias.contiguous(), True)


def project_quantize_triton(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    bits: int,
    group_size: int,
    symmetric: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``quantize_reference(x @ weight.T + bias)`` of a 2-D ``x``, one fused kernel.

    :input: ``x`` float ``(R, in)``, any strides; ``weight`` float ``(out, in)``, any strides;
        ``bias`` float ``(out,)`` or ``None``; all on one device (CPU: ``TRITON_INTERPRET=1``).
    :output: ``codes`` uint8 ``(R, row_bytes)``, ``scales`` float32 ``(R, num_groups)``,
        ``zero_points`` float32 ``(R, num_groups)`` (empty ``(0,)`` when symmetric), groups
        along the output features; a non-finite group gets a NaN scale.

    Example (on the CPU, with ``TRITON_INTERPRET=1`` set before import):
        >>> dev = "cuda" if torch.cuda.is_available() else "cpu"
        >>> x, w = torch.randn(3, 16, device=dev), torch.randn(8, 16, device=dev)
        >>> codes, scales, _ = project_quantize_triton(x, w, None, 4, 4, True)
        >>> tuple(codes.shape), tuple(scales.shape)
        ((3, 4), (3, 2))
    """
    rows, inp = x.shape
    out_features = weight.shape[0]
    layout = GroupLayout.of((rows, out_features), bits, group_size)
    codes, scales, zero_points = empty_packed(x, layout, symmetric)
    groups = layout.num_groups
    if rows == 0 or groups == 0:
        return codes, scales, zero_points
    group = min(group_size, out_features)  # a group as wide as the row: the same layout
    per_tile, width, chunks = _group_tiling(group, groups, bits, _TILE_N, _MAX_TILE_N, _CHUNK_N)
    block_m = _block_m(rows, per_tile * width)
    b, has_bias = _bias_args(bias, weight)
    # Triton's interpreter (3.9) multiplies bfloat16 operands as their raw uint16 bits: on the
    # CPU they go through the float32 path.
    same16 = x.dtype == weight.dtype and (
        x.dtype == torch.float16 or (x.dtype == torch.bfloat16 and x.is_cuda)
    )
    grid = (triton.cdiv(rows, block_m), triton.cdiv(groups, per_tile))
    _project_quantize_kernel[grid](
        x, weight, b, codes, scales, zero_points,
        rows, out_features, inp, group, groups, (group * bits + 7) // 8, layout.row_bytes,
        x.stride(0), x.stride(1), weight.stride(0), weight.stride(1),
        BITS=bits, SYMMETRIC=symmetric,
        PADDED=width * chunks != group or out_features % group != 0,
        HAS_BIAS=has_bias, SAME16=same16, BM=block_m, GPB=per_tile, WIDTH=width,
        N_CHUNKS=chunks, BLOCK_K=_BLOCK_K, num_warps=_NUM_WARPS, enable_fp_fusion=False,
    )  # fmt: skip
    return codes, scales, zero_points


def dequantize_project_triton(
    codes: torch.Tensor,
    scales: torch.Tensor,
    zero_points: torch.Tensor,
    bits: int,
    group_size: int,
    row_len: int,
    symmetric: bool,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``dequantize_reference(codes, ...) @ weight.T + bias`` in float32, cast to ``dtype``.

    :input: contiguous ``codes`` uint8 ``(R, row_bytes)``, ``scales`` and ``zero_points`` float32
        ``(R, num_groups)`` (``zero_points`` unused when symmetric) of rows of ``row_len``
        values; ``weight`` float ``(out, row_len)``, any strides; ``bias`` ``(out,)`` or ``None``.
    :output: ``(R, out)`` of ``dtype``.

    Example (on the CPU, with ``TRITON_INTERPRET=1`` set before import):
        >>> dev = "cuda" if torch.cuda.is_available() else "cpu"
        >>> x, w = torch.randn(3, 16, device=dev), torch.randn(8, 16, device=dev)
        >>> packed = project_quantize_triton(x, torch.eye(16, device=dev), None, 8, 4, True)
        >>> tuple(dequantize_project_triton(*packed, 8, 4, 16, True, w, None, x.dtype).shape)
        (3, 8)
    """
    rows, out_features = codes.shape[0], weight.shape[0]
    out = torch.empty((rows, out_features), dtype=dtype, device=codes.device)
    if rows == 0 or out_features == 0:
        return out
    layout = GroupLayout(rows=rows, row_len=row_len, bits=bits, group_size=group_size)
    group = max(min(group_size, row_len), 1)
    per_step, width, chunks = _group_tiling(
        group, layout.num_groups, bits, _TILE_K, _TILE_K, _TILE_K
    )
    block_n = min(_BLOCK_N, max(_MIN_DOT, triton.next_power_of_2(out_features)))
    block_m = _block_m(rows, block_n)
    b, has_bias = _bias_args(bias, weight)
    grid = (triton.cdiv(rows, block_m), triton.cdiv(out_features, block_n))
    _dequantize_project_kernel[grid](
        codes.contiguous(), scales.contiguous(), zero_points.contiguous(), weight, b, out,
        rows, out_features, row_len, group, layout.num_groups, (group * bits + 7) // 8,
        layout.row_bytes, weight.stride(0), weight.stride(1),
        BITS=bits, SYMMETRIC=symmetric, HAS_BIAS=has_bias, BM=block_m, BN=block_n,
        KPB=per_step, WIDTH=width, N_CHUNKS=chunks, num_warps=_NUM_WARPS, enable_fp_fusion=False,
    )  # fmt: skip
    return out
