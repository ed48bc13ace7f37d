"""The top-k sparsification ops: ``aiflow_comm::topk_quantize_packed`` and its decoder.

Two backends compute the same indices, codes and scales: ``torch`` (the reference and the
specification, :mod:`aiflow_comm.kernels.topk_reference`) and ``triton``
(:mod:`aiflow_comm.kernels.topk_triton`, groups of at most 4096 values).
"""

from __future__ import annotations

import torch

from aiflow_comm.kernels.backends import available_backends, optional_module
from aiflow_comm.kernels.dispatch import custom_op
from aiflow_comm.kernels.layout import (
    FLOAT_DTYPES,
    check_float_tensor,
    check_quant_args,
    check_symmetric,
    empty_packed,
    row_group_size,
)
from aiflow_comm.kernels.ops import (
    all_finite,
    dequantize_packed,
    detached,
    raise_nonfinite,
    rows_of,
)
from aiflow_comm.kernels.topk_reference import (
    SparseLayout,
    check_k,
    index_dtype,
    indices_in_groups,
    scatter_kept,
    topk_quantize_reference,
)

__all__ = [
    "TOPK_BACKENDS",
    "resolve_topk_backend",
    "topk_dequantize_packed",
    "topk_quantize_packed",
]

TOPK_BACKENDS = ("torch", "triton")
_TRITON = optional_module("aiflow_comm.kernels.topk_triton")  # probed once, at import


def resolve_topk_backend(backend: str, device: torch.device, group_size: int) -> str:
    """``backend`` itself if it can run top-k here; ``"auto"``: triton on CUDA when usable.

    Triton counts as usable for ``"auto"`` on a CUDA device with groups of at most 4096 values;
    everywhere else ``"auto"`` means ``"torch"`` (on the CPU too when ``TRITON_INTERPRET=1``).

    Example:
        >>> resolve_topk_backend("auto", torch.device("cpu"), 128)
        'torch'
    """
    if not isinstance(backend, str) or backend not in (*TOPK_BACKENDS, "auto"):
        raise ValueError(f"backend must be 'auto' or one of {TOPK_BACKENDS}; got {backend!r}")
    triton_usable = _TRITON is not None and "triton" in available_backends(device)
    if backend == "auto":
        fits = _TRITON is not None and group_size <= _TRITON.MAX_GROUP_SIZE
        return "triton" if device.type == "cuda" and triton_usable and fits else "torch"
    if backend == "triton" and not triton_usable:
        raise ValueError(
            f"backend 'triton' is not usable for tensors on {device}; "
            f"usable here: {[b for b in TOPK_BACKENDS if b in available_backends(device)]}"
        )
    return backend


@custom_op("aiflow_comm::topk_quantize_packed")
def _topk_quantize_op(
    x: torch.Tensor, k: int, bits: int, group_size: int, symmetric: bool, backend: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    quantize = topk_quantize_reference if backend == "torch" else _TRITON.topk_quantize_triton
    narrow = row_group_size(group_size, x.shape[-1])
    indices, codes, scales, zero_points = quantize(rows_of(x), k, bits, narrow, symmetric)
    if not all_finite(scales):
        raise_nonfinite(x)
    return indices.to(index_dtype(group_size)), codes, scales, zero_points


@_topk_quantize_op.register_fake
def _(x, k, bits, group_size, symmetric, backend):
    layout = SparseLayout.of(x.shape, group_size, k)
    indices = x.new_empty((layout.rows, layout.kept_per_row), dtype=layout.index_dtype)
    return indices, *empty_packed(x, layout.values(bits), symmetric)


def topk_quantize_packed(
    x: torch.Tensor,
    k: int,
    bits: int = 8,
    group_size: int = 128,
    symmetric: bool = True,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep the ``k`` largest-magnitude values per group of ``x``'s last dimension; quantize them.

    ``k`` is clamped to each group's length (``k >= group_size`` keeps every value). Ties in
    magnitude go to the lower index. See :mod:`aiflow_comm.kernels.topk_reference`.

    :input: ``x`` float32/float16/bfloat16 tensor ``(..., D)``, any strides.
    :output: ``indices`` ``(R, L)`` (uint8, int16 or int32 by ``group_size``, ascending per
        group), ``codes`` uint8 ``(R, row_bytes)``, ``scales`` float32 ``(R, groups)``,
        ``zero_points`` float32 ``(R, groups)`` or ``(0,)`` when symmetric, with ``R``, ``L`` and
        ``row_bytes`` from :class:`~aiflow_comm.kernels.topk_reference.SparseLayout`.

    Raises:
        TypeError: ``x`` is not a float tensor, ``k``, ``bits`` or ``group_size`` not an int.
        ValueError: ``k < 1``, unsupported ``bits``, ``group_size < 1``, NaN or Inf in ``x``, an
            unknown or unusable backend.

    Example:
        >>> indices, codes, scales, _ = topk_quantize_packed(torch.randn(2, 256), k=16, bits=4)
        >>> indices.shape, indices.dtype, codes.shape
        (torch.Size([2, 32]), torch.uint8, torch.Size([2, 16]))
    """
    check_float_tensor(x)
    check_k(k)
    check_quant_args(bits, group_size)
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension; got a 0-d tensor (use x.reshape(1))")
    chosen = resolve_topk_backend(backend, x.device, group_size)
    symmetric = check_symmetric(symmetric)
    return _topk_quantize_op(detached(x), k, bits, group_size, symmetric, chosen)


def topk_dequantize_packed(
    indices: torch.Tensor,
    codes: torch.Tensor,
    scales: torch.Tensor,
    zero_points: torch.Tensor,
    k: int,
    bits: int,
    group_size: int,
    row_len: int,
    symmetric: bool = True,
    dtype: torch.dtype = torch.float32,
    backend: str = "auto",
) -> torch.Tensor:
    """Decode :func:`topk_quantize_packed`'s outputs to a dense ``(R, row_len)`` ``dtype`` tensor.

    Kept positions hold their dequantized values, every other position zero. ``backend`` decodes
    the kept values (any of ``available_backends``); the scatter runs in torch. Indices that do
    not ascend strictly inside their group, or leave it, raise ``ValueError`` (on a GPU that check
    is a device sync).

    Example:
        >>> x = torch.tensor([[0.5, -2.0, 1.0, 2.0]])
        >>> packed = topk_quantize_packed(x, k=2, group_size=4)
        >>> topk_dequantize_packed(*packed, k=2, bits=8, group_size=4, row_len=4)
        tensor([[ 0., -2.,  0.,  2.]])
    """
    check_k(k)
    check_quant_args(bits, group_size)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32, float16 or bfloat16; got {dtype}")
    if not isinstance(indices, torch.Tensor):
        raise TypeError(f"indices must be a torch.Tensor; got {type(indices).__name__}")
    row = SparseLayout(1, row_len, group_size, k)
    values = dequantize_packed(
        codes,
        scales,
        zero_points,
        bits,
        row.kept_per_group,
        row.kept_per_row,
        symmetric,
        torch.float32,
        backend,
    )
    layout = SparseLayout(values.shape[0], row_len, group_size, k)
    narrow = SparseLayout(layout.rows, row_len, row_group_size(group_size, row_len), k)
    expected = (layout.rows, layout.kept_per_row)
    if indices.dtype != layout.index_dtype or tuple(indices.shape) != expected:
        raise ValueError(
            f"indices must be {layout.index_dtype} of shape {expected} for this layout; "
            f"got {indices.dtype} {tuple(indices.shape)}"
        )
    if indices.device != values.device:
        raise ValueError(
            f"indices and codes must be on one device; got {indices.device} and {codes.device}"
        )
    if not indices_in_groups(indices, narrow):
        raise ValueError(
            "indices must ascend strictly inside each group and stay inside it (as "
            "topk_quantize_packed makes them)"
        )
    return scatter_kept(values, indices, narrow).to(dtype)
