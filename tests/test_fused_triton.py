"""The triton and cuda fused backends against the reference, within the bounded-difference rule.

On a machine without a GPU, triton runs through its interpreter (``TRITON_INTERPRET=1``, set by
the top-level conftest): shapes are small and each test takes a few of the (bits, bias) cases, the
tests together all of them. With a GPU, triton and cuda run on it and are compared with the
reference run on the CPU.
"""

from __future__ import annotations

import pytest
import torch
from test_fused import _projection, assert_codes_close

from aiflow_comm.bench.fused import bench_fused, fused_runs
from aiflow_comm.cli import main
from aiflow_comm.codec.quantized import quantize
from aiflow_comm.kernels.fused import dequantize_project, project_quantize, resolve_fused_backend


def _usable(backend: str, device: str) -> bool:
    try:
        resolve_fused_backend(backend, torch.device(device))
    except ValueError:
        return False
    return True


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
FUSED = [(b, d) for d in DEVICES for b in ("triton", "cuda") if _usable(b, d)]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# (rows, in_features, out_features): one, a few and an odd number of rows; groups of 8, 32 and
# 128 leave a shorter last group, or one group (larger than the row) holding every output.
SHAPES = [(1, 7, 5), (3, 33, 40), (17, 33, 130)]
GROUPS = [8, 32, 128]

pytestmark = pytest.mark.skipif(not FUSED, reason="no triton or cuda fused backend usable here")


def _tensor(*shape: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _check_project_quantize(backend, device, x, weight, bias, bits, group_size) -> None:
    """Both schemes: codes within the bound of the reference's (run on the CPU), scales close."""
    on = [None if t is None else t.to(device) for t in (x, weight, bias)]
    for symmetric in (True, False):
        args = (bits, group_size)
        want = project_quantize(x, weight, bias, *args, symmetric=symmetric, backend="torch")
        got = project_quantize(*on, *args, symmetric=symmetric, backend=backend)
        assert got.codes.device.type == device
        assert_codes_close(got.to("cpu"), want)


def _cases(*indices: int) -> tuple[int, bool]:
    """The (bits, bias) case of a test: each index list covers every case across the tests."""
    k = sum(indices)
    return (2, 4, 8)[k % 3], k % 2 == 0


@pytest.mark.parametrize(("backend", "device"), FUSED)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("group_size", GROUPS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_project_quantize_matches_reference(backend, device, shape, group_size, dtype):
    rows, inp, out = shape
    bits, bias = _cases(SHAPES.index(shape), GROUPS.index(group_size), DTYPES.index(dtype))
    x = _tensor(rows, inp, seed=rows + inp, dtype=dtype)
    weight, b = _projection(inp, out, dtype, bias, seed=out)
    _check_project_quantize(backend, device, x, weight, b, bits, group_size)


@pytest.mark.parametrize(("backend", "device"), FUSED)
@pytest.mark.parametrize(
    ("out", "group_size", "bits"),
    [(300, 300, 4), (600, 512, 8), (520, 260, 2), (300, 200, 8), (300, 8, 4)],
)
def test_wide_groups_and_many_groups(backend, device, out, group_size, bits):
    """Groups wider than a tile (triton: chunks, two passes), and many groups per row."""
    x = _tensor(5, 20, seed=out)
    weight, bias = _projection(20, out, torch.float32, True, seed=group_size)
    _check_project_quantize(backend, device, x, weight, bias, bits, group_size)


@pytest.mark.parametrize(("backend", "device"), FUSED)
def test_mixed_dtypes(backend, device):
    """x, weight and bias of different dtypes: the spec casts each to float32."""
    x = _tensor(6, 24, seed=1, dtype=torch.bfloat16)
    weight, bias = _projection(24, 40, torch.float32, True)
    _check_project_quantize(backend, device, x, weight, bias.half(), 8, 16)
    _check_project_quantize(backend, device, x.half(), weight.bfloat16(), None, 4, 8)


@pytest.mark.parametrize(("backend", "device"), FUSED)
@pytest.mark.parametrize("view", ["transposed", "sliced", "expanded", "leading", "weight_t"])
def test_strided_inputs(backend, device, view):
    base = _tensor(40, 70, seed=2)
    x = {
        "transposed": base.T[:, :33],
        "sliced": base[::3, 5:38],
        "expanded": base[:1, :33].expand(6, 33),
        "leading": base[:24, 5:38].unflatten(0, (2, 3, 4))[:, ::2],
        "weight_t": base[:9, :33],
    }[view]
    weight, bias = _projection(33, 17, torch.float32, True)
    if view == "weight_t":
        weight = weight.T.contiguous().T
    _check_project_quantize(backend, device, x, weight, bias, 8, 8)


@pytest.mark.parametrize(("backend", "device"), FUSED)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("group_size", [*GROUPS, 300])
@pytest.mark.parametrize("inp", [7, 33, 130])
def test_dequantize_project_matches_reference(backend, device, inp, group_size, dtype):
    bits, bias = _cases([7, 33, 130].index(inp), group_size, DTYPES.index(dtype))
    x = _tensor(3, 5, inp, seed=inp, dtype=dtype)
    weight, b = _projection(inp, 40, dtype, bias, seed=group_size)
    if group_size == 32:
        weight = weight.T.contiguous().T  # a transposed weight is read as it is
    for symmetric in (True, False):
        q = quantize(x, bits, group_size, symmetric=symmetric, backend="torch")
        want = dequantize_project(q, weight, b, backend="torch")
        on = [None if t is None else t.to(device) for t in (weight, b)]
        got = dequantize_project(q.to(device), *on, backend=backend)
        assert got.shape == (3, 5, 40) and got.dtype == dtype
        tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {}
        torch.testing.assert_close(got.cpu(), want, **tol)


@pytest.mark.parametrize(("backend", "device"), FUSED)
def test_empty_and_degenerate_shapes(backend, device):
    weight, bias = _projection(8, 6, torch.float32, True)
    on = weight.to(device), bias.to(device)
    q = project_quantize(torch.empty(0, 8, device=device), *on, 8, 4, backend=backend)
    assert q.shape == (0, 6) and q.codes.shape == (0, 6) and q.scales.shape == (0, 2)
    receiver = _tensor(5, 6, seed=5).to(device)
    assert dequantize_project(q, receiver, backend=backend).shape == (0, 5)
    # No input features: the projection is the bias.
    no_inputs = torch.empty(3, 0, device=device), torch.empty(6, 0, device=device), on[1]
    want = quantize(bias.expand(3, 6), 8, 4, backend="torch")
    assert_codes_close(project_quantize(*no_inputs, 8, 4, backend=backend).to("cpu"), want)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy (interpreter) on inf - inf
@pytest.mark.parametrize(("backend", "device"), FUSED)
def test_non_finite_projection_raises(backend, device):
    x = _tensor(4, 16, seed=3).to(device)
    x[2, 5] = float("nan")
    weight = _tensor(12, 16, seed=4).to(device)
    with pytest.raises(ValueError, match="NaN or Inf"):
        project_quantize(x, weight, None, 8, 4, backend=backend)
    with pytest.raises(ValueError, match="NaN or Inf"):
        project_quantize(x[:2] * 1e30, weight * 1e30, None, 4, 8, symmetric=False, backend=backend)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy (interpreter) on inf * 0
@pytest.mark.parametrize(("backend", "device"), FUSED)
def test_unchecked_inf_codes_in_a_padded_group_are_the_references(backend, device):
    """Symmetric groups padded to a power of two took the padding's max: x @ 0 is NaN where x
    holds Inf, so the divisor fell back to 1 and an Inf got code 255 where the reference's
    inf / inf gives 128 (the scales were NaN either way)."""
    from aiflow_comm.kernels.reference import unpack_codes

    x, weight = torch.tensor([[1.0, float("inf")]]), torch.ones(3, 2)
    for group_size in (2, 5):
        want = project_quantize(x, weight, None, 8, group_size, backend="torch", check_finite=False)
        got = project_quantize(x.to(device), weight.to(device), None, 8, group_size,
                               backend=backend, check_finite=False).to("cpu")  # fmt: skip
        assert unpack_codes(got.codes, got.layout).tolist() == [[128, 128, 128]]
        assert torch.equal(got.codes, want.codes)


def test_dispatch_names_the_usable_backends():
    for backend, device in FUSED:
        assert resolve_fused_backend(backend, torch.device(device)) == backend
    assert resolve_fused_backend("auto", torch.device("cpu")) != "triton"  # never the interpreter
    if torch.cuda.is_available():
        assert resolve_fused_backend("auto", torch.device("cuda")) in ("cuda", "triton")
    else:
        with pytest.raises(ValueError, match=r"backend 'cuda' has no fused kernel .* usable here"):
            resolve_fused_backend("cuda", torch.device("cpu"))


def test_bench_fused_options():
    backend, device = FUSED[0]
    rows = bench_fused({"tiny": (8, 16, 8)}, 4, 4, 1, backend, device, torch.bfloat16)
    assert [row.op for row in rows] == ["project_quantize", "dequantize_project"]
    for row in rows:
        assert (row.backend, row.device, row.dtype) == (backend, device, "bfloat16")
        assert row.fused_seconds > 0 and row.matmul_seconds > 0
        assert not row.transposed_weights and row.check_finite
    rows = bench_fused(
        {"tiny": (8, 16, 16)}, 8, 16, 1, "torch", transposed_weights=True, check_finite=False
    )
    assert [(row.transposed_weights, row.check_finite) for row in rows] == [(True, False)] * 2
    runs = fused_runs(*(torch.full(s, float("nan")) for s in ((4, 8), (2, 8), (2,))), 8, 2, "torch",
                      check_finite=False)  # fmt: skip
    assert not torch.isfinite(runs["fused"]().scales).any()
    assert not torch.isfinite(runs["separate"]()[1]).any()
    with pytest.raises(SystemExit, match="no fused kernel for tensors on cpu"):
        main(["bench", "fused", "--backend", "cuda", "--device", "cpu"])
