"""Feature codecs: group quantization, top-k sparsification, fake quantization, wire formats."""

from aiflow_comm.codec.fake import fake_quantize
from aiflow_comm.codec.messages import from_bytes
from aiflow_comm.codec.quantized import QuantizedTensor, dequantize, quantize
from aiflow_comm.codec.sparse import SparseQuantizedTensor, sparsify
from aiflow_comm.codec.wire import WireFormatError

__all__ = [
    "QuantizedTensor",
    "SparseQuantizedTensor",
    "WireFormatError",
    "dequantize",
    "fake_quantize",
    "from_bytes",
    "quantize",
    "sparsify",
]
