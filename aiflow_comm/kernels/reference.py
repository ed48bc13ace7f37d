"""The pure-PyTorch quantization kernels: the reference every other backend must match bit for bit.

This module is the specification. For a tensor read as ``R`` rows of ``D`` values, cut into groups
of ``G`` values along the last dimension (see :class:`~aiflow_comm.kernels.layout.GroupLayout`),
every group is quantized on its own, in float32:

* **symmetric**: ``scale = amax / qmax`` with ``amax = max|x|`` and ``qmax = 2**(bits-1) - 1``;
  ``q = clamp(round(x / scale), -qmax, qmax)``; stored code ``q + 2**(bits-1)``; decoded value
  ``(code - 2**(bits-1)) * scale``.
* **asymmetric**: ``scale = (max - min) / (2**bits - 1)``, ``zero_point = min``;
  ``q = clamp(round((x - min) / scale), 0, 2**bits - 1)``; decoded value
  ``code * scale + zero_point`` (a multiply, then an add: two roundings, no fused multiply-add).
  A ``max`` or ``min`` that is zero is ``+0.0``, whichever zeros the group holds: its bytes then
  do not depend on which zero a reduction meets first.

``round`` is round-half-to-even. A group whose scale is 0 (all zeros, or a constant group in the
asymmetric scheme) gets code ``q = 0`` and decodes exactly. Stochastic rounding replaces
``round(v)`` by ``floor(v + u)`` where ``u`` comes from :func:`uniform_noise`, a counter-based hash
of a 32-bit seed and the element's flat index ``r * D + d``, so every backend draws the same ``u``.
A group holding NaN or Inf gets a NaN scale; callers turn that into an error.
"""

from __future__ import annotations

import torch

from aiflow_comm.kernels.layout import GroupLayout, empty_packed

__all__ = [
    "dequantize_reference",
    "hash32",
    "hash_bits",
    "pack_codes",
    "quantize_reference",
    "uniform_noise",
    "unpack_codes",
]

_MASK32 = 0xFFFFFFFF


def hash32(x: torch.Tensor) -> torch.Tensor:
    """The 'lowbias32' integer hash on uint32 values held in int64.

    Example:
        >>> hash32(torch.tensor([0, 1])).tolist()
        [0, 1753845952]
    """
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def uniform_noise(seed: int, index: torch.Tensor) -> torch.Tensor:
    """Uniform float32 values in ``[0, 1)`` on a 2**-24 grid, one per int64 ``index``.

    ``u = (h >> 8) * 2**-24`` with ``h = hash32(lo ^ hash32(hi ^ seed))``, ``lo`` and ``hi`` the low
    and high 32 bits of the index. The same ``(seed, index)`` gives the same ``u`` in every backend.

    Example:
        >>> u = uniform_noise(7, torch.arange(4))
        >>> bool(((u >= 0) & (u < 1)).all())
        True
    """
    return (hash_bits(seed, index) >> 8).to(torch.float32) * (2.0**-24)


def hash_bits(seed: int, index: torch.Tensor) -> torch.Tensor:
    """32 random bits per int64 ``index`` (held in int64): ``hash32(lo ^ hash32(hi ^ seed))``.

    Example:
        >>> bits = hash_bits(7, torch.arange(4))
        >>> bool(((bits >= 0) & (bits < 2**32)).all())
        True
    """
    index = index.to(torch.int64)
    high = hash32((index >> 32) ^ (seed & _MASK32))
    return hash32((index & _MASK32) ^ high)


def _positive_zero(values: torch.Tensor) -> torch.Tensor:
    """``values`` with ``-0.0`` replaced by ``+0.0`` (a select, no arithmetic: NaNs keep their
    bits)."""
    return torch.where(values == 0, 0.0, values)


def pack_codes(codes: torch.Tensor, layout: GroupLayout) -> torch.Tensor:
    """Pack ``(R, num_groups, G)`` codes (padding positions zero) into ``(R, row_bytes)`` uint8."""
    per = layout.values_per_byte
    rows, groups = codes.shape[0], codes.shape[1]
    slack = layout.group_bytes * per - layout.group_size
    wide = torch.nn.functional.pad(codes.to(torch.int32), (0, slack))
    wide = wide.view(rows, groups, layout.group_bytes, per)
    shifts = torch.arange(per, device=codes.device, dtype=torch.int32) * layout.bits
    packed = (wide << shifts).sum(-1).to(torch.uint8)
    return packed.view(rows, groups * layout.group_bytes)[:, : layout.row_bytes].contiguous()


def unpack_codes(packed: torch.Tensor, layout: GroupLayout) -> torch.Tensor:
    """Unpack ``(R, row_bytes)`` uint8 into ``(R, D)`` int32 codes."""
    layout = layout.within_row()
    per = layout.values_per_byte
    rows, groups = packed.shape[0], layout.num_groups
    full = torch.nn.functional.pad(packed, (0, groups * layout.group_bytes - layout.row_bytes))
    full = full.view(rows, groups, layout.group_bytes, 1).to(torch.int32)
    shifts = torch.arange(per, device=packed.device, dtype=torch.int32) * layout.bits
    codes = (full >> shifts) & ((1 << layout.bits) - 1)
    codes = codes.view(rows, groups, layout.group_bytes * per)[:, :, : layout.group_size]
    return codes.reshape(rows, groups * layout.group_size)[:, : layout.row_len]


def quantize_reference(
    x: torch.Tensor, bits: int, group_size: int, symmetric: bool, seed: int = -1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quantize ``x`` group by group; ``seed < 0`` rounds to nearest, else stochastically.

    :input: ``x`` float tensor of shape ``(..., D)``.
    :output: ``codes`` uint8 ``(R, row_bytes)``, ``scales`` float32 ``(R, num_groups)``,
        ``zero_points`` float32 ``(R, num_groups)`` (empty ``(0,)`` when symmetric).

    Example:
        >>> codes, scales, _ = quantize_reference(torch.tensor([[1.0, -2.0]]), 8, 2, True)
        >>> codes.tolist(), scales.tolist()
        ([[192, 1]], [[0.015748031437397003]])
    """
    layout = GroupLayout.of(x.shape, bits, group_size)
    if layout.rows == 0:  # no values; the index tensors below would be as long as a row
        return empty_packed(x, layout, symmetric)
    rows, length, size, groups = layout.rows, layout.row_len, group_size, layout.num_groups
    flat = x.reshape(rows, length).to(torch.float32)
    if groups * size > length:
        flat = torch.cat([flat, flat[:, -1:].expand(rows, groups * size - length)], dim=1)
    grouped = flat.view(rows, groups, size)
    # Divisors are tensors, not Python numbers: on CUDA, torch turns division by a scalar into a
    # multiplication by its reciprocal, which is not the IEEE quotient the spec asks for.
    if symmetric:
        scales = grouped.abs().amax(-1) / torch.full((), layout.qmax, device=x.device)
        shifted = grouped
        low, high, code_offset = -layout.qmax, layout.qmax, 2 ** (bits - 1)
    else:
        minimum, maximum = _positive_zero(grouped.amin(-1)), _positive_zero(grouped.amax(-1))
        scales = (maximum - minimum) / torch.full((), layout.levels, device=x.device)
        shifted = grouped - minimum[..., None]
        low, high, code_offset = 0, layout.levels, 0
    scaled = shifted / torch.where(scales > 0, scales, 1.0)[..., None]
    if seed < 0:
        rounded = torch.round(scaled)
    else:
        position = torch.arange(groups * size, device=x.device)
        index = torch.arange(rows, device=x.device)[:, None] * length + position
        rounded = torch.floor(scaled + uniform_noise(seed, index).view(rows, groups, size))
    q = torch.nan_to_num(rounded.clamp(low, high), nan=0.0).to(torch.int32) + code_offset
    in_row = (torch.arange(groups * size, device=x.device) < length).view(groups, size)
    packed = pack_codes(q * in_row, layout)
    scales = scales + (grouped * 0).sum(-1)
    zero_points = torch.empty(0, device=x.device) if symmetric else minimum
    return packed, scales, zero_points


def dequantize_reference(
    codes: torch.Tensor,
    scales: torch.Tensor,
    zero_points: torch.Tensor,
    bits: int,
    group_size: int,
    row_len: int,
    symmetric: bool,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Decode packed ``codes`` to a ``(R, row_len)`` tensor of ``dtype``.

    Example:
        >>> codes, scales, zp = quantize_reference(torch.tensor([[1.0, -2.0]]), 8, 2, True)
        >>> dequantize_reference(codes, scales, zp, 8, 2, 2, True, torch.float32)
        tensor([[ 1.0079, -2.0000]])
    """
    layout = GroupLayout(rows=codes.shape[0], row_len=row_len, bits=bits, group_size=group_size)
    if layout.rows == 0:  # no values; the index tensors below would be as long as a row
        return codes.new_empty((0, row_len), dtype=dtype)
    values = unpack_codes(codes, layout)
    if symmetric:
        values = values - 2 ** (bits - 1)
    group_of = torch.arange(row_len, device=codes.device) // group_size
    out = values.to(torch.float32) * scales[:, group_of]
    if not symmetric:
        out = out + zero_points[:, group_of]
    return out.to(dtype)
