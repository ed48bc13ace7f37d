"""Triton group quantization kernels, bit-exact with :mod:`aiflow_comm.kernels.reference`.

The ``@triton.jit`` helpers in ``__all__`` (NaN-propagating max/min, a tile's group statistics,
the groups' scales, the rounding of scaled values to codes, a tile's packed codes and the mask of
its bytes, the stores of scales and zero points, the bfloat16 cast) are also the quantization
epilogue of :mod:`~aiflow_comm.kernels.triton_fused` and :mod:`~aiflow_comm.kernels.topk_triton`:
every Triton kernel computes a scale and a code the same way.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from aiflow_comm.kernels.layout import GroupLayout, empty_packed

__all__ = [
    "code_byte_mask",
    "code_tile",
    "dequantize_triton",
    "group_scale",
    "nan_max",
    "nan_min",
    "positive_zero",
    "quantize_triton",
    "rounded_codes",
    "store_scales",
    "tile_stats",
    "to_bfloat16",
]

_TILE = 4096  # values a program holds at once: a group that fits is read from memory once
_CHUNK = 2048  # values per loop step over a larger group
_NUM_WARPS = 4
# 1.5 * 2**23: for |v| < 2**22, v + _MAGIC rounds v half to even and holds it in the low bits.
_MAGIC = tl.constexpr(12582912.0)


@triton.jit
def nan_max(a, b):
    """``max(a, b)``, NaN if either is NaN (``torch.amax``'s rule)."""
    return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def nan_min(a, b):
    """``min(a, b)``, NaN if either is NaN (``torch.amin``'s rule)."""
    return tl.minimum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def _hash32(x):
    """The 'lowbias32' hash on uint32 (the multiplies wrap around)."""
    x = x ^ (x >> 16)
    x = x * tl.full(x.shape, 0x7FEB352D, tl.uint32)
    x = x ^ (x >> 15)
    x = x * tl.full(x.shape, 0x846CA68B, tl.uint32)
    return x ^ (x >> 16)


@triton.jit
def _uniform_noise(seed, index):
    """The reference's ``uniform_noise(seed, index)`` for int64 ``index >= 0``."""
    high = _hash32((index >> 32).to(tl.uint32) ^ seed.to(tl.uint32))
    bits = _hash32((index & 0xFFFFFFFF).to(tl.uint32) ^ high)
    return (bits >> 8).to(tl.float32) * (2.0**-24)


@triton.jit
def to_bfloat16(v):
    """float32 to bfloat16 rounding half to even, like torch (the interpreter's cast truncates)."""
    bits = v.to(tl.uint32, bitcast=True)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return tl.where(v == v, bits, 0x7FC0).to(tl.uint16).to(tl.bfloat16, bitcast=True)


@triton.jit
def _group_coords(total, n_groups, BITS: tl.constexpr, G: tl.constexpr, GP: tl.constexpr):
    """The program's ``GP`` groups (flattened ``(row, group)`` order) and where they start."""
    t = tl.program_id(0).to(tl.int64) * GP + tl.arange(0, GP)
    row = t // n_groups
    g = t - row * n_groups
    return t, t < total, row, g * G, g * ((G * BITS + 7) // 8)


@triton.jit
def _tile_masks(
    valid, first, first_byte, start, row_len, row_bytes,
    BITS: tl.constexpr, G: tl.constexpr, BG: tl.constexpr,
):  # fmt: skip
    """In-group value and byte indices of the tile at in-group position ``start``, and masks."""
    VPB: tl.constexpr = 8 // BITS
    i = start + tl.arange(0, BG)
    j = start // VPB + tl.arange(0, BG // VPB)
    # Masks compare contiguous positions against scalars so that loads and stores vectorize.
    value_mask = valid[:, None] & (i[None, :] < G) & (first[:, None] + i[None, :] < row_len)
    byte_mask = code_byte_mask(valid, j, first_byte, (G * BITS + 7) // 8, row_bytes)
    return i, value_mask, j, byte_mask


@triton.jit
def code_byte_mask(valid, j, first_byte, group_bytes, row_bytes):
    """Which code bytes ``j`` of each group are stored: inside the group's bytes and the row's."""
    return (
        valid[:, None] & (j[None, :] < group_bytes) & (first_byte[:, None] + j[None, :] < row_bytes)
    )


@triton.jit
def tile_stats(x, mask, SYMMETRIC: tl.constexpr, PADDED: tl.constexpr):
    """NaN-propagating per-group ``(max, min)`` of a tile; symmetric: ``(max|x|, -max|x|)``.
    A zero max or min is ``+0.0`` (the reference's rule), whichever zero the tile holds."""
    if SYMMETRIC:
        if PADDED:  # loaded as 0, or in the fused kernel x @ 0 columns: NaN where x holds Inf
            high = tl.reduce(tl.where(mask, tl.abs(x), 0.0), 1, nan_max)
        else:
            high = tl.reduce(tl.abs(x), 1, nan_max)
        return high, -high
    if PADDED:
        high = tl.reduce(tl.where(mask, x, float("-inf")), 1, nan_max)
        low = tl.reduce(tl.where(mask, x, float("inf")), 1, nan_min)
    else:
        high, low = tl.reduce(x, 1, nan_max), tl.reduce(x, 1, nan_min)
    return positive_zero(high), positive_zero(low)


@triton.jit
def positive_zero(v):
    """``v`` with ``-0.0`` as ``+0.0`` (a select: NaN keeps its bits)."""
    return tl.where(v == 0.0, 0.0, v)


@triton.jit
def group_scale(high, low, BITS: tl.constexpr, SYMMETRIC: tl.constexpr):
    """The scale of groups of maximum ``high`` and minimum ``low`` (symmetric: ``high = max|x|``).

    The reference's formula with an IEEE division: ``high / qmax`` or ``(high - low) / levels``.
    """
    if SYMMETRIC:
        return tl.math.div_rn(high, (1 << (BITS - 1)) - 1)
    return tl.math.div_rn(high - low, (1 << BITS) - 1)


@triton.jit
def rounded_codes(v, BITS: tl.constexpr, SYMMETRIC: tl.constexpr):
    """The int32 codes of scaled values ``v`` (no NaN): clamped, offset, rounded half to even."""
    HALF: tl.constexpr = 1 << (BITS - 1)
    # Clamp, add the code offset and round half to even: the low BITS bits then hold the code.
    if SYMMETRIC:
        v = tl.minimum(tl.maximum(v, 1.0 - HALF), HALF - 1.0) + (_MAGIC + HALF)
    else:
        v = tl.minimum(tl.maximum(v, 0.0), 2.0 * HALF - 1.0) + _MAGIC
    return v.to(tl.int32, bitcast=True) & ((1 << BITS) - 1)


@triton.jit
def store_scales(scales_ptr, zero_points_ptr, t, valid, high, low, scale, SYMMETRIC: tl.constexpr):
    """Store groups ``t``'s scales (NaN where ``high`` or ``low`` is not finite), zero points."""
    finite = (tl.abs(high) < float("inf")) & (tl.abs(low) < float("inf"))
    tl.store(scales_ptr + t, tl.where(finite, scale, float("nan")), mask=valid)
    if not SYMMETRIC:
        tl.store(zero_points_ptr + t, low, mask=valid)


@triton.jit
def code_tile(
    x, i, mask, low, scale, nan_possible, noise_base, seed,
    BITS: tl.constexpr, SYMMETRIC: tl.constexpr, STOCHASTIC: tl.constexpr, PADDED: tl.constexpr,
    GP: tl.constexpr, BG: tl.constexpr,
):  # fmt: skip
    """The tile's codes packed ``8 // BITS`` per byte; masked-out values give zero bits."""
    VPB: tl.constexpr = 8 // BITS
    divisor = tl.where(scale > 0, scale, 1.0)[:, None]
    v = tl.math.div_rn(x if SYMMETRIC else x - low[:, None], divisor)
    if STOCHASTIC:
        v = tl.floor(v + _uniform_noise(seed, noise_base[:, None] + i[None, :]))
    if nan_possible:  # only a NaN or infinite scale makes a NaN, which the reference codes as q = 0
        v = tl.where(v == v, v, 0.0)
    q = rounded_codes(v, BITS, SYMMETRIC)
    if PADDED:
        q = tl.where(mask, q, 0)
    if VPB > 1:
        shifts = tl.arange(0, VPB) * BITS
        q = tl.sum(tl.reshape(q, GP, BG // VPB, VPB) << shifts[None, None, :], axis=2)
    return q.to(tl.uint8)


@triton.jit(do_not_specialize=["seed"])
def _quantize_kernel(
    x_ptr, codes_ptr, scales_ptr, zero_points_ptr, seed,
    total, n_groups, row_len, x_stride, row_bytes,
    BITS: tl.constexpr, G: tl.constexpr, SYMMETRIC: tl.constexpr, STOCHASTIC: tl.constexpr,
    PADDED: tl.constexpr, GP: tl.constexpr, BG: tl.constexpr, N_CHUNKS: tl.constexpr,
):  # fmt: skip
    """Quantize ``GP`` groups of ``N_CHUNKS`` tiles; a one-tile group is read once."""
    t, valid, row, first, first_byte = _group_coords(total, n_groups, BITS, G, GP)
    x_base = x_ptr + row * x_stride + first
    codes_base = codes_ptr + row * row_bytes + first_byte
    noise_base = row * row_len + first
    i, mask, j, byte_mask = _tile_masks(
        valid, first, first_byte, 0, row_len, row_bytes, BITS, G, BG
    )
    x = tl.load(x_base[:, None] + i[None, :], mask=mask, other=0.0).to(tl.float32)
    high, low = tile_stats(x, mask, SYMMETRIC, PADDED)
    for c in range(1, N_CHUNKS):
        ic, mask_c, _, _ = _tile_masks(
            valid, first, first_byte, c * BG, row_len, row_bytes, BITS, G, BG
        )
        xc = tl.load(x_base[:, None] + ic[None, :], mask=mask_c, other=0.0).to(tl.float32)
        high_c, low_c = tile_stats(xc, mask_c, SYMMETRIC, PADDED)
        high = nan_max(high, high_c)
        low = nan_min(low, low_c)
    scale = group_scale(high, low, BITS, SYMMETRIC)
    nan_possible = tl.max(tl.where(scale < float("inf"), 0, 1)) > 0
    if N_CHUNKS == 1:
        codes = code_tile(
            x, i, mask, low, scale, nan_possible, noise_base, seed,
            BITS, SYMMETRIC, STOCHASTIC, PADDED, GP, BG,
        )  # fmt: skip
        tl.store(codes_base[:, None] + j[None, :], codes, mask=byte_mask)
    else:
        for c in range(N_CHUNKS):
            ic, mask_c, jc, byte_mask_c = _tile_masks(
                valid, first, first_byte, c * BG, row_len, row_bytes, BITS, G, BG
            )
            xc = tl.load(x_base[:, None] + ic[None, :], mask=mask_c, other=0.0).to(tl.float32)
            codes = code_tile(
                xc, ic, mask_c, low, scale, nan_possible, noise_base, seed,
                BITS, SYMMETRIC, STOCHASTIC, PADDED, GP, BG,
            )  # fmt: skip
            tl.store(codes_base[:, None] + jc[None, :], codes, mask=byte_mask_c)
    store_scales(scales_ptr, zero_points_ptr, t, valid, high, low, scale, SYMMETRIC)


@triton.jit
def _dequantize_kernel(
    codes_ptr, scales_ptr, zero_points_ptr, out_ptr, total, n_groups, row_len, row_bytes,
    BITS: tl.constexpr, G: tl.constexpr, SYMMETRIC: tl.constexpr,
    GP: tl.constexpr, BG: tl.constexpr, N_CHUNKS: tl.constexpr,
):  # fmt: skip
    """Decode ``GP`` groups of ``N_CHUNKS`` tiles."""
    VPB: tl.constexpr = 8 // BITS
    t, valid, row, first, first_byte = _group_coords(total, n_groups, BITS, G, GP)
    codes_base = codes_ptr + row * row_bytes + first_byte
    out_base = out_ptr + row * row_len + first
    scale = tl.load(scales_ptr + t, mask=valid, other=1.0)[:, None]
    if not SYMMETRIC:
        zero_point = tl.load(zero_points_ptr + t, mask=valid, other=0.0)[:, None]
    for c in range(N_CHUNKS):
        i, mask, j, byte_mask = _tile_masks(
            valid, first, first_byte, c * BG, row_len, row_bytes, BITS, G, BG
        )
        q = tl.load(codes_base[:, None] + j[None, :], mask=byte_mask, other=0).to(tl.int32)
        if VPB > 1:
            shifts = tl.arange(0, VPB) * BITS
            q = (q[:, :, None] >> shifts[None, None, :]) & ((1 << BITS) - 1)
            q = tl.reshape(q, GP, BG)
        if SYMMETRIC:
            q -= 1 << (BITS - 1)
        v = q.to(tl.float32) * scale
        if not SYMMETRIC:
            v = v + zero_point
        if out_ptr.dtype.element_ty == tl.bfloat16:
            out = to_bfloat16(v)
        else:
            out = v.to(out_ptr.dtype.element_ty)
        tl.store(out_base[:, None] + i[None, :], out, mask=mask)


def _tiling(bits: int, group_size: int, total: int) -> tuple[int, int, int]:
    """``(groups per program, tile width, tiles per group)`` for ``total`` groups."""
    width = max(triton.next_power_of_2(group_size), 8 // bits)
    if width <= _TILE:
        return min(_TILE // width, triton.next_power_of_2(total)), width, 1
    return 1, _CHUNK, triton.cdiv(group_size, _CHUNK)


def quantize_triton(
    x: torch.Tensor, bits: int, group_size: int, symmetric: bool, seed: int = -1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``quantize_reference`` of a 2-D ``x`` with last stride 1, on the GPU.

    :output: ``codes`` uint8 ``(R, row_bytes)``, ``scales`` float32 ``(R, num_groups)``,
        ``zero_points`` float32 ``(R, num_groups)`` (empty ``(0,)`` when symmetric).
    """
    layout = GroupLayout.of(x.shape, bits, group_size)
    codes, scales, zero_points = empty_packed(x, layout, symmetric)
    groups = layout.num_groups
    total = layout.rows * groups
    if total == 0:
        return codes, scales, zero_points
    per_program, width, chunks = _tiling(bits, group_size, total)
    padded = width * chunks != group_size or layout.row_len % group_size != 0
    _quantize_kernel[(triton.cdiv(total, per_program),)](
        x, codes, scales, zero_points, max(seed, 0),
        total, groups, layout.row_len, x.stride(0), layout.row_bytes,
        BITS=bits, G=group_size, SYMMETRIC=symmetric, STOCHASTIC=seed >= 0,
        PADDED=padded, GP=per_program, BG=width, N_CHUNKS=chunks,
        num_warps=_NUM_WARPS, enable_fp_fusion=False,
    )  # fmt: skip
    return codes, scales, zero_points


def dequantize_triton(
    codes: torch.Tensor,
    scales: torch.Tensor,
    zero_points: torch.Tensor,
    bits: int,
    group_size: int,
    row_len: int,
    symmetric: bool,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``dequantize_reference`` on the GPU: a ``(R, row_len)`` tensor of ``dtype``."""
    layout = GroupLayout(rows=codes.shape[0], row_len=row_len, bits=bits, group_size=group_size)
    out = torch.empty((layout.rows, row_len), dtype=dtype, device=codes.device)
    total = layout.rows * layout.num_groups
    if total == 0:
        return out
    per_program, width, chunks = _tiling(bits, group_size, total)
    _dequantize_kernel[(triton.cdiv(total, per_program),)](
        codes.contiguous(), scales.contiguous(), zero_points.contiguous(), out,
        total, layout.num_groups, row_len, layout.row_bytes,
        BITS=bits, G=group_size, SYMMETRIC=symmetric, GP=per_program, BG=width, N_CHUNKS=chunks,
        num_warps=_NUM_WARPS, enable_fp_fusion=False,
    )  # fmt: skip
    return out
