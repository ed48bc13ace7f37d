"""``from_bytes``: decode any wire message, a quantized or a top-k sparse tensor, by its magic."""

from __future__ import annotations

from aiflow_comm.codec.quantized import QuantizedTensor
from aiflow_comm.codec.sparse import SparseQuantizedTensor
from aiflow_comm.codec.sparse_wire import SPARSE_MAGIC, decode_sparse
from aiflow_comm.codec.wire import MAGIC, WireFormatError, byte_view, decode

__all__ = ["from_bytes"]


def from_bytes(buf: bytes | bytearray | memoryview) -> QuantizedTensor | SparseQuantizedTensor:
    """Decode a message of either wire format: magic ``AIFQ`` (quantized) or ``AIFS`` (top-k).

    Raises:
        WireFormatError: an unknown magic, or any check of the format the magic names fails.

    Example:
        >>> import torch
        >>> from aiflow_comm.codec import quantize, sparsify
        >>> x = torch.randn(2, 64)
        >>> type(from_bytes(quantize(x).to_bytes())).__name__
        'QuantizedTensor'
        >>> type(from_bytes(sparsify(x, k=8).to_bytes())).__name__
        'SparseQuantizedTensor'
    """
    magic = bytes(byte_view(buf)[:4])
    if magic == MAGIC:
        return decode(buf)
    if magic == SPARSE_MAGIC:
        return decode_sparse(buf)
    raise WireFormatError(f"bad magic {magic!r}; expected {MAGIC!r} or {SPARSE_MAGIC!r}")
