"""The custom ops trace: torch.compile(fullgraph=True) and torch.export see through them."""

from __future__ import annotations

import pytest
import torch

from aiflow_comm.kernels import available_backends, dequantize_packed, quantize_packed

CPU_BACKENDS = [b for b in available_backends("cpu") if b != "triton"]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_compiled_round_trip_equals_eager(backend):
    def round_trip(x: torch.Tensor) -> torch.Tensor:
        codes, scales, zero_points = quantize_packed(x, 4, 32, False, backend=backend)
        return dequantize_packed(
            codes, scales, zero_points, 4, 32, x.shape[-1], False, backend=backend
        )

    compiled = torch.compile(round_trip, fullgraph=True, backend="eager")
    x = torch.randn(5, 100)
    assert torch.equal(compiled(x), round_trip(x))


def test_export_of_a_module_calling_the_ops():
    class Bottleneck(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            codes, scales, zero_points = quantize_packed(
                torch.relu(x), 8, 16, True, backend="torch"
            )
            return dequantize_packed(codes, scales, zero_points, 8, 16, 48, True, backend="torch")

    x = torch.randn(3, 48)
    exported = torch.export.export(Bottleneck(), (x,))
    names = {str(node.target) for node in exported.graph.nodes}
    assert "aiflow_comm.quantize_packed.default" in names
    assert torch.equal(exported.module()(x), Bottleneck()(x))


def test_fake_tensors_get_the_layout_shapes():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(4, 7, 33)
        codes, scales, zero_points = quantize_packed(x, 2, 8, False, backend="torch")
        decoded = dequantize_packed(codes, scales, zero_points, 2, 8, 33, False, torch.float16)
    assert codes.shape == (28, 9) and scales.shape == (28, 5) and zero_points.shape == (28, 5)
    assert decoded.shape == (28, 33) and decoded.dtype == torch.float16


def test_a_split_link_compiles_over_an_analog_link_and_in_deployment():
    """torch.compile raised inside dynamo: over an AnalogLink ("Tensor must have a last
    dimension of size 2", the complex view of real pairs) and in eval mode (numpy's astype on a
    fake tensor in to_bytes). Both now run those parts eagerly."""
    import warnings

    from aiflow_comm.channel import AWGN, AnalogLink
    from aiflow_comm.split import SplitLink

    features = torch.randn(4, 32, requires_grad=True)
    analog = SplitLink(bits=4, group_size=8, link=AnalogLink(AWGN(generator=0)), snr_db=40.0)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", ".*lru_cache")  # the backend resolver's cache warned
        out = torch.compile(analog)(features)
    out.sum().backward()
    assert out.shape == (4, 32) and features.grad is not None
    torch.testing.assert_close(out, features.detach(), rtol=0.1, atol=0.5)  # 4 bits, 40 dB
    deployed = SplitLink(bits=4, group_size=8).eval()
    assert torch.equal(torch.compile(deployed)(features), deployed(features))
