"""The eager shortcut of the custom ops: taken only when the dispatcher would do the same."""

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from aiflow_comm.kernels.dispatch import plain_eager
from aiflow_comm.kernels.ops import _quantize_op, quantize_packed


class Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def test_plain_eager_only_without_modes_compilation_or_subclasses() -> None:
    x = torch.ones(3)
    assert plain_eager((x, 8, None))
    assert not plain_eager((torch.nn.Parameter(x),))  # a tensor subclass
    assert not plain_eager((8, torch.ones(3, device="meta")))  # the fake implementation's
    with Recorder():
        assert not plain_eager((x,))
    seen = []

    @torch.compile(fullgraph=True, backend="eager")
    def traced(t: torch.Tensor) -> torch.Tensor:
        seen.append(plain_eager((t,)))
        return t + 1

    traced(x)
    assert seen == [False]


def test_a_dispatch_mode_sees_the_registered_op_and_results_agree() -> None:
    x = torch.randn(4, 64)
    direct = quantize_packed(x, 4, 16, backend="torch")
    with Recorder() as recorder:
        through_dispatcher = quantize_packed(x, 4, 16, backend="torch")
    assert any("aiflow_comm.quantize_packed" in op for op in recorder.ops)
    assert all(torch.equal(a, b) for a, b in zip(direct, through_dispatcher, strict=True))
    assert all(
        torch.equal(a, b)
        for a, b in zip(direct, _quantize_op.op(x, 4, 16, True, -1, "torch", True), strict=True)
    )
