"""The wire format of a :class:`SparseQuantizedTensor`: magic ``AIFS``, versioned, CRC32-checked.

Layout (version 1, every integer little-endian; ``docs/wire-format.md`` is the full text):

======  =====  ==========================================================
offset  size   field
======  =====  ==========================================================
0       4      magic ``b"AIFS"``
4       1      version (1)
5       1      scheme (0 symmetric, 1 asymmetric)
6       1      bits (2, 4 or 8)
7       1      dtype of the original tensor (0 float32, 1 float16, 2 bfloat16)
8       4      group_size (uint32, 1 to 2**31 - 1)
12      4      k (uint32, >= 1)
16      1      index width in bytes (1 if group_size <= 256, 2 if <= 2**15, else 4)
17      1      ndim (1 to 32)
18      2      reserved, zero
20      8*nd   shape, one uint64 per dimension
...            codes (rows * row_bytes bytes), scales (rows * groups float32),
               zero points (rows * groups float32, asymmetric only),
               indices (rows * kept_per_row integers of the index width)
end-4   4      CRC32 (zlib) of every byte before it
======  =====  ==========================================================
"""

from __future__ import annotations

import struct

import torch

from aiflow_comm.codec.quantized import SCHEMES
from aiflow_comm.codec.sparse import SparseQuantizedTensor
from aiflow_comm.codec.wire import (
    MAX_NDIM,
    WireFormatError,
    check_ndim,
    check_quant_fields,
    frame,
    open_message,
    payload_bytes,
    read_payload,
    read_shape,
    tensor_at,
    tensor_bytes,
)
from aiflow_comm.kernels.layout import FLOAT_DTYPES, MAX_GROUP_SIZE
from aiflow_comm.kernels.topk_reference import SparseLayout, index_dtype, indices_in_groups

__all__ = ["SPARSE_MAGIC", "SPARSE_VERSION", "decode_sparse", "encode_sparse"]

SPARSE_MAGIC = b"AIFS"
SPARSE_VERSION = 1
_HEADER = struct.Struct("<4sBBBBIIBB2s")
_INDEX_FORMATS = {torch.uint8: "u1", torch.int16: "<i2", torch.int32: "<i4"}


def encode_sparse(s: SparseQuantizedTensor) -> bytes:
    """Serialize ``s``; :func:`decode_sparse` returns an identical tensor. Indices that
    :func:`decode_sparse` would refuse (not ascending inside their group, or past its end: a
    hand-built tensor) raise :class:`WireFormatError` here instead.

    Example:
        >>> from aiflow_comm.codec import sparsify
        >>> buf = encode_sparse(sparsify(torch.ones(2, 3), k=1))
        >>> buf[:4], len(buf)
        (b'AIFS', 52)
    """
    if not isinstance(s, SparseQuantizedTensor):
        raise TypeError(f"s must be a SparseQuantizedTensor; got {type(s).__name__}")
    check_ndim(s.shape)
    _check_indices(s.indices.cpu(), s.layout)
    header = _HEADER.pack(
        SPARSE_MAGIC,
        SPARSE_VERSION,
        SCHEMES.index(s.scheme),
        s.bits,
        FLOAT_DTYPES.index(s.dtype),
        s.group_size,
        s.k,
        s.indices.element_size(),
        len(s.shape),
        b"\0\0",
    )
    indices = tensor_bytes(s.indices, _INDEX_FORMATS[s.indices.dtype])
    return frame(header, s.shape, [*payload_bytes(s.codes, s.scales, s.zero_points), indices])


def _check_indices(indices: torch.Tensor, layout: SparseLayout) -> None:
    """Raise unless every group's indices ascend strictly and stay inside the group."""
    if not indices_in_groups(indices, layout):
        raise WireFormatError("invalid indices: not ascending inside their groups, or out of range")


def decode_sparse(buf: bytes | bytearray | memoryview) -> SparseQuantizedTensor:
    """Parse bytes made by :func:`encode_sparse`.

    Raises:
        WireFormatError: the buffer is truncated, has extra bytes, fails its CRC32, or holds an
            unknown magic, version or field value, or indices that are not ascending inside their
            group. No tensor is ever returned from such a buffer.

    Example:
        >>> from aiflow_comm.codec import sparsify
        >>> s = sparsify(torch.tensor([[1.0, -4.0, 2.0]]), k=2)
        >>> decode_sparse(encode_sparse(s)).indices
        tensor([[1, 2]], dtype=torch.uint8)
    """
    view, fields = open_message(buf, _HEADER, SPARSE_MAGIC, SPARSE_VERSION, "top-k wire-format")
    _, _, scheme, bits, dtype, group_size, k, width, ndim, reserved = fields
    check_quant_fields(scheme, bits, dtype)
    if (
        not 1 <= group_size <= MAX_GROUP_SIZE
        or k < 1
        or not 1 <= ndim <= MAX_NDIM
        or reserved != b"\0\0"
    ):
        raise WireFormatError(f"invalid field: group_size={group_size}, k={k}, ndim={ndim}")
    if width != index_dtype(group_size).itemsize:
        raise WireFormatError(f"invalid field: index width={width} for group_size={group_size}")
    shape, offset = read_shape(view, ndim, _HEADER.size)
    layout = SparseLayout.of(shape, group_size, k)
    kept = layout.rows * layout.kept_per_row
    codes, scales, zero_points, offset = read_payload(
        view, offset, shape, layout.values(bits), scheme == 1, trailing=width * kept
    )
    fmt = _INDEX_FORMATS[layout.index_dtype]
    indices = tensor_at(view, offset, kept, fmt).view(layout.rows, layout.kept_per_row)
    _check_indices(indices, layout)
    return SparseQuantizedTensor(
        codes,
        scales,
        zero_points,
        indices,
        tuple(shape),
        FLOAT_DTYPES[dtype],
        bits,
        group_size,
        k,
        SCHEMES[scheme],
    )
