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
8       4      group_size (uint32, 1 to 2**31 - 1)
12      1      ndim (1 to 32)
13      3      reserved, zero
16      8*nd   shape, one uint64 per dimension
...            codes (rows * row_bytes bytes), scales (rows * groups float32),
               zero points (rows * groups float32, asymmetric only)
end-4   4      CRC32 (zlib) of every byte before it
======  =====  ==========================================================
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import torch

from aiflow_comm.codec.quantized import SCHEMES, QuantizedTensor
from aiflow_comm.kernels.layout import FLOAT_DTYPES, MAX_GROUP_SIZE, SUPPORTED_BITS, GroupLayout

__all__ = [
    "MAGIC",
    "MAX_NDIM",
    "VERSION",
    "WireFormatError",
    "byte_view",
    "check_ndim",
    "check_quant_fields",
    "decode",
    "encode",
    "frame",
    "open_message",
    "payload_bytes",
    "read_payload",
    "read_shape",
    "tensor_at",
    "tensor_bytes",
]

MAGIC = b"AIFQ"
VERSION = 1
MAX_NDIM = 32
_HEADER = struct.Struct("<4sBBBBIB3s")
_MAX_ELEMENTS = 2**63 - 1  # torch's sizes and element counts are int64
_CRC = struct.Struct("<I")


class WireFormatError(ValueError):
    """Raised for a buffer that is truncated, corrupted, or not in a known wire format."""


# The framing both wire formats share (this one and the top-k format of ``sparse_wire``): a header
# opening with its magic and version, the shape as uint64s, payload sections, a trailing CRC32.


def check_ndim(shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` if ``shape`` has more dimensions than a wire format carries."""
    if len(shape) > MAX_NDIM:
        raise ValueError(f"the wire format carries at most {MAX_NDIM} dimensions; got {len(shape)}")


def tensor_bytes(t: torch.Tensor, fmt: str) -> bytes:
    """The values of ``t``, row-major, as bytes of numpy format ``fmt`` (``"u1"``, ``"<f4"``)."""
    return _host_array(t, fmt).tobytes()


def _host_array(t: torch.Tensor, fmt: str) -> np.ndarray:
    return t.detach().to("cpu").contiguous().numpy().astype(fmt)


def _finite_bytes(name: str, t: torch.Tensor, nonnegative: bool = False) -> bytes:
    """``t`` as little-endian float32 bytes; ``ValueError`` if it holds NaN or Inf, or, with
    ``nonnegative``, a negative value (what a reader rejects is never written)."""
    values = _host_array(t, "<f4")
    if not np.isfinite(values).all():
        raise ValueError(
            f"{name} hold NaN or Inf: the tensor was quantized from non-finite values with "
            "check_finite=False; the wire format carries finite scales and zero points only"
        )
    if nonnegative and (values < 0).any():
        raise ValueError(f"{name} must be >= 0 (the wire format carries no negative {name})")
    return values.tobytes()


def payload_bytes(
    codes: torch.Tensor, scales: torch.Tensor, zero_points: torch.Tensor | None
) -> list[bytes]:
    """The payload sections of quantized values: codes, float32 scales, zero points if any.

    Raises ``ValueError`` for a NaN or Inf scale or zero point (from ``check_finite=False``), or
    a negative scale (no quantizer makes one; a reader rejects it).
    """
    parts = [tensor_bytes(codes, "u1"), _finite_bytes("scales", scales, nonnegative=True)]
    if zero_points is not None:
        parts.append(_finite_bytes("zero points", zero_points))
    return parts


def frame(header: bytes, shape: tuple[int, ...], sections: list[bytes]) -> bytes:
    """A message: ``header``, ``shape`` as little-endian uint64s, ``sections``, their CRC32."""
    body = b"".join([header, struct.pack(f"<{len(shape)}Q", *shape), *sections])
    return body + _CRC.pack(zlib.crc32(body))


def byte_view(buf: bytes | bytearray | memoryview) -> memoryview:
    """``buf`` as a flat view of bytes; ``TypeError`` unless bytes, bytearray or memoryview."""
    if not isinstance(buf, bytes | bytearray | memoryview):
        raise TypeError(f"buf must be bytes, bytearray or memoryview; got {type(buf).__name__}")
    view = memoryview(buf)
    return view.cast("B") if view.c_contiguous else memoryview(view.tobytes())


def open_message(
    buf: bytes | bytearray | memoryview,
    header: struct.Struct,
    magic: bytes,
    version: int,
    name: str = "wire-format",
) -> tuple[memoryview, tuple]:
    """The bytes of ``buf`` and its ``header`` fields, once its magic, CRC32 and version pass.

    ``header`` opens with the magic (``4s``) and the version (``B``); ``name`` names the format in
    the error of an unknown version.

    Example:
        >>> header = struct.Struct("<4sB")
        >>> buf = frame(header.pack(b"DEMO", 1), (2, 3), [b"payload"])
        >>> view, fields = open_message(buf, header, b"DEMO", 1)
        >>> fields, read_shape(view, 2, header.size)
        ((b'DEMO', 1), ((2, 3), 21))
    """
    view = byte_view(buf)
    if len(view) < header.size + _CRC.size:
        raise WireFormatError(f"buffer of {len(view)} bytes is shorter than the smallest message")
    fields = header.unpack_from(view)
    if fields[0] != magic:
        raise WireFormatError(f"bad magic {fields[0]!r}; expected {magic!r}")
    (crc,) = _CRC.unpack_from(view, len(view) - _CRC.size)
    if zlib.crc32(view[: len(view) - _CRC.size]) != crc:
        raise WireFormatError("CRC32 mismatch: the buffer is corrupted or truncated")
    if fields[1] != version:
        raise WireFormatError(f"unsupported {name} version {fields[1]}; this build reads {version}")
    return view, fields


def check_quant_fields(scheme: int, bits: int, dtype: int) -> None:
    """Raise :class:`WireFormatError` for an unknown scheme, bits or dtype code."""
    if scheme >= len(SCHEMES) or bits not in SUPPORTED_BITS or dtype >= len(FLOAT_DTYPES):
        raise WireFormatError(f"invalid field: scheme={scheme}, bits={bits}, dtype={dtype}")


def read_shape(view: memoryview, ndim: int, start: int) -> tuple[tuple[int, ...], int]:
    """The shape field of ``ndim`` uint64s at ``start``, and the offset just past it.

    Every dimension, and the element count, must fit torch's int64 sizes (a shape with a zero
    needs no payload, so only this check stops ``(0, 2**64 - 1)``).
    """
    offset = start + 8 * ndim
    if offset + _CRC.size > len(view):
        raise WireFormatError("buffer ends inside the shape field")
    shape = struct.unpack_from(f"<{ndim}Q", view, start)
    if max(shape, default=0) > _MAX_ELEMENTS or math.prod(d for d in shape if d) > _MAX_ELEMENTS:
        raise WireFormatError(f"invalid shape {shape}: larger than a tensor can be")
    return shape, offset


def read_payload(
    view: memoryview,
    offset: int,
    shape: tuple[int, ...],
    layout: GroupLayout,
    asymmetric: bool,
    trailing: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int]:
    """Codes, scales and zero points of ``layout`` at ``offset``, and the offset past them.

    The message must end ``trailing`` bytes after them, then its CRC32: any other length raises,
    and so does a NaN, Inf or negative scale or a NaN or Inf zero point (no encoder writes one).
    """
    groups = layout.rows * layout.num_groups
    sections = [layout.rows * layout.row_bytes, 4 * groups, 4 * groups if asymmetric else 0]
    needed = offset + sum(sections) + trailing + _CRC.size
    if needed != len(view):
        raise WireFormatError(f"buffer holds {len(view)} bytes; shape {shape} needs {needed}")
    codes = tensor_at(view, offset, sections[0], "u1").view(layout.rows, layout.row_bytes)
    offset += sections[0]
    scales = tensor_at(view, offset, groups, "<f4").view(layout.rows, layout.num_groups)
    offset += sections[1]
    zero_points = None
    if asymmetric:
        zero_points = tensor_at(view, offset, groups, "<f4").view(layout.rows, layout.num_groups)
    for name, values in (("scale", scales), ("zero point", zero_points)):
        if values is not None and not bool(torch.isfinite(values).all()):
            raise WireFormatError(f"a {name} is NaN or Inf")
    if bool((scales < 0).any()):  # amax / qmax or (max - min) / levels: never negative
        raise WireFormatError("a scale is negative")
    return codes, scales, zero_points, offset + sections[2]


def tensor_at(buf: memoryview, offset: int, count: int, dtype: str) -> torch.Tensor:
    """``count`` values of numpy ``dtype`` (``"u1"``, ``"<f4"``, ...) at ``offset``, copied."""
    array = np.frombuffer(buf, dtype=dtype, count=count, offset=offset).copy()
    return torch.from_numpy(array.astype(dtype[1:] if dtype.startswith("<") else dtype))


# The format of a QuantizedTensor.


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
    check_ndim(q.shape)
    header = _HEADER.pack(
        MAGIC,
        VERSION,
        SCHEMES.index(q.scheme),
        q.bits,
        FLOAT_DTYPES.index(q.dtype),
        q.group_size,
        len(q.shape),
        b"\0\0\0",
    )
    return frame(header, q.shape, payload_bytes(q.codes, q.scales, q.zero_points))


def decode(buf: bytes | bytearray | memoryview) -> QuantizedTensor:
    """Parse bytes made by :func:`encode`.

    Raises:
        WireFormatError: the buffer is truncated, has extra bytes, fails its CRC32, or holds an
            unknown magic, version or field value. No tensor is ever returned from such a buffer.
    """
    view, fields = open_message(buf, _HEADER, MAGIC, VERSION)
    _, _, scheme, bits, dtype, group_size, ndim, reserved = fields
    check_quant_fields(scheme, bits, dtype)
    if not 1 <= group_size <= MAX_GROUP_SIZE or not 1 <= ndim <= MAX_NDIM or reserved != b"\0\0\0":
        raise WireFormatError(f"invalid field: group_size={group_size}, ndim={ndim}")
    shape, offset = read_shape(view, ndim, _HEADER.size)
    layout = GroupLayout.of(shape, bits, group_size)
    codes, scales, zero_points, _ = read_payload(view, offset, shape, layout, scheme == 1)
    return QuantizedTensor(
        codes,
        scales,
        zero_points,
        tuple(shape),
        FLOAT_DTYPES[dtype],
        bits,
        group_size,
        SCHEMES[scheme],
    )
