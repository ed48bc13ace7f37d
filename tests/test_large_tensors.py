"""A tensor of more than 2**31 elements: every offset computed in 64-bit arithmetic (slow)."""

from __future__ import annotations

import importlib

import pytest
import torch

from aiflow_comm.kernels import available_backends, dequantize_packed, quantize_packed
from aiflow_comm.kernels.reference import quantize_reference

ROW_LEN = 2**16


@pytest.mark.slow
@pytest.mark.parametrize("backend", [b for b in available_backends("cpu") if b == "cpp"])
def test_last_rows_of_a_tensor_beyond_int32_match_the_reference(backend):
    rows = 2**31 // ROW_LEN + 2  # 2**31 + 2 * 2**16 elements, 4 GiB in bfloat16
    x = torch.empty(rows, ROW_LEN, dtype=torch.bfloat16)
    x.view(torch.int16).random_(0, 0x3F80)  # bfloat16 bit patterns of [0, 1), no float temporaries
    codes, scales, zero_points = quantize_packed(x, 8, 128, True, backend=backend)
    tail = x[-3:]
    expect = quantize_reference(tail, 8, 128, True)
    assert torch.equal(codes[-3:], expect[0]) and torch.equal(scales[-3:], expect[1])
    decoded = dequantize_packed(codes, scales, zero_points, 8, 128, ROW_LEN, True, backend=backend)
    assert decoded.shape == x.shape
    reference_tail = dequantize_packed(*expect, 8, 128, ROW_LEN, True, backend="torch")
    assert torch.equal(decoded[-3:].float(), reference_tail)


@pytest.mark.skipif("cpp" not in available_backends("cpu"), reason="aiflow_comm._C is not built")
@pytest.mark.parametrize("bits", [8, 4, 2])
@pytest.mark.parametrize("symmetric", [True, False])
def test_outputs_past_16_mib_decode_like_the_reference(bits, symmetric):
    """Into a caller's buffer of 16 MiB and more, the cpp kernel streams its stores (8 and 4
    bits); allocating, it does not. Both give the reference's values."""
    native = importlib.import_module("aiflow_comm._C")
    rows, row_len = 1025, 4096  # just over 16 MiB of float32
    generator = torch.Generator().manual_seed(bits)
    x = torch.randn(rows, row_len, generator=generator)
    x[3] = 0.0  # all-zero groups decode to zeros
    outputs = quantize_reference(x, bits, 128, symmetric)
    zero_points = outputs[2] if not symmetric else outputs[1].new_empty(0)
    args = (outputs[0], outputs[1], zero_points, bits, 128, row_len, symmetric)
    expect = dequantize_packed(*args, backend="torch")
    into = torch.full((rows, row_len), float("nan"))
    native.dequantize_cpu_out(*args, into)
    assert torch.equal(into, expect) and into.nbytes > 16 * 2**20 and not into[3].any()
    assert torch.equal(dequantize_packed(*args, backend="cpp"), expect)
