"""The quantization custom ops: ``aiflow_comm::quantize_packed`` and ``dequantize_packed``.

They are ``torch.library`` custom ops with fake implementations, so functions calling them compile
with ``torch.compile(fullgraph=True)`` and export with ``torch.export``; the backend is an argument
resolved before the call.
"""

from __future__ import annotations

import math

import torch

from aiflow_comm.kernels.backends import kernels_of, optional_module, resolve_backend
from aiflow_comm.kernels.dispatch import custom_op
from aiflow_comm.kernels.layout import (
    GroupLayout,
    check_float_tensor,
    check_quant_args,
    check_symmetric,
    empty_packed,
    row_group_size,
)

__all__ = [
    "all_finite",
    "dequantize_fields",
    "dequantize_packed",
    "detached",
    "quantize_packed",
    "raise_nonfinite",
    "rows_of",
]

_MAX_SEED = 2**32
_NATIVE = optional_module("aiflow_comm._C")  # backends.py warns when it is not built
_HAS_ALL_FINITE = _NATIVE is not None and hasattr(_NATIVE, "all_finite_cpu")


def rows_of(x: torch.Tensor) -> torch.Tensor:
    """``x`` as a 2-D ``(rows, D)`` tensor with unit last stride, a view whenever one exists."""
    if x.dim() == 2 and x.stride(1) == 1:  # the common case, without view()'s cost
        return x
    length = x.shape[-1]
    shape = (math.prod(x.shape[:-1]), length)
    try:
        rows = x.view(shape)
    except RuntimeError:
        rows = x.reshape(shape)
    if length > 1 and rows.stride(1) != 1:  # contiguous() keeps an empty tensor's strides
        rows = rows.contiguous() if rows.numel() else rows.new_empty(shape)
    return rows


def detached(tensor: torch.Tensor | None) -> torch.Tensor | None:
    """``tensor`` without autograd history (a ``Parameter`` becomes a plain tensor; ``None``
    stays ``None``): codes carry no gradient, and every backend must return the same untracked
    outputs.

    Example:
        >>> detached(torch.nn.Parameter(torch.ones(2))).requires_grad
        False
    """
    if tensor is None or (type(tensor) is torch.Tensor and not tensor.requires_grad):
        return tensor
    return tensor.detach()


def all_finite(values: torch.Tensor) -> bool:
    """Whether ``values`` holds no NaN or Inf; one native pass for float32 CPU tensors, where
    ``torch.isfinite(values).all()`` costs three ops (~17 us on a few hundred scales).

    Example:
        >>> all_finite(torch.ones(3)), all_finite(torch.tensor([1.0, float("nan")]))
        (True, False)
    """
    if _HAS_ALL_FINITE and values.is_cpu and values.dtype == torch.float32:
        return _NATIVE.all_finite_cpu(values)
    return bool(torch.isfinite(values).all())


def raise_nonfinite(x: torch.Tensor) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or Inf (quantization's input policy)."""
    if not torch.isfinite(x).all():
        raise ValueError(
            "x contains NaN or Inf; quantization rejects non-finite input "
            "(clean it first, e.g. torch.nan_to_num(x))"
        )
    raise ValueError(
        "x's value range (max - min) overflows float32 in the asymmetric scheme; "
        "use symmetric=True or rescale x"
    )


@custom_op("aiflow_comm::quantize_packed")
def _quantize_op(
    x: torch.Tensor,
    bits: int,
    group_size: int,
    symmetric: bool,
    seed: int,
    backend: str,
    check_finite: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    quantize, _ = kernels_of(backend)
    group_size = row_group_size(group_size, x.shape[-1])
    codes, scales, zero_points = quantize(rows_of(x), bits, group_size, symmetric, seed)
    if check_finite and not all_finite(scales):
        raise_nonfinite(x)
    return codes, scales, zero_points


@_quantize_op.register_fake
def _(x, bits, group_size, symmetric, seed, backend, check_finite):
    return empty_packed(x, GroupLayout.of(x.shape, bits, group_size), symmetric)


@custom_op("aiflow_comm::dequantize_packed")
def _dequantize_op(
    codes: torch.Tensor,
    scales: torch.Tensor,
    zero_points: torch.Tensor,
    bits: int,
    group_size: int,
    row_len: int,
    symmetric: bool,
    dtype: torch.dtype,
    backend: str,
) -> torch.Tensor:
    _, dequantize = kernels_of(backend)
    return dequantize(
        codes.contiguous(),
        scales.contiguous(),
        zero_points.contiguous(),
        bits,
        row_group_size(group_size, row_len),
        row_len,
        symmetric,
        dtype,
    )


@_dequantize_op.register_fake
def _(codes, scales, zero_points, bits, group_size, row_len, symmetric, dtype, backend):
    return codes.new_empty((codes.shape[0], row_len), dtype=dtype)


def quantize_packed(
    x: torch.Tensor,
    bits: int = 8,
    group_size: int = 128,
    symmetric: bool = True,
    seed: int = -1,
    backend: str = "auto",
    *,
    check_finite: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quantize ``x`` per group along its last dimension and pack the codes.

    ``seed < 0`` rounds to nearest (half to even); ``0 <= seed < 2**32`` rounds stochastically
    with the counter-based noise of :func:`~aiflow_comm.kernels.reference.uniform_noise`.

    The outputs carry no gradient (``x`` is read detached). ``check_finite`` raises
    ``ValueError`` when a group's scale is not finite (NaN or Inf in
    ``x``, or an asymmetric range over float32's). The check reads the scales back, which on a
    GPU waits for the kernel (a device sync per call); ``check_finite=False`` skips it, the
    explicit policy for hot GPU loops: such a group then has a non-finite scale and decodes to
    non-finite values, and the wire format refuses to encode it.

    :input: ``x`` float32/float16/bfloat16 tensor ``(..., D)``, any strides.
    :output: ``codes`` uint8 ``(R, row_bytes)``, ``scales`` float32 ``(R, groups)``,
        ``zero_points`` float32 ``(R, groups)`` or ``(0,)`` when symmetric, ``R`` = rows of ``x``.

    Example:
        >>> codes, scales, _ = quantize_packed(torch.ones(2, 256), bits=4, backend="torch")
        >>> codes.shape, scales.shape
        (torch.Size([2, 128]), torch.Size([2, 2]))
    """
    check_float_tensor(x)
    check_quant_args(bits, group_size)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed >= _MAX_SEED:
        raise ValueError(
            f"seed must be an int below 2**32 (negative: round to nearest); got {seed!r}"
        )
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension; got a 0-d tensor (use x.reshape(1))")
    chosen = resolve_backend(backend, x.device)
    return _quantize_op(
        detached(x),
        bits,
        group_size,
        check_symmetric(symmetric),
        max(seed, -1),
        chosen,
        bool(check_finite),
    )


def dequantize_packed(
    codes: torch.Tensor,
    scales: torch.Tensor,
    zero_points: torch.Tensor,
    bits: int,
    group_size: int,
    row_len: int,
    symmetric: bool = True,
    dtype: torch.dtype = torch.float32,
    backend: str = "auto",
) -> torch.Tensor:
    """Unpack and dequantize codes from :func:`quantize_packed` into a ``(R, row_len)`` tensor.

    Example:
        >>> x = torch.randn(2, 256)
        >>> codes, scales, zero_points = quantize_packed(x, backend="torch")
        >>> y = dequantize_packed(codes, scales, zero_points, 8, 128, 256, backend="torch")
        >>> bool((y - x).abs().max() < 0.05)
        True
    """
    check_quant_args(bits, group_size)
    symmetric = check_symmetric(symmetric)
    tensors = {"codes": codes, "scales": scales, "zero_points": zero_points}
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(tensor).__name__}")
    devices = {name: tensor.device for name, tensor in tensors.items()}
    if len(set(devices.values())) > 1:
        raise ValueError(f"codes, scales and zero_points must be on one device; got {devices}")
    if codes.dtype != torch.uint8 or codes.dim() != 2:
        raise TypeError(
            f"codes must be a 2-D uint8 tensor; got {codes.dtype} of shape {tuple(codes.shape)}"
        )
    layout = GroupLayout(codes.shape[0], row_len, bits, group_size)
    expected = {
        "codes": (layout.rows, layout.row_bytes),
        "scales": (layout.rows, layout.num_groups),
        "zero_points": (0,) if symmetric else (layout.rows, layout.num_groups),
    }
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise ValueError(
                f"{name} must have shape {shape} for this layout; got {tuple(tensors[name].shape)}"
            )
    if scales.dtype != torch.float32 or zero_points.dtype != torch.float32:
        raise TypeError("scales and zero_points must be float32 tensors")
    return dequantize_fields(
        codes, scales, zero_points, bits, group_size, row_len, symmetric, dtype, backend
    )


def dequantize_fields(
    codes: torch.Tensor,
    scales: torch.Tensor,
    zero_points: torch.Tensor,
    bits: int,
    group_size: int,
    row_len: int,
    symmetric: bool,
    dtype: torch.dtype,
    backend: str = "auto",
) -> torch.Tensor:
    """:func:`dequantize_packed` for fields already known to fit their layout: those of a
    :class:`~aiflow_comm.codec.quantized.QuantizedTensor`, checked when it was built. Only
    ``dtype`` and ``backend`` are checked (the checks of the fields cost more than decoding a
    small tensor).

    Example:
        >>> codes, scales, zero_points = quantize_packed(torch.ones(2, 4), 8, 4, backend="torch")
        >>> dequantize_fields(codes, scales, zero_points, 8, 4, 4, True, torch.float16)
        tensor([[1., 1., 1., 1.],
                [1., 1., 1., 1.]], dtype=torch.float16)
    """
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(
            f"dtype must be torch.float32, torch.float16 or torch.bfloat16; got {dtype}"
        )
    chosen = resolve_backend(backend, codes.device)
    return _dequantize_op(
        codes,
        scales,
        zero_points,
        bits,
        group_size,
        row_len,
        bool(symmetric),
        dtype,
        chosen,
    )
