"""Triton top-k sparsification kernel, bit-exact with :mod:`aiflow_comm.kernels.topk_reference`.

One program holds whole groups in registers. A value's rank is counted against every value of its
group (those larger, plus those equal at a lower index), so the selection is deterministic and
needs no sort; a prefix sum of the kept flags gives each kept value its slot, where its index and
code are stored. At 2 and 4 bits the codes of one byte are summed with a prefix sum restarted at
each byte's first slot.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from aiflow_comm.kernels.layout import empty_packed
from aiflow_comm.kernels.topk_reference import SparseLayout
from aiflow_comm.kernels.triton_quant import positive_zero, rounded_codes

__all__ = ["MAX_GROUP_SIZE", "topk_quantize_triton"]

MAX_GROUP_SIZE = 4096  # a group is one tile: ranking costs group_size comparisons per value
_TILE = 512  # values a program holds at once: several small groups, or one larger group
_COMPARISONS = 4096  # comparisons per rank-loop step: the tile against 4096 / tile values


@triton.jit
def _int_max(a, b):
    return tl.maximum(a, b)


@triton.jit
def _ranks(
    a, x_base, i, valid, first, row_len, G: tl.constexpr, BG: tl.constexpr, BJ: tl.constexpr
):
    """Each value's rank in its group: values of larger magnitude, plus equal ones before it."""
    rank = tl.zeros(a.shape, tl.int32)
    for c in range(BG // BJ):
        j = c * BJ + tl.arange(0, BJ)
        mask = valid[:, None] & (j[None, :] < G) & (first[:, None] + j[None, :] < row_len)
        other = tl.load(x_base[:, None] + j[None, :], mask=mask, other=0.0).to(tl.float32)
        other = tl.where(mask, tl.abs(other), -1.0)[:, None, :]
        ahead = (other > a[:, :, None]) | (
            (other == a[:, :, None]) & (j[None, None, :] < i[None, :, None])
        )
        rank += tl.sum(ahead.to(tl.int32), axis=2)
    return rank


@triton.jit
def _topk_quantize_kernel(
    x_ptr, indices_ptr, codes_ptr, scales_ptr, zero_points_ptr,
    total, n_groups, row_len, x_stride, kept_per_row, row_bytes,
    BITS: tl.constexpr, G: tl.constexpr, K: tl.constexpr, SYMMETRIC: tl.constexpr,
    GP: tl.constexpr, BG: tl.constexpr, BJ: tl.constexpr,
):  # fmt: skip
    """Select, quantize and store ``GP`` groups of at most ``BG`` values, ``K = min(k, G)``."""
    VPB: tl.constexpr = 8 // BITS
    HALF: tl.constexpr = 1 << (BITS - 1)
    t = tl.program_id(0).to(tl.int64) * GP + tl.arange(0, GP)
    valid = t < total
    row = t // n_groups
    g = t - row * n_groups
    first = g * G
    i = tl.arange(0, BG)
    mask = valid[:, None] & (i[None, :] < G) & (first[:, None] + i[None, :] < row_len)
    x_base = x_ptr + row * x_stride + first
    x = tl.load(x_base[:, None] + i[None, :], mask=mask, other=0.0).to(tl.float32)
    a = tl.where(mask, tl.abs(x), -1.0)
    rank = _ranks(a, x_base, i, valid, first, row_len, G, BG, BJ)
    kept_count = tl.minimum(row_len - first, K)
    kept = mask & (rank < kept_count[:, None])
    flag = kept.to(tl.int32)
    slot = tl.cumsum(flag, 1) - flag
    # A NaN compares false with everything: every NaN ranks 0, and a group holding some would
    # keep more than K values, their stores spilling into the next group's slots (or past the
    # tensor). Such a group raises after the kernel; it must not write outside its own slots.
    kept = kept & (slot < kept_count[:, None])
    if SYMMETRIC:
        scale = tl.math.div_rn(tl.max(tl.where(kept, a, 0.0), 1), HALF - 1)
        shifted = x
    else:
        low = positive_zero(tl.min(tl.where(kept, x, float("inf")), 1))
        high = positive_zero(tl.max(tl.where(kept, x, float("-inf")), 1))
        scale = tl.math.div_rn(high - low, 2 * HALF - 1)
        shifted = x - low[:, None]
    v = tl.math.div_rn(shifted, tl.where(scale > 0, scale, 1.0)[:, None])
    q = rounded_codes(v, BITS, SYMMETRIC)
    out = row[:, None] * kept_per_row + (g * K)[:, None] + slot
    positions = tl.broadcast_to(i[None, :], (GP, BG)).to(indices_ptr.dtype.element_ty)
    tl.store(indices_ptr + out, positions, mask=kept)
    code_ptrs = codes_ptr + row[:, None] * row_bytes + (g * ((K * BITS + 7) // 8))[:, None]
    if VPB == 1:
        tl.store(code_ptrs + slot, q.to(tl.uint8), mask=kept)
    else:
        part = tl.where(kept, q << ((slot % VPB) * BITS), 0)
        running = tl.cumsum(part, 1)
        opens = tl.where(kept & (slot % VPB == 0), running - part, 0)
        before = tl.associative_scan(opens, 1, _int_max)
        closes = kept & ((slot % VPB == VPB - 1) | (slot == kept_count[:, None] - 1))
        tl.store(code_ptrs + slot // VPB, (running - before).to(tl.uint8), mask=closes)
    bad = tl.sum(tl.where(mask & ~(a < float("inf")), 1, 0), 1) > 0
    tl.store(scales_ptr + t, tl.where(bad, float("nan"), scale), mask=valid)
    if not SYMMETRIC:
        tl.store(zero_points_ptr + t, low, mask=valid)


def topk_quantize_triton(
    x: torch.Tensor, k: int, bits: int, group_size: int, symmetric: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``topk_quantize_reference`` of a 2-D ``x`` with last stride 1, ``group_size`` at most 4096.

    :output: ``indices`` ``(R, L)``, ``codes`` uint8, ``scales`` and ``zero_points`` float32, as
        :func:`~aiflow_comm.kernels.topk_reference.topk_quantize_reference` returns them.
    """
    if group_size > MAX_GROUP_SIZE:
        raise ValueError(
            f"group_size must be at most {MAX_GROUP_SIZE} for the triton top-k kernel; "
            f"got {group_size} (use backend='torch')"
        )
    layout = SparseLayout.of(x.shape, group_size, k)
    values = layout.values(bits)
    indices = x.new_empty((layout.rows, layout.kept_per_row), dtype=layout.index_dtype)
    codes, scales, zero_points = empty_packed(x, values, symmetric)
    groups = layout.num_groups
    total = layout.rows * groups
    if total == 0:
        return indices, codes, scales, zero_points
    width = triton.next_power_of_2(group_size)
    per_program = min(max(_TILE // width, 1), triton.next_power_of_2(total))
    tile = per_program * width
    _topk_quantize_kernel[(triton.cdiv(total, per_program),)](
        x, indices, codes, scales, zero_points,
        total, groups, layout.row_len, x.stride(0), layout.kept_per_row, values.row_bytes,
        BITS=bits, G=group_size, K=layout.kept_per_group, SYMMETRIC=symmetric,
        GP=per_program, BG=width, BJ=min(width, max(_COMPARISONS // tile, 1)),
        num_warps=min(max(tile // 128, 4), 16), enable_fp_fusion=False,
    )  # fmt: skip
    return indices, codes, scales, zero_points
