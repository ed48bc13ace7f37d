"""Low-level feature-compression kernels: group quantize+pack and unpack+dequantize.

Four backends compute the same codes: ``torch`` (the reference and the specification, in
:mod:`aiflow_comm.kernels.reference`), ``cpp`` (OpenMP, from ``csrc/``), ``triton`` and ``cuda``.
The fused projection ops (:mod:`aiflow_comm.kernels.fused`, :mod:`~.fused_layers`) load on first
use: they return :class:`~aiflow_comm.codec.quantized.QuantizedTensor`, whose module imports this
package.
"""

import importlib

from aiflow_comm.kernels.backends import BACKENDS, available_backends
from aiflow_comm.kernels.layout import SUPPORTED_BITS, GroupLayout
from aiflow_comm.kernels.ops import dequantize_packed, quantize_packed

_LAZY = {
    "dequantize_project": "fused",
    "project_quantize": "fused",
    "dequantize_project_conv1x1": "fused_layers",
    "dequantize_project_linear": "fused_layers",
    "is_pointwise_conv": "fused_layers",
    "project_quantize_conv1x1": "fused_layers",
    "project_quantize_linear": "fused_layers",
    "topk_dequantize_packed": "topk",
    "topk_quantize_packed": "topk",
}

__all__ = [
    "BACKENDS",
    "SUPPORTED_BITS",
    "GroupLayout",
    "available_backends",
    "dequantize_packed",
    "dequantize_project",
    "dequantize_project_conv1x1",
    "dequantize_project_linear",
    "is_pointwise_conv",
    "project_quantize",
    "project_quantize_conv1x1",
    "project_quantize_linear",
    "quantize_packed",
    "topk_dequantize_packed",
    "topk_quantize_packed",
]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
