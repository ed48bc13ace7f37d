"""The wire format of a :class:`QuantizedTensor`: versioned, little-endian, CRC32-checked bytes.

Layout (version 1, every integer little-endian; ``docs/wire-format.md`` is the full text):

======  =====  ==========================================================
offset  size   field
======  =====  ==========================================================
0       4      magic ``b"AIFQ"``
4       1      version (1)
5       1      scheme (0 symmetric, 1 asymmetric)
6       1      bits (2, 4 or 8)
7       1      dtype of the original tensor (0 float32, 1 float16, 2 bfloat16)
8       4      group_size (uint32, >= 1)
12      1      ndim (1 to 32)
13      3      reserved, zero
16      8*nd   shape, one uint64 per dimension
...            codes (rows * row_bytes bytes), scales (rows * groups float32),
               zero points (rows * groups float32, asymmetric only)
end-4   4      CRC32 (zlib) of every byte before it
======  =====  ==========================================================
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import torch

from aiflow_comm.codec.quantized import QuantizedTensor
from aiflow_comm.kernels.layout import SUPPORTED_BITS, GroupLayout

__all__ = ["MAGIC", "VERSION", "WireFormatError", "decode", "encode", "tensor_at"]

MAGIC = b"AIFQ"
VERSION = 1
MAX_NDIM = 32
_HEADER = struct.Struct("<4sBBBBIB3s")
_CRC = struct.Struct("<I")
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_SCHEMES = ("symmetric", "asymmetric")


class WireFormatError(ValueError):
    """Raised for a buffer that is truncated, corrupted, or not in a known wire format."""


def _float32_bytes(t: torch.Tensor) -> bytes:
    return t.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4").tobytes()


def encode(q: QuantizedTensor) -> bytes:
    """Serialize ``q``; :func:`decode` returns an identical tensor.

    Example:
        >>> from aiflow_comm.codec import quantize
        >>> buf = encode(quantize(torch.ones(2, 3)))
        >>> buf[:4], len(buf)
        (b'AIFQ', 50)
    """
    if not isinstance(q, QuantizedTensor):
        raise TypeError(f"q must be a QuantizedTensor; got {type(q).__name__}")
    if len(q.shape) > MAX_NDIM:
        raise ValueError(
            f"the wire format carries at most {MAX_NDIM} dimensions; got {len(q.shape)}"
        )
    header = _HEADER.pack(
        MAGIC,
        VERSION,
        _SCHEMES.index(q.scheme),
        q.bits,
        _DTYPES.index(q.dtype),
        q.group_size,
        len(q.shape),
        b"\0\0\0",
    )
    parts = [header, struct.pack(f"<{len(q.shape)}Q", *q.shape)]
    parts.append(q.codes.detach().to("cpu").contiguous().numpy().tobytes())
    parts.append(_float32_bytes(q.scales))
    if q.zero_points is not None:
        parts.append(_float32_bytes(q.zero_points))
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def tensor_at(buf: memoryview, offset: int, count: int, dtype: str) -> torch.Tensor:
    """``count`` values of numpy ``dtype`` (``"u1"``, ``"<f4"``, ...) at ``offset``, copied."""
    array = np.frombuffer(buf, dtype=dtype, count=count, offset=offset).copy()
    return torch.from_numpy(array.astype(dtype[1:] if dtype.startswith("<") else dtype))


def decode(buf: bytes | bytearray | memoryview) -> QuantizedTensor:
    """Parse bytes made by :func:`encode`.

    Raises:
        WireFormatError: the buffer is truncated, has extra bytes, fails its CRC32, or holds an
            unknown magic, version or field value. No tensor is ever returned from such a buffer.
    """
    if not isinstance(buf, bytes | bytearray | memoryview):
        raise TypeError(f"buf must be bytes, bytearray or memoryview; got {type(buf).__name__}")
    view = memoryview(buf).cast("B")
    if len(view) < _HEADER.size + _CRC.size:
        raise WireFormatError(f"buffer of {len(view)} bytes is shorter than the smallest message")
    magic, version, scheme, bits, dtype, group_size, ndim, reserved = _HEADER.unpack_from(view)
    if magic != MAGIC:
        raise WireFormatError(f"bad magic {magic!r}; expected {MAGIC!r}")
    (crc,) = _CRC.unpack_from(view, len(view) - _CRC.size)
    if zlib.crc32(view[: len(view) - _CRC.size]) != crc:
        raise WireFormatError("CRC32 mismatch: the buffer is corrupted or truncated")
    if version != VERSION:
        raise WireFormatError(
            f"unsupported wire-format version {version}; this build reads {VERSION}"
        )
    if scheme >= len(_SCHEMES) or bits not in SUPPORTED_BITS or dtype >= len(_DTYPES):
        raise WireFormatError(f"invalid field: scheme={scheme}, bits={bits}, dtype={dtype}")
    if group_size < 1 or not 1 <= ndim <= MAX_NDIM or reserved != b"\0\0\0":
        raise WireFormatError(f"invalid field: group_size={group_size}, ndim={ndim}")
    offset = _HEADER.size + 8 * ndim
    if offset + _CRC.size > len(view):
        raise WireFormatError("buffer ends inside the shape field")
    shape = struct.unpack_from(f"<{ndim}Q", view, _HEADER.size)
    layout = GroupLayout.of(shape, bits, group_size)
    groups = layout.rows * layout.num_groups
    sections = [layout.rows * layout.row_bytes, 4 * groups, 4 * groups if scheme == 1 else 0]
    needed = offset + sum(sections) + _CRC.size
    if needed != len(view):
        raise WireFormatError(f"buffer holds {len(view)} bytes; shape {shape} needs {needed}")
    codes = tensor_at(view, offset, sections[0], "u1").view(layout.rows, layout.row_bytes)
    offset += sections[0]
    scales = tensor_at(view, offset, groups, "<f4").view(layout.rows, layout.num_groups)
    offset += sections[1]
    zero_points = None
    if scheme == 1:
        zero_points = tensor_at(view, offset, groups, "<f4").view(layout.rows, layout.num_groups)
    return QuantizedTensor(
        codes, scales, zero_points, tuple(shape), _DTYPES[dtype], bits, group_size, _SCHEMES[scheme]
    )
