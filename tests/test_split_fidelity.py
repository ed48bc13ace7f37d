"""What torch.fx cannot see: the split either matches the unsplit model or refuses, never differs.

Each model here computes something its naive fx graph does not; the reference is the unsplit
model itself.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aiflow_comm.split import (
    SplitModel,
    UntraceableModelError,
    list_split_points,
    split_model,
    trace_model,
)
from aiflow_comm.split.fidelity import first_difference


class ViewAdd(nn.Module):
    """``v += 1`` on a view: the write reaches ``h`` in the model; fx records ``v = v + 1``."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 2)

    def forward(self, x):
        h = self.a(x)
        v = h[:, :4]
        v += 1.0
        return self.b(h)


class Optional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x, mask=None, scale=2.0, *, double=True):
        h = self.a(x)
        h = h * 3.0 if mask is None else h.masked_fill(mask, 0.0)
        if double:
            h = h + h
        return self.b(h) * scale


class Frozen(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 8)

    def forward(self, x):
        with torch.no_grad():
            return self.layer(x)


class FrozenBackbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone, self.head = Frozen(), nn.Linear(8, 2)

    def forward(self, x):
        return self.head(torch.relu(self.backbone(x)))


class RootAutocast(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(16, 16), nn.Linear(16, 4)

    def forward(self, x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            h = self.a(x)
        return self.b(h.float())


def test_a_graph_that_differs_from_its_model_is_refused():
    model, x = ViewAdd().eval(), torch.randn(3, 4)
    with pytest.raises(UntraceableModelError, match=r"values differ .* v \+= 1"):
        list_split_points(model, x)
    with pytest.raises(UntraceableModelError, match="does not compute what the model computes"):
        split_model(model, "a", x)
    with (
        pytest.warns(UserWarning, match="RootAutocast.forward uses torch.no_grad, autocast"),
        pytest.raises(UntraceableModelError, match="values differ"),
    ):
        list_split_points(RootAutocast().eval(), torch.randn(5, 16))


def test_arguments_left_at_their_default_are_traced_at_it():
    model, x = Optional().eval(), torch.randn(3, 4)
    mask = torch.rand(3, 4) > 0.5
    with torch.no_grad():
        assert [p.name for p in list_split_points(model, x)] == ["a", "mul", "add", "b"]
        for point in list_split_points(model, x):
            assert torch.equal(split_model(model, point, x)(x), model(x)), point.name
        assert torch.equal(split_model(model, "a")(x), model(x))  # no example: defaults too
        names = [p.name for p in list_split_points(model, (x, mask))]
        assert names == ["a", "masked_fill", "add", "b"]
        split = split_model(model, "masked_fill", (x, mask))
        assert torch.equal(split(x, mask), model(x, mask))
        assert torch.equal(split(x, mask=mask), model(x, mask=mask))
    with pytest.raises(ValueError, match=r"holds 6 value\(s\); Optional.forward takes 1 to 3"):
        list_split_points(model, (x,) * 6)
    with pytest.raises(ValueError, match="at least one tensor"):
        list_split_points(model, ())
    with pytest.raises(TypeError, match=r"a tuple of tensors; got a tuple of \['Tensor', 'str'\]"):
        list_split_points(model, (x, "mask"))


def test_a_submodule_under_no_grad_stays_whole_and_frozen():
    torch.manual_seed(0)
    model, x = FrozenBackbone().train(), torch.randn(3, 4)
    assert [p.name for p in list_split_points(model, x)] == ["backbone", "relu"]
    split_model(model, "backbone", x)(x).sum().backward()
    assert model.backbone.layer.weight.grad is None and model.head.weight.grad is not None


def test_out_arguments_and_opaque_leaves_count_as_writes():
    class OutWrite(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 2)

        def forward(self, x):
            h = self.a(x)
            v = h[:, :4]
            torch.mul(h, 2, out=h)
            return self.b(h) + v.sum(1, keepdim=True)

    class Doubler(nn.Module):
        def forward(self, t):
            return t.mul_(2)

    class LeafWrite(OutWrite):
        def __init__(self) -> None:
            super().__init__()
            self.doubler = Doubler()

        def forward(self, x):
            h = self.a(x)
            v = h[:, :4]
            h = self.doubler(h)
            return self.b(h) + v.sum(1, keepdim=True)

    x = torch.randn(3, 4)
    for model, leaves in ((OutWrite().eval(), None), (LeafWrite().eval(), [Doubler])):
        names = [p.name for p in list_split_points(model, x, leaf_modules=leaves)]
        assert "getitem" not in names and "a" in names
        with pytest.raises(ValueError, match="share memory that the tail writes in place"):
            split_model(model, "getitem", x, leaf_modules=leaves)


def test_buffers_replaced_after_the_cut_are_read_anew():
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)
            self.register_buffer("scale", torch.tensor(2.0))

        def forward(self, x):
            return self.b(self.a(x) * self.scale)

    model, x = Scaled().eval(), torch.randn(3, 4)
    split = split_model(model, "a", x)
    model.to(torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(split(x.bfloat16()), model(x.bfloat16()))
        model.scale = torch.tensor(5.0, dtype=torch.bfloat16)
        assert torch.equal(split(x.bfloat16()), model(x.bfloat16()))


def test_training_mode_randomness_and_statistics_pass_the_check():
    """Dropout draws the same masks in both runs and BatchNorm statistics are restored."""
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 2))

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = model

        def forward(self, x):
            return self.body(x) + torch.nn.functional.dropout(x[:, :2], 0.3, self.training)

    wrapped, x = Wrapped().train(), torch.randn(16, 4)
    before = [b.clone() for b in wrapped.buffers()]
    assert [p.name for p in list_split_points(wrapped, x)][:2] == ["body.0", "body.1"]
    assert all(torch.equal(a, b) for a, b in zip(before, wrapped.buffers(), strict=True))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's own, on importing dynamo
def test_compiled_models_and_first_difference():
    with pytest.raises(TypeError, match=r"torch.compile wrapper; split the original"):
        trace_model(torch.compile(nn.Linear(2, 2)))
    assert first_difference([torch.ones(2)], [torch.ones(2)]) is None
    assert "float32 (2,) in the model" in first_difference(torch.ones(2), torch.ones(3))
    assert first_difference({"a": 1}, {"b": 1}) == "output: a dict with keys ['a'] in the model"
    nan = torch.tensor([float("nan"), 1.0])
    assert first_difference(nan, nan.clone()) is None
    assert SplitModel(nn.Identity(), None, nn.Identity())(torch.ones(1)).item() == 1.0


def test_a_model_in_training_that_cannot_run_one_example_is_checked_in_eval_mode():
    """BatchNorm1d in training refuses a batch of one; the check then runs in eval mode (as
    the shape run does), and the model keeps its training flags."""
    body = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = body

        def forward(self, x):
            return self.body(x) * 2.0

    wrapped = Wrapped().train()
    names = [p.name for p in list_split_points(wrapped, torch.randn(1, 4))]
    assert names[:2] == ["body.0", "body.1"]
    assert all(m.training for m in wrapped.modules())


def test_what_the_check_must_not_refuse():
    """A channel drawing from its own generator (the model does not repeat itself), a model
    writing its input, ``forward(x=None)`` without an example, and a docstring that merely
    names ``no_grad``."""
    from aiflow_comm.channel import AWGN, AnalogLink

    class Noisy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc, self.dec = nn.Linear(4, 8), nn.Linear(8, 2)
            self.link = AnalogLink(AWGN(generator=0))

        def forward(self, x):
            return self.dec(self.link(self.enc(x), 10.0))

    class WritesInput(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 2)

        def forward(self, x=None):
            """Callers may wrap inference in torch.no_grad; that is theirs to do."""
            x.mul_(2.0)
            return self.a(torch.relu(x))

    x = torch.randn(3, 4)
    assert [p.name for p in list_split_points(Noisy(), x, leaf_modules=[AnalogLink])] == [
        "enc",
        "link",
    ]
    model = WritesInput().eval()
    assert [p.name for p in list_split_points(model, x.clone())] == ["mul_", "relu"]
    with torch.no_grad():
        assert torch.equal(split_model(model, "relu")(x.clone()), model(x.clone()))


def test_the_split_and_the_model_share_replaced_buffers_both_ways():
    class Centered(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)
            self.register_buffer("mean", torch.full((4,), 0.5))

        def forward(self, x):
            return self.fc(x - self.mean)

    model, x = Centered().eval(), torch.randn(3, 4)
    split = split_model(model, "sub", x).to(torch.bfloat16)
    with torch.no_grad():
        assert split(x.bfloat16()).dtype == torch.bfloat16
        assert model.mean.dtype == torch.bfloat16 and torch.equal(split(x.bfloat16()),
                                                                 model(x.bfloat16()))  # fmt: skip
