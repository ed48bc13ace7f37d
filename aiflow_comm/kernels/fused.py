"""Projection fused with group quantization: ``project_quantize`` and ``dequantize_project``.

The specification (the ``torch`` backend) is the composition of existing ops, in float32:
``project_quantize(x, W, b)`` quantizes ``y = x.float() @ W.float().T + b.float()`` with
:func:`~aiflow_comm.kernels.reference.quantize_reference`, groups running along the output
features; ``dequantize_project(q, W, b)`` is ``dequantize(q, float32) @ W.float().T + b.float()``.
The other backends never materialize the whole float ``y`` (or the decoded tensor):

* ``cpp`` (CPU) and ``cuda`` (CUDA) compute the projection a block of rows at a time into one
  reused float32 tile and run the plain quantize kernel on it while it is in cache (``cuda`` with
  at most 128 output features, unless ``x`` and ``weight`` are a float16/bfloat16 pair: one
  kernel that multiplies in float32 and quantizes each block's rows from shared memory);
  ``dequantize_project`` decodes a block of rows into a tile and multiplies it. On the CPU the
  multiply is an AVX-512 register-blocked kernel for skinny projections (on a panel packed from
  the weight per call, or the weight itself when it is float32 stored transposed; below 32 rows,
  in a dot-product form reading the weight's rows as they lie), else MKL's
  packed GEMM on a weight packed once per call (where torch links MKL) or ``addmm``; on CUDA,
  cuBLAS: float32, or on tensor cores with float32 output when ``x`` and ``weight`` are both
  float16 or both bfloat16 (their products are exact in float32, so only the summation order
  differs from the reference's).
* ``triton`` (CUDA, or the CPU through Triton's interpreter with ``TRITON_INTERPRET=1`` set before
  import) quantizes each output tile in the matmul kernel's epilogue and decodes codes in the
  matmul's prologue: the float values exist only in registers
  (:mod:`aiflow_comm.kernels.triton_fused`).

Their matmuls may sum in another order than the reference's: a value at a rounding boundary may
then take the neighbouring code. Codes therefore equal the reference's except for a few, each
exactly one step off (``tests/test_fused.py`` bounds the count), in every group whose values stand
clear of the summation's rounding error. A group whose values cancel to that error (values whose
exact sums are zero, or equal values in the asymmetric scheme) has a scale made of rounding noise,
and its codes may differ by more; its decoded values still agree with the reference's within the
rounding error. The ``cuda`` backend follows torch's float32 matmul setting: allowing TF32
(``torch.backends.cuda.matmul.allow_tf32``) moves more codes. On the CPU the skinny kernel's codes
do not depend on the number of threads, nor on the other rows of the batch as long as it stays
below 32 rows (the dot-product form) or at 32 or more (the packed form): the two forms sum in
different orders, so a row may take the neighbouring code when its batch crosses 32 rows. The
BLAS paths' codes may depend on both, as those of torch's matmul do.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from aiflow_comm.codec.quantized import QuantizedTensor
from aiflow_comm.kernels.backends import backend_resolver, optional_module
from aiflow_comm.kernels.dispatch import custom_op, plain_eager
from aiflow_comm.kernels.layout import (
    MAX_GROUP_SIZE,
    SUPPORTED_BITS,
    GroupLayout,
    check_float_tensor,
    check_quant_args,
    check_symmetric,
    empty_packed,
    row_group_size,
)
from aiflow_comm.kernels.ops import all_finite, detached, rows_of
from aiflow_comm.kernels.reference import dequantize_reference, quantize_reference

__all__ = ["FUSED_BACKENDS", "dequantize_project", "project_quantize", "resolve_fused_backend"]

FUSED_BACKENDS = ("torch", "cpp", "triton", "cuda")
_FASTEST_FIRST = {"cpu": ("cpp", "torch"), "cuda": ("cuda", "triton", "torch")}


# Probed once at import, as in backends.py, so that code traced by torch.compile reads constants.
_NATIVE = optional_module("aiflow_comm._C")  # backends.py warns when it is not built
_TRITON = optional_module("aiflow_comm.kernels.triton_fused")
_HAS_CPP = _NATIVE is not None and hasattr(_NATIVE, "project_quantize_cpu")
_HAS_CUDA = _NATIVE is not None and hasattr(_NATIVE, "project_quantize_cuda")
_TRITON_ON_CPU = os.environ.get("TRITON_INTERPRET") == "1" and _TRITON is not None


def _usable_on(device_type: str) -> tuple[str, ...]:
    """The fused backends with a kernel for ``device_type``, fastest first (``auto``: the first)."""
    usable = {"torch"}
    if device_type == "cpu":
        if _HAS_CPP:
            usable.add("cpp")
        if _TRITON_ON_CPU:
            usable.add("triton")
    elif device_type == "cuda" and torch.cuda.is_available():
        if _HAS_CUDA:
            usable.add("cuda")
        if _TRITON is not None:
            usable.add("triton")
    ordered = [name for name in _FASTEST_FIRST.get(device_type, ()) if name in usable]
    return (*ordered, *sorted(usable - set(ordered)))


def resolve_fused_backend(backend: str, device: torch.device) -> str:
    """``backend`` if it has a fused kernel for ``device``; ``"auto"``: the fastest that has one.

    ``auto`` is ``cpp`` on the CPU (``triton`` runs there only through the interpreter, when
    asked for), ``cuda`` then ``triton`` on a CUDA device, ``torch`` where nothing else is built.

    Example:
        >>> resolve_fused_backend("torch", torch.device("cpu"))
        'torch'
    """
    return _RESOLVE_FUSED(backend, device)


_RESOLVE_FUSED = backend_resolver(
    FUSED_BACKENDS,
    lambda device_type: list(_usable_on(device_type)),
    lambda device_type: (
        f"has no fused kernel for tensors on {device_type} here (cpp: built extension, CPU; "
        "cuda: extension built with CUDA, CUDA device; triton: triton and a CUDA device, or "
        "TRITON_INTERPRET=1 on the CPU)"
    ),
)


def _check_projection(weight: object, bias: object, in_features: int, device: torch.device) -> int:
    """``out_features``; raise unless ``weight`` is float ``(out, in_features)`` on ``device``
    and ``bias`` is ``(out,)`` there or None."""
    check_float_tensor(weight, "weight")
    if weight.dim() != 2 or weight.shape[1] != in_features:
        raise ValueError(
            f"weight must have shape (out_features, {in_features}) to match the input's last "
            f"dimension; got {tuple(weight.shape)}"
        )
    if weight.device != device:
        raise ValueError(f"weight must be on the input's device {device}; got {weight.device}")
    out_features = weight.shape[0]
    if bias is not None:
        check_float_tensor(bias, "bias")
        if bias.shape != (out_features,):
            raise ValueError(
                f"bias must be None or have shape ({out_features},); got {tuple(bias.shape)}"
            )
        if bias.device != device:
            raise ValueError(f"bias must be on the input's device {device}; got {bias.device}")
    return out_features


def _float_bias(bias: torch.Tensor | None) -> torch.Tensor | None:
    return None if bias is None else bias.detach().float()


def _project_quantize_torch(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    bits: int,
    group_size: int,
    symmetric: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    with torch.autocast(x.device.type, enabled=False):  # the specification is float32
        projected = torch.nn.functional.linear(x.float(), weight.float(), _float_bias(bias))
    return quantize_reference(projected, bits, group_size, symmetric)


def _dequantize_project_torch(
    codes: torch.Tensor,
    scales: torch.Tensor,
    zero_points: torch.Tensor,
    bits: int,
    group_size: int,
    row_len: int,
    symmetric: bool,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    decoded = dequantize_reference(
        codes, scales, zero_points, bits, group_size, row_len, symmetric, torch.float32
    )
    with torch.autocast(codes.device.type, enabled=False):  # the specification is float32
        projected = torch.nn.functional.linear(decoded, weight.float(), _float_bias(bias))
    return projected.to(dtype)


def _fused_kernels(backend: str) -> tuple[Callable[..., tuple], Callable[..., torch.Tensor]]:
    """The ``(project_quantize, dequantize_project)`` pair of a resolved backend, one signature."""
    if backend == "cpp":
        return _NATIVE.project_quantize_cpu, _NATIVE.dequantize_project_cpu
    if backend == "cuda":
        return _NATIVE.project_quantize_cuda, _NATIVE.dequantize_project_cuda
    if backend == "triton":
        return _TRITON.project_quantize_triton, _TRITON.dequantize_project_triton
    return _project_quantize_torch, _dequantize_project_torch


@custom_op("aiflow_comm::project_quantize")
def _project_quantize_op(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    bits: int,
    group_size: int,
    symmetric: bool,
    backend: str,
    check_finite: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    project, _ = _fused_kernels(backend)
    group_size = row_group_size(group_size, weight.shape[0])
    codes, scales, zero_points = project(rows_of(x), weight, bias, bits, group_size, symmetric)
    if check_finite and not all_finite(scales):
        raise ValueError(
            "the projection x @ weight.T + bias holds NaN or Inf (non-finite x, weight or bias, "
            "or float32 overflow); quantization rejects non-finite values"
        )
    return codes, scales, zero_points


@_project_quantize_op.register_fake
def _(x, weight, bias, bits, group_size, symmetric, backend, check_finite):
    layout = GroupLayout.of((*x.shape[:-1], weight.shape[0]), bits, group_size)
    return empty_packed(x, layout, symmetric)


@custom_op("aiflow_comm::dequantize_project")
def _dequantize_project_op(
    codes: torch.Tensor,
    scales: torch.Tensor,
    zero_points: torch.Tensor,
    bits: int,
    group_size: int,
    row_len: int,
    symmetric: bool,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    dtype: torch.dtype,
    backend: str,
) -> torch.Tensor:
    _, dequantize = _fused_kernels(backend)
    group_size = row_group_size(group_size, row_len)
    return dequantize(
        codes, scales, zero_points, bits, group_size, row_len, symmetric, weight, bias, dtype
    )


@_dequantize_project_op.register_fake
def _(
    codes, scales, zero_points, bits, group_size, row_len, symmetric, weight, bias, dtype, backend
):
    return codes.new_empty((codes.shape[0], weight.shape[0]), dtype=dtype)


def project_quantize(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    bits: int = 8,
    group_size: int = 128,
    *,
    symmetric: bool = True,
    backend: str = "auto",
    check_finite: bool = True,
) -> QuantizedTensor:
    """``quantize(x @ weight.T + bias)`` in float32, groups along the output features.

    Only the ``torch`` backend holds the whole float projection in memory. Gradients do not flow
    (use it where the codes are sent); rounding is to nearest. ``check_finite`` raises
    ``ValueError`` for a projection holding NaN or Inf; on a GPU that check is a device sync per
    call, and ``check_finite=False`` skips it (the policy of
    :func:`~aiflow_comm.kernels.ops.quantize_packed`: non-finite scales, refused by the wire
    format).

    :input: ``x`` float32/float16/bfloat16 ``(..., in)``, any strides; ``weight`` float
        ``(out, in)``, any strides (``cpp``: a float32 weight stored transposed,
        ``weight.T.contiguous().T`` with ``out`` a multiple of 16, skips a per-call pack);
        ``bias`` float ``(out,)`` or ``None``.
    :output: a :class:`~aiflow_comm.codec.quantized.QuantizedTensor` of shape ``(..., out)``
        whose dtype is ``torch.promote_types(x.dtype, weight.dtype)``.

    Example:
        >>> x, w = torch.randn(5, 16), torch.randn(8, 16)
        >>> q = project_quantize(x, w, bits=8, group_size=4, backend="torch")
        >>> q.shape, bool(((q.dequantize() - x @ w.T).abs() <= q.scales.max()).all())
        ((5, 8), True)
    """
    if _HAS_CPP and backend in ("auto", "cpp") and _plain_cpu_call(x, bits, group_size, symmetric):
        outputs = _cpp_outputs(x, weight, bias, bits, group_size, symmetric, check_finite)
        if outputs is not None:
            return _wrapped(outputs, x, weight, bits, group_size, symmetric)
    check_float_tensor(x)
    check_quant_args(bits, group_size)
    symmetric = check_symmetric(symmetric)
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension (..., in_features); got a 0-d tensor")
    device = x.device
    _check_projection(weight, bias, x.shape[-1], device)
    chosen = resolve_fused_backend(backend, device)
    outputs = _project_quantize_op(
        detached(x),
        detached(weight),
        detached(bias),
        bits,
        group_size,
        symmetric,
        chosen,
        bool(check_finite),
    )
    return _wrapped(outputs, x, weight, bits, group_size, symmetric)


# The eager CPU call without the custom-op layer and the Python checks (about 6 us of 20 on a
# small input, 5-9% of 197 x 768 -> 96): the kernel checks its arguments itself, and where it
# refuses them, the checked path runs and says what is wrong.
def _plain_cpu_call(x: object, bits: object, group_size: object, symmetric: object) -> bool:
    """Whether a call may try the fast path: ``x`` a plain tensor on the CPU, settings of
    exactly the types and ranges the checked path accepts."""
    return (
        type(bits) is int
        and bits in SUPPORTED_BITS
        and type(group_size) is int
        and 1 <= group_size <= MAX_GROUP_SIZE
        and type(symmetric) is bool
        and type(x) is torch.Tensor
        and x.is_cpu
        and x.dim() > 0
    )


def _cpp_outputs(
    x: torch.Tensor,
    weight: object,
    bias: object,
    bits: int,
    group_size: int,
    symmetric: bool,
    check_finite: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The custom op's ``cpp`` implementation called directly (its ``ValueError`` for a
    non-finite projection raised), or ``None`` where the kernel refuses the arguments or the
    call is not plain eager (compiling, a dispatch mode, a tensor subclass once detached: a
    ``Parameter`` is plain then)."""
    try:
        plain = (detached(x), detached(weight), detached(bias))
        if not plain_eager(plain):
            return None
        return _project_quantize_op.implementation(
            *plain, bits, group_size, symmetric, "cpp", bool(check_finite)
        )
    except (RuntimeError, TypeError, AttributeError, IndexError):
        return None


def _wrapped(
    outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    x: torch.Tensor,
    weight: torch.Tensor,
    bits: int,
    group_size: int,
    symmetric: bool,
) -> QuantizedTensor:
    """The kernel's outputs as a :class:`QuantizedTensor` of ``x``'s shape to ``weight``'s
    output features, of their promoted dtype."""
    shape = (*x.shape[:-1], weight.shape[0])
    dtype = x.dtype if x.dtype == weight.dtype else torch.promote_types(x.dtype, weight.dtype)
    return QuantizedTensor.from_kernel(outputs, shape, dtype, bits, group_size, symmetric)


def dequantize_project(
    q: QuantizedTensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """``dequantize(q) @ weight.T + bias`` in float32, without the whole decoded tensor.

    :input: ``q`` of shape ``(..., in)``; ``weight`` float ``(out, in)``; ``bias`` ``(out,)``.
    :output: ``(..., out)`` of dtype ``torch.promote_types(q.dtype, weight.dtype)``.

    Example:
        >>> x, w = torch.randn(5, 16), torch.randn(8, 16)
        >>> q = project_quantize(x, torch.eye(16), group_size=4, backend="torch")
        >>> y = dequantize_project(q, w, backend="torch")
        >>> torch.allclose(y, q.dequantize() @ w.T, atol=1e-5)
        True
    """
    if not isinstance(q, QuantizedTensor):
        raise TypeError(f"q must be a QuantizedTensor; got {type(q).__name__}")
    in_features = q.shape[-1]  # the layout's row_len, without building the layout
    device = q.device
    out_features = _check_projection(weight, bias, in_features, device)
    chosen = resolve_fused_backend(backend, device)
    zero_points = q.zero_points if q.zero_points is not None else q.scales.new_empty(0)
    dtype = torch.promote_types(q.dtype, weight.dtype)
    flat = _dequantize_project_op(
        q.codes.contiguous(),
        q.scales.contiguous(),
        zero_points.contiguous(),
        q.bits,
        q.group_size,
        in_features,
        q.symmetric,
        detached(weight),
        detached(bias),
        dtype,
        chosen,
    )
    return flat.view(*q.shape[:-1], out_features)
