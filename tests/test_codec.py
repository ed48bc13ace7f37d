"""quantize/dequantize/fake_quantize: error bounds, stochastic rounding, bad input."""

from __future__ import annotations

import pytest
import torch

from aiflow_comm.codec import QuantizedTensor, dequantize, fake_quantize, quantize, sparsify
from aiflow_comm.kernels import available_backends

BACKENDS = available_backends("cpu")


def _step_per_value(q: QuantizedTensor) -> torch.Tensor:
    length = q.shape[-1]
    index = torch.arange(length) // q.group_size
    return q.scales[:, index].reshape(q.shape)


def _half_step_bound(q: QuantizedTensor, x: torch.Tensor) -> torch.Tensor:
    """Half a step, plus the float32 rounding of the decoded product (relative 2**-23)."""
    return _step_per_value(q) / 2 + x.float().abs() * 2**-22 + 1e-30


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 17), (2, 3, 1025), (8193,)])
def test_round_trip_error_at_most_half_a_step(backend, bits, symmetric, shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape))) * 4
    q = quantize(x, bits, 64, symmetric=symmetric, backend=backend)
    error = (dequantize(q) - x).abs()
    assert (error <= _half_step_bound(q, x)).all()
    assert dequantize(q).shape == x.shape and dequantize(q).dtype == x.dtype


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_decode_to_their_dtype(dtype):
    x = (torch.randn(4, 300) * 10).to(dtype)
    q = quantize(x, 8, 128)
    assert q.dtype == dtype and dequantize(q).dtype == dtype
    assert dequantize(q, torch.float32).dtype == torch.float32
    error = (dequantize(q, torch.float32) - x.float()).abs()
    assert (error <= _half_step_bound(q, x)).all()


def test_payload_size_and_compression():
    x = torch.randn(16, 1024)
    for bits in (2, 4, 8):
        q = quantize(x, bits, 128)
        assert q.codes.numel() == 16 * 1024 * bits // 8
        assert q.nbytes == q.codes.numel() + 16 * 8 * 4
    assert quantize(x, 4, 128, symmetric=False).nbytes == 16 * 512 + 2 * 16 * 8 * 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_stochastic_rounding_is_unbiased_and_seeded(backend):
    x = torch.full((1, 4096), 0.3)
    x[0, 0] = 1.0  # sets the scale to 1/7 at 4 bits: 0.3 sits between codes 2 and 3
    decoded = [
        dequantize(
            quantize(
                x,
                4,
                4096,
                rounding="stochastic",
                generator=torch.Generator().manual_seed(s),
                backend=backend,
            )
        )
        for s in range(8)
    ]
    draws = torch.stack(decoded)[:, 0, 1:]
    step = 1 / 7
    # Each draw is 2/7 or 3/7, the upper with p = 0.1: the mean of n draws has standard
    # deviation step * sqrt(p * (1 - p) / n). Allow 6 of them.
    sigma = step * (0.1 * 0.9 / draws.numel()) ** 0.5
    assert abs(float(draws.mean()) - 0.3) < 6 * sigma
    assert set(torch.round(draws / step).unique().tolist()) == {2.0, 3.0}
    again = quantize(
        x,
        4,
        4096,
        rounding="stochastic",
        generator=torch.Generator().manual_seed(3),
        backend=backend,
    )
    assert torch.equal(dequantize(again), decoded[3])
    assert not torch.equal(decoded[0], decoded[1])


def test_stochastic_rounding_same_codes_on_every_backend():
    x = torch.randn(5, 333)
    codes = [
        quantize(
            x, 2, 37, rounding="stochastic", generator=torch.Generator().manual_seed(11), backend=b
        ).codes
        for b in BACKENDS
    ]
    assert all(torch.equal(codes[0], c) for c in codes[1:])


def test_fake_quantize_forward_equals_decoded_codes_and_gradient_is_identity():
    x = torch.randn(6, 200, requires_grad=True)
    y = fake_quantize(x, 4, 32, symmetric=False)
    assert torch.equal(y.detach(), dequantize(quantize(x.detach(), 4, 32, symmetric=False)))
    weights = torch.randn(6, 200)
    (y * weights).sum().backward()
    assert torch.equal(x.grad, weights)


def test_fake_quantize_gradient_reaches_earlier_layers():
    layer = torch.nn.Linear(10, 64)
    out = fake_quantize(layer(torch.randn(3, 10)), 2, 16).pow(2).sum()
    out.backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"bits": 3}, ValueError, "bits"),
        ({"bits": 16}, ValueError, "bits"),
        ({"bits": 8.0}, TypeError, "bits"),
        ({"group_size": 0}, ValueError, "group_size"),
        ({"group_size": -4}, ValueError, "group_size"),
        ({"rounding": "up"}, ValueError, "rounding"),
        ({"backend": "fpga"}, ValueError, "backend"),
        ({"generator": 5.0, "rounding": "stochastic"}, TypeError, "generator"),
        ({"generator": True, "rounding": "stochastic"}, TypeError, "generator"),
        ({"generator": -1, "rounding": "stochastic"}, ValueError, "generator"),
        ({"generator": "abc"}, TypeError, "generator"),  # unused by nearest rounding: was silent
        ({"generator": -1}, ValueError, "generator"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        quantize(torch.randn(2, 8), **kwargs)


def test_stochastic_rounding_takes_an_int_seed():
    """An int seed is a generator seeded with it (DESIGN.md: a generator or a seed): the same
    seed gives the same codes, as fake_quantize's forward."""
    x = torch.randn(4, 64)
    a, b = (quantize(x, 4, 16, rounding="stochastic", generator=7) for _ in range(2))
    g = quantize(x, 4, 16, rounding="stochastic", generator=torch.Generator().manual_seed(7))
    other = quantize(x, 4, 16, rounding="stochastic", generator=8)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.codes, g.codes)
    assert not torch.equal(a.codes, other.codes)
    fake = fake_quantize(x, 4, 16, rounding="stochastic", generator=7)
    assert torch.equal(fake, a.dequantize())


@pytest.mark.parametrize(
    "x",
    [
        torch.ones(3, dtype=torch.int32),
        torch.ones(3, dtype=torch.complex64),
        torch.ones(3).bool(),
        torch.ones(3, dtype=torch.float64),
        [1.0, 2.0],
    ],
)
def test_non_float_inputs_raise_type_error(x):
    with pytest.raises(TypeError, match="x must"):
        quantize(x)


def test_scalar_input_raises():
    with pytest.raises(ValueError, match="dimension"):
        quantize(torch.tensor(1.0))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_raises(bad):
    x = torch.randn(4, 4)
    x[2, 1] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        quantize(x, backend="torch")
    with pytest.raises(ValueError, match="NaN or Inf"):
        fake_quantize(x)
    leaf = x.clone().requires_grad_()
    quiet = fake_quantize(leaf, 8, 2, check_finite=False)  # no raise; the bad group only
    assert torch.isfinite(quiet).sum() == 14 and not torch.isfinite(quiet[2, :2]).any()
    quiet.sum().backward()
    assert torch.equal(leaf.grad, torch.ones(4, 4))


def test_asymmetric_range_overflow_raises():
    x = torch.tensor([[3e38, -3e38]])
    with pytest.raises(ValueError, match="overflows"):
        quantize(x, symmetric=False)


def test_unusable_backend_for_device_raises():
    if "cuda" in available_backends("cpu"):
        pytest.skip("cuda is never a CPU backend")
    with pytest.raises(ValueError, match="not usable"):
        quantize(torch.randn(2, 4), backend="cuda")


def test_mismatched_devices_rejected():
    q = quantize(torch.randn(2, 8))
    meta_scales = q.scales.to("meta")
    with pytest.raises(ValueError, match="one device"):
        QuantizedTensor(q.codes, meta_scales, None, q.shape, q.dtype, 8, 128)


def test_inconsistent_quantized_tensor_rejected():
    q = quantize(torch.randn(2, 8), 4, 4)
    with pytest.raises(ValueError, match="codes"):
        QuantizedTensor(q.codes[:, :1], q.scales, None, q.shape, q.dtype, 4, 4)
    with pytest.raises(ValueError, match="zero_points"):
        QuantizedTensor(q.codes, q.scales, q.scales, q.shape, q.dtype, 4, 4)
    with pytest.raises(TypeError, match="QuantizedTensor"):
        dequantize(torch.zeros(3))


def test_empty_tensors():
    for shape in [(0, 5), (3, 0), (0,)]:
        x = torch.empty(shape)
        q = quantize(x, 4, 8)
        assert dequantize(q).shape == x.shape


def test_to_moves_every_buffer_and_keeps_the_values():
    q = quantize(torch.randn(3, 40), 4, 16, symmetric=False)
    moved = q.to("meta")
    assert moved.device.type == "meta"
    assert moved.scales.device.type == "meta" and moved.zero_points.device.type == "meta"
    back = q.to("cpu")
    assert back.device.type == "cpu" and torch.equal(back.codes, q.codes)
    assert (moved.shape, moved.bits, moved.scheme) == (q.shape, q.bits, q.scheme)


def test_from_kernel_builds_what_the_checked_constructor_builds() -> None:
    x = torch.randn(3, 5, 40)
    for symmetric in (True, False):
        q = quantize(x, bits=4, group_size=16, symmetric=symmetric)
        checked = QuantizedTensor(q.codes, q.scales, q.zero_points, q.shape, q.dtype, q.bits,
                                  q.group_size, q.scheme)  # fmt: skip
        assert checked.to_bytes() == q.to_bytes() and q.shape == (3, 5, 40)
        assert (q.scheme == "symmetric") == symmetric and (q.zero_points is None) == symmetric


def test_fake_quantize_output_may_be_changed_in_place():
    """A tail opening with ReLU(inplace=True) right after the cut (torchvision's style)."""
    x = torch.randn(4, 64, requires_grad=True)
    linear = torch.nn.Linear(64, 2)
    tail = torch.nn.Sequential(torch.nn.ReLU(inplace=True), linear)
    tail(fake_quantize(x, 4, 16)).sum().backward()
    # the same straight-through estimator written out: x + (decoded - x).detach()
    written = x.detach().clone().requires_grad_()
    decoded = dequantize(quantize(written.detach(), 4, 16))
    linear(torch.relu(written + (decoded - written).detach())).sum().backward()
    assert torch.equal(x.grad, written.grad)


@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_quantized_buffers_never_carry_autograd_history(backend):
    """A tensor that requires grad, or a Parameter, quantizes like a plain tensor on every
    backend: codes and scales are data, fake_quantize is the differentiable path."""
    x = torch.tensor([[1.0, -2.0, 0.5, 0.25]], requires_grad=True)
    for source in (x, torch.nn.Parameter(x.detach().clone())):
        q = quantize(source, 8, 4, backend=backend)
        assert not q.scales.requires_grad and q.scales.grad_fn is None
        assert torch.equal(q.codes, quantize(x.detach(), 8, 4, backend=backend).codes)
    sparse = sparsify(x, k=2, group_size=4)
    assert not sparse.scales.requires_grad and sparse.scales.numpy().shape == (1, 1)


def test_a_dynamic_batch_stays_symbolic():
    class RoundTrip(torch.nn.Module):
        def forward(self, x):
            return dequantize(quantize(x, 4, 16))

    batch = torch.export.Dim("batch")
    program = torch.export.export(RoundTrip(), (torch.randn(4, 3, 40),),
                                  dynamic_shapes={"x": {0: batch}})  # fmt: skip
    for rows in (2, 7):
        x = torch.randn(rows, 3, 40)
        assert torch.equal(program.module()(x), RoundTrip()(x))


def test_layout_sizes_must_be_non_negative_ints():
    with pytest.raises(ValueError, match=r"shape must hold ints >= 0; got \(-1, -3, 8\)"):
        QuantizedTensor(torch.zeros(3, 8, dtype=torch.uint8), torch.ones(3, 2), None,
                        (-1, -3, 8), torch.float32, 8, 4, "symmetric")  # fmt: skip
    with pytest.raises(ValueError, match=r"shape must hold ints >= 0; got \(3.0, 8.0\)"):
        QuantizedTensor(torch.zeros(3, 8, dtype=torch.uint8), torch.ones(3, 2), None,
                        (3.0, 8.0), torch.float32, 8, 4, "symmetric")  # fmt: skip
