"""Feature codecs: group quantization, fake quantization for training, wire format."""

from aiflow_comm.codec.fake import fake_quantize
from aiflow_comm.codec.quantized import QuantizedTensor, dequantize, quantize
from aiflow_comm.codec.wire import WireFormatError

__all__ = ["QuantizedTensor", "WireFormatError", "dequantize", "fake_quantize", "quantize"]
