"""Low-level feature-compression kernels: group quantize+pack and unpack+dequantize.

Four backends compute the same codes: ``torch`` (the reference and the specification, in
:mod:`aiflow_comm.kernels.reference`), ``cpp`` (OpenMP, from ``csrc/``), ``triton`` and ``cuda``.
"""

from aiflow_comm.kernels.backends import BACKENDS, available_backends
from aiflow_comm.kernels.layout import SUPPORTED_BITS, GroupLayout
from aiflow_comm.kernels.ops import dequantize_packed, quantize_packed

__all__ = [
    "BACKENDS",
    "SUPPORTED_BITS",
    "GroupLayout",
    "available_backends",
    "dequantize_packed",
    "quantize_packed",
]
