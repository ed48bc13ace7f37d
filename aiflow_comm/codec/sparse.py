"""``SparseQuantizedTensor`` and ``sparsify``: top-k sparsification, the second compression mode."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from aiflow_comm.codec.quantized import PackedTensor, check_packed_fields
from aiflow_comm.kernels.layout import check_float_tensor, check_quant_args
from aiflow_comm.kernels.topk import topk_dequantize_packed, topk_quantize_packed
from aiflow_comm.kernels.topk_reference import SparseLayout, check_k

__all__ = ["SparseQuantizedTensor", "sparsify"]


@dataclass(frozen=True, eq=False)
class SparseQuantizedTensor(PackedTensor):
    """The ``k`` largest-magnitude values of each group, quantized, with their in-group indices.

    Groups of ``group_size`` values run along the last dimension; each keeps ``min(k, n)`` of its
    ``n`` values (see :class:`~aiflow_comm.kernels.topk_reference.SparseLayout`).

    Attributes:
        codes: uint8 ``(rows, row_bytes)``: the kept values' codes, one quantization group per
            original group, packed ``8 // bits`` per byte.
        scales: float32 ``(rows, groups)``, computed from each group's kept values.
        zero_points: float32 ``(rows, groups)`` in the asymmetric scheme (the smallest kept
            value), else ``None``.
        indices: ``(rows, kept_per_row)`` in-group positions of the kept values, ascending per
            group; uint8 when ``group_size <= 256``, int16 up to ``2**15``, else int32.
        shape, dtype: the original tensor's shape and dtype (what :meth:`dequantize` returns).
        bits, group_size, k, scheme: the settings.

    Example:
        >>> s = sparsify(torch.randn(4, 256), k=32, bits=4)
        >>> s.nbytes  # 4 rows x (32 code bytes + 64 uint8 indices + 2 float32 scales)
        416
        >>> SparseQuantizedTensor.from_bytes(s.to_bytes()).dequantize().shape
        torch.Size([4, 256])
    """

    codes: torch.Tensor
    scales: torch.Tensor
    zero_points: torch.Tensor | None
    indices: torch.Tensor
    shape: tuple[int, ...]
    dtype: torch.dtype
    bits: int
    group_size: int
    k: int
    scheme: str = "symmetric"

    def __post_init__(self) -> None:
        check_quant_args(self.bits, self.group_size)
        check_k(self.k)
        layout = self.layout
        row_bytes = layout.values(self.bits).row_bytes
        groups = (layout.rows, layout.num_groups)
        check_packed_fields(
            self.scheme,
            self.dtype,
            {
                "codes": (self.codes, torch.uint8, (layout.rows, row_bytes)),
                "scales": (self.scales, torch.float32, groups),
                "zero_points": (self.zero_points, torch.float32, groups),
                "indices": (self.indices, layout.index_dtype, (layout.rows, layout.kept_per_row)),
            },
        )

    @property
    def layout(self) -> SparseLayout:
        """The :class:`~aiflow_comm.kernels.topk_reference.SparseLayout`: rows, groups and values
        kept per group and per row."""
        return SparseLayout.of(self.shape, self.group_size, self.k)

    def dequantize(self, dtype: torch.dtype | None = None, backend: str = "auto") -> torch.Tensor:
        """The dense tensor: kept values dequantized, zeros elsewhere, in the original shape.

        ``dtype`` defaults to the original; ``backend`` decodes the kept values (any of
        ``available_backends``).
        """
        zero_points = self.zero_points if self.zero_points is not None else self.scales.new_empty(0)
        flat = topk_dequantize_packed(
            self.indices,
            self.codes,
            self.scales,
            zero_points,
            self.k,
            self.bits,
            self.group_size,
            self.layout.row_len,
            self.symmetric,
            self.dtype if dtype is None else dtype,
            backend,
        )
        return flat.view(self.shape)

    def to_bytes(self) -> bytes:
        """Serialize to the top-k wire format (magic ``AIFS``) of ``docs/wire-format.md``."""
        from aiflow_comm.codec.sparse_wire import encode_sparse

        return encode_sparse(self)

    @classmethod
    def from_bytes(cls, buf: bytes | bytearray | memoryview) -> SparseQuantizedTensor:
        """Parse the top-k wire format; raises :class:`~aiflow_comm.codec.wire.WireFormatError`."""
        from aiflow_comm.codec.sparse_wire import decode_sparse

        return decode_sparse(buf)


def sparsify(
    x: torch.Tensor,
    k: int,
    bits: int = 8,
    group_size: int = 128,
    *,
    symmetric: bool = True,
    backend: str = "auto",
) -> SparseQuantizedTensor:
    """Keep the ``k`` largest-magnitude values of each group of ``x``'s last dimension, quantized.

    Args:
        x: float32, float16 or bfloat16 tensor of any shape and strides, on CPU or CUDA.
        k: values kept per group of ``group_size``; clamped to the group's length, so a short last
            group or ``k >= group_size`` keeps every value. Ties in magnitude go to the lower index.
        bits: 2, 4 or 8 bits per kept value.
        group_size: values per group; a last dimension not divisible by it gets a short last group.
        symmetric: ``scale = amax / (2**(bits-1) - 1)`` over the kept values if true, else their
            min-max with a zero point.
        backend: ``"torch"`` (the reference) or ``"triton"``; ``"auto"`` takes triton on a CUDA
            device (groups of at most 4096 values) and torch everywhere else.

    Raises:
        TypeError: ``x`` is not a float tensor; ``k``, ``bits`` or ``group_size`` is not an int.
        ValueError: ``k < 1``, unsupported ``bits``, ``group_size < 1``, NaN or Inf in ``x``, an
            unknown or unusable backend.

    Example:
        >>> x = torch.tensor([[0.1, -3.0, 0.2, 1.0, 0.0, 4.0, -0.5, 0.3]])
        >>> s = sparsify(x, k=2, group_size=4)
        >>> s.indices.tolist()
        [[1, 3, 1, 2]]
        >>> s.dequantize()
        tensor([[ 0.0000, -3.0000,  0.0000,  0.9921,  0.0000,  4.0000, -0.5039,  0.0000]])
    """
    check_float_tensor(x)
    indices, codes, scales, zero_points = topk_quantize_packed(
        x, k, bits, group_size, symmetric, backend
    )
    return SparseQuantizedTensor(
        codes,
        scales,
        None if symmetric else zero_points,
        indices,
        tuple(x.shape),
        x.dtype,
        bits,
        group_size,
        k,
        "symmetric" if symmetric else "asymmetric",
    )
