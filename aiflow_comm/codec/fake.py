"""``fake_quantize``: quantize-dequantize in the forward pass, straight-through in the backward."""

from __future__ import annotations

import torch

from aiflow_comm.codec.quantized import dequantize, quantize

__all__ = ["fake_quantize", "straight_through"]


class _StraightThrough(torch.autograd.Function):
    """Forward: a copy of the decoded codes (an input returned as it is would be a view that
    in-place ops, such as a following ``ReLU(inplace=True)``, may not change). Backward: the
    incoming gradient, unchanged."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        return decoded.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def straight_through(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` in the forward pass, the gradient passed to ``x`` unchanged in the backward.

    >>> x = torch.ones(3, requires_grad=True)
    >>> straight_through(x, torch.zeros(3)).mul(2).sum().backward(); x.grad
    tensor([2., 2., 2.])
    """
    return _StraightThrough.apply(x, value)


def fake_quantize(
    x: torch.Tensor,
    bits: int = 8,
    group_size: int = 128,
    *,
    symmetric: bool = True,
    rounding: str = "nearest",
    generator: int | torch.Generator | None = None,
    backend: str = "auto",
    check_finite: bool = True,
) -> torch.Tensor:
    """``dequantize(quantize(x, ...))`` with a straight-through gradient, for training.

    ``check_finite=False`` skips :func:`~aiflow_comm.codec.quantized.quantize`'s NaN/Inf check,
    a device sync per call on a GPU; a non-finite group then comes out non-finite.

    The forward value equals what the receiver decodes from the real codes, bit for bit. The
    gradient is the identity: with per-group scales taken from the group's own range no value
    falls outside the clamp range, so the straight-through estimator's clamp mask is all ones.

    Example:
        >>> x = torch.randn(4, 64, requires_grad=True)
        >>> fake_quantize(x, bits=4, group_size=16).sum().backward()
        >>> bool((x.grad == 1).all())
        True
    """
    q = quantize(
        x.detach(),
        bits,
        group_size,
        symmetric=symmetric,
        rounding=rounding,
        generator=generator,
        backend=backend,
        check_finite=check_finite,
    )
    return straight_through(x, dequantize(q, backend=backend))
