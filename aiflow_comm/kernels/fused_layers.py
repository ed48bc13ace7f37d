"""The fused projection ops applied to ``nn.Linear`` and 1x1 ``nn.Conv2d`` layers."""

from __future__ import annotations

import torch
from torch import nn

from aiflow_comm.codec.quantized import QuantizedTensor
from aiflow_comm.kernels.fused import dequantize_project, project_quantize

__all__ = [
    "POINTWISE",
    "dequantize_project_conv1x1",
    "dequantize_project_linear",
    "is_pointwise_conv",
    "project_quantize_conv1x1",
    "project_quantize_linear",
]

POINTWISE = {"kernel_size": (1, 1), "stride": (1, 1), "padding": (0, 0), "groups": 1}


def _mismatches(conv: nn.Conv2d) -> dict[str, object]:
    """The settings of ``conv`` that keep it from being a pointwise projection."""
    unpadded = conv.padding == "valid" or (conv.padding == "same" and conv.kernel_size == (1, 1))
    padding = (0, 0) if unpadded else conv.padding
    found = {"kernel_size": conv.kernel_size, "stride": conv.stride, "padding": padding,
             "groups": conv.groups}  # fmt: skip
    return {name: value for name, value in found.items() if value != POINTWISE[name]}


def is_pointwise_conv(module: object) -> bool:
    """Whether ``module`` is an ``nn.Conv2d`` with a 1x1 kernel, stride 1, no padding, 1 group.

    Example:
        >>> is_pointwise_conv(nn.Conv2d(8, 2, 1)), is_pointwise_conv(nn.Conv2d(8, 2, 3))
        (True, False)
    """
    return isinstance(module, nn.Conv2d) and not _mismatches(module)


def _check_linear(linear: object) -> nn.Linear:
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"linear must be a torch.nn.Linear; got {type(linear).__name__}")
    return linear


def _conv_weight(conv: object) -> torch.Tensor:
    """A pointwise ``nn.Conv2d``'s weight as ``(out_channels, in_channels)``; raise otherwise."""
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"conv must be a torch.nn.Conv2d; got {type(conv).__name__}")
    mismatches = _mismatches(conv)
    if mismatches:
        name, value = next(iter(mismatches.items()))
        raise ValueError(
            f"conv.{name} must be {POINTWISE[name]} for a pointwise (1x1) projection; got {value}"
        )
    return conv.weight.view(conv.out_channels, conv.in_channels)


def _channels_last(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != conv.in_channels:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be (N, {conv.in_channels}, H, W) for this conv; got {got}")
    return x.permute(0, 2, 3, 1)


def project_quantize_linear(
    x: torch.Tensor,
    linear: nn.Linear,
    bits: int = 8,
    group_size: int = 128,
    *,
    symmetric: bool = True,
    backend: str = "auto",
    check_finite: bool = True,
) -> QuantizedTensor:
    """``quantize(linear(x))`` through :func:`~aiflow_comm.kernels.fused.project_quantize`
    (whose ``check_finite`` this passes on).

    Example:
        >>> layer = torch.nn.Linear(16, 8)
        >>> project_quantize_linear(torch.randn(2, 3, 16), layer, group_size=4).shape
        (2, 3, 8)
    """
    layer = _check_linear(linear)
    return project_quantize(
        x,
        layer.weight,
        layer.bias,
        bits,
        group_size,
        symmetric=symmetric,
        backend=backend,
        check_finite=check_finite,
    )


def dequantize_project_linear(
    q: QuantizedTensor, linear: nn.Linear, *, backend: str = "auto"
) -> torch.Tensor:
    """``linear(dequantize(q))`` through :func:`~aiflow_comm.kernels.fused.dequantize_project`.

    Example:
        >>> q = project_quantize_linear(torch.randn(4, 16), torch.nn.Linear(16, 8), group_size=4)
        >>> dequantize_project_linear(q, torch.nn.Linear(8, 32)).shape
        torch.Size([4, 32])
    """
    layer = _check_linear(linear)
    return dequantize_project(q, layer.weight, layer.bias, backend=backend)


def project_quantize_conv1x1(
    x: torch.Tensor,
    conv: nn.Conv2d,
    bits: int = 8,
    group_size: int = 128,
    *,
    symmetric: bool = True,
    backend: str = "auto",
    check_finite: bool = True,
) -> QuantizedTensor:
    """``quantize(conv(x))`` for a pointwise ``conv``, groups along the output channels
    (``check_finite`` as in :func:`~aiflow_comm.kernels.fused.project_quantize`).

    :input: ``x`` ``(N, C_in, H, W)``; channels-last memory (``torch.channels_last``) is read
        without a copy.
    :output: a :class:`~aiflow_comm.codec.quantized.QuantizedTensor` in channels-last order,
        of shape ``(N, H, W, C_out)``.

    Example:
        >>> conv = torch.nn.Conv2d(16, 4, kernel_size=1)
        >>> project_quantize_conv1x1(torch.randn(2, 16, 5, 5), conv, group_size=4).shape
        (2, 5, 5, 4)
    """
    weight = _conv_weight(conv)
    return project_quantize(
        _channels_last(x, conv),
        weight,
        conv.bias,
        bits,
        group_size,
        symmetric=symmetric,
        backend=backend,
        check_finite=check_finite,
    )


def dequantize_project_conv1x1(
    q: QuantizedTensor, conv: nn.Conv2d, *, backend: str = "auto"
) -> torch.Tensor:
    """``conv(x)`` for ``q`` holding ``x`` channels-last ``(N, H, W, C_in)``, a pointwise conv.

    :output: ``(N, C_out, H, W)`` in ``torch.channels_last`` memory format.

    Example:
        >>> q = project_quantize_conv1x1(torch.randn(2, 16, 5, 5), torch.nn.Conv2d(16, 4, 1))
        >>> dequantize_project_conv1x1(q, torch.nn.Conv2d(4, 8, 1)).shape
        torch.Size([2, 8, 5, 5])
    """
    weight = _conv_weight(conv)
    if len(q.shape) != 4 or q.shape[-1] != conv.in_channels:
        raise ValueError(
            f"q must hold a channels-last (N, H, W, {conv.in_channels}) tensor; got {q.shape}"
        )
    return dequantize_project(q, weight, conv.bias, backend=backend).permute(0, 3, 1, 2)
