"""Models users have, cut at every listed point: the split equals the model or is refused.

Buffers computed from or written in ``forward``, TorchScript submodules, tensor defaults,
pickling, attention and U-Net skips.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import io

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from aiflow_comm.split import UntraceableModelError, list_split_points, split_model, trace_model
from aiflow_comm.split.points import evaluating


class LogScale(nn.Module):
    """A buffer transformed in ``forward``: fx ran ``exp`` once and kept the result."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.register_buffer("log_scale", torch.zeros(4))

    def forward(self, x):
        return self.fc(x) * self.log_scale.exp()


class Counter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.register_buffer("count", torch.zeros(()))

    def forward(self, x):
        self.count += 1
        return self.fc(x)


class RunningMean(nn.Module):
    """A running average of its own, updated in eval mode too."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.register_buffer("mean", torch.zeros(4))

    def forward(self, x):
        h = self.fc(x)
        self.mean.mul_(0.5).add_(h.detach().mean(0), alpha=0.5)
        return h - self.mean


class Scripted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)
        self.body = torch.jit.script(nn.Sequential(nn.Linear(4, 4), nn.ReLU()))

    def forward(self, x):
        return self.b(self.body(self.a(x)))


_HALF = torch.full((4,), 0.5)


class TensorDefault(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x, bias=_HALF):
        return self.b(torch.relu(self.a(x) + bias))


class Scaled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.register_buffer("scale", torch.tensor(2.0))

    def forward(self, x):
        return torch.relu(self.fc(x) * self.scale) * self.scale


class Attention(nn.Module):
    def __init__(self, dim: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.heads, self.norm = heads, nn.LayerNorm(dim)
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 16), nn.GELU(), nn.Linear(16, dim))

    def forward(self, x, mask=None):
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm(x)).chunk(3, dim=-1)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.out(a.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(x)


class UNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(True))
        self.mid = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(inplace=True))
        self.up, self.out = nn.ConvTranspose2d(8, 4, 2, stride=2), nn.Conv2d(8, 1, 1)

    def forward(self, x):
        a = self.down(x)
        return self.out(torch.cat([a, self.up(self.mid(F.max_pool2d(a, 2)))], dim=1))


def test_buffers_computed_in_forward_are_read_at_every_call():
    torch.manual_seed(0)
    model, x = LogScale(), torch.randn(3, 4)
    split = split_model(model, "fc", x)
    model.load_state_dict({**model.state_dict(), "log_scale": torch.ones(4)})
    assert torch.equal(split(x), model(x))  # a constant exp(0) before


def test_a_buffer_assigned_in_forward_is_refused_and_left_as_it_was():
    model, x = Counter(), torch.randn(3, 4)
    for example in (None, x):
        with pytest.raises(UntraceableModelError, match=r"assigns or writes buffer\(s\) count"):
            split_model(model, "fc", example)
    assert model.count.item() == 0 and isinstance(model.count, torch.Tensor)
    assert model(x).shape == (3, 4) and model.count.item() == 1


def test_buffers_written_in_forward_stay_written_and_listing_leaves_them_alone():
    torch.manual_seed(1)
    x = torch.randn(3, 4)
    names = [p.name for p in list_split_points(RunningMean(), x)]
    # Not after mul_ or mean_1: what crosses there is the buffer itself (mul_ returns it), and the
    # tail's add_ would update the copy a link hands it, not the buffer.
    assert names == ["fc", "add_"]
    for name in names:
        model, reference = RunningMean(), RunningMean()
        reference.load_state_dict(model.state_dict())
        split = split_model(model, name, x)
        assert torch.equal(model.mean, reference.mean), name  # neither tracing nor listing wrote
        for _ in range(2):
            assert torch.equal(split(x), reference(x)), name
        assert torch.equal(model.mean, reference.mean), name


def test_torchscript_submodules_stay_whole():
    torch.manual_seed(2)
    model, x = Scripted(), torch.randn(3, 4)
    points = list_split_points(model, x)
    assert [p.name for p in points] == ["a", "body"]
    for point in points:
        split = split_model(model, point, x)
        assert torch.equal(split(x), model(x)), point.name
    model.double()
    assert torch.equal(split(x.double()), model(x.double()))


def test_parameters_fx_does_not_see_are_refused():
    class Norms(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x) * sum(p.norm() for p in self.fc.parameters())

    with pytest.raises(UntraceableModelError, match=r"from parameters that torch\.fx does not see"):
        list_split_points(Norms(), torch.randn(3, 4))


def test_a_tensor_default_is_traced_at_it_or_passed():
    torch.manual_seed(3)
    model, x, bias = TensorDefault(), torch.randn(3, 4), torch.randn(4)
    assert torch.equal(split_model(model, "a")(x), model(x))
    assert [p.name for p in list_split_points(model, x)] == ["a", "add", "relu"]
    assert torch.equal(split_model(model, "add", x)(x), model(x))
    split = split_model(model, "add", (x, bias))
    assert torch.equal(split(x, bias), model(x, bias))
    assert [n.op for n in trace_model(model, num_inputs=2).graph.nodes].count("placeholder") == 2


def test_split_models_pickle_and_load_state_dict():
    torch.manual_seed(4)
    model, x = Scaled(), torch.randn(3, 4)
    split = split_model(model, "mul", x)
    buffer = io.BytesIO()
    torch.save(split, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert torch.equal(loaded(x), model(x))
    again = split_model(Scaled(), "mul", x)
    again.load_state_dict(split.state_dict())
    assert torch.equal(again(x), model(x))
    model.half()  # the original split still follows its model
    assert torch.equal(split(x.half()), model(x.half()))


@pytest.mark.parametrize(
    ("build", "example", "train"),
    [
        (Attention, (torch.randn(2, 5, 8),), False),
        (Attention, (torch.randn(2, 5, 8), torch.ones(5, 5, dtype=torch.bool).tril()), False),
        (UNet, (torch.randn(2, 2, 8, 8),), True),
    ],
)
def test_attention_and_unet_exact_with_gradients_at_every_point(build, example, train):
    torch.manual_seed(5)
    reference = build().train(train)
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    want = reference(*example)
    want.sum().backward()
    for point in list_split_points(reference, example):
        model = build().train(train)
        model.load_state_dict(state)
        split = split_model(model, point, example)
        got = split.tail(split.head(*example))
        assert torch.equal(got, want), point.name
        got.sum().backward()
        for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, msg=f"{point.name}: {name}")
        for b, c in zip(model.buffers(), reference.buffers(), strict=True):
            assert torch.equal(b, c), point.name  # BatchNorm statistics updated once, alike


class _ActNorm(nn.Module):
    """Glow-style: branches on a buffer (fx cannot take it as a graph input there)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.register_buffer("initialized", torch.tensor(True))
        self.scale = nn.Parameter(torch.full((width,), 2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.initialized:
            x = x * 0
        return x * self.scale


def test_a_model_branching_on_a_buffer_is_traced_with_its_value():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.norm, self.fc2 = nn.Linear(4, 8), _ActNorm(8), nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(torch.relu(self.norm(self.fc1(x))))

    net, x = Net(), torch.randn(3, 4)
    points = list_split_points(net, x)
    assert len(points) > 2  # refused before (UntraceableModelError): traced again with values
    for point in points[1:]:
        split = split_model(net, point.name, x)
        assert torch.equal(split.tail(split.head(x)), net(x)), point.name


def test_listing_restores_buffers_the_model_reassigns():
    class Counter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.register_buffer("calls", torch.zeros(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls = self.calls + 1  # a new tensor each call, not an in-place write
            return self.fc(x)

    model = Counter()
    with evaluating(model):
        model(torch.randn(2, 4))
    assert float(model.calls) == 0.0


@dataclasses.dataclass
class _Features:
    feat: torch.Tensor
    ids: torch.Tensor


class _ToContainer(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor):
        ids = torch.arange(x.shape[0])
        return {"feat": x, "ids": ids} if self.kind == "dict" else _Features(x, ids)


class _FromContainer(nn.Module):
    def forward(self, value) -> torch.Tensor:
        feat, ids = (value["feat"], value["ids"]) if isinstance(value, dict) else (
            value.feat, value.ids)  # fmt: skip
        return feat.sum(-1) + ids


class _Negate(nn.Module):
    """A link that is easy to see: every floating-point tensor it gets comes back negated."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -x


@pytest.mark.parametrize("kind", ["dict", "dataclass"])
def test_the_link_reaches_tensors_in_dicts_and_dataclasses(kind):
    """A dict or a dataclass crossing the cut went through SplitModel untouched: a 2-bit link
    (or a channel) did nothing, and training saw no quantization or noise."""
    from aiflow_comm.split import SplitModel

    model = nn.Sequential(nn.Linear(4, 4), _ToContainer(kind), _FromContainer())
    x = torch.randn(3, 4)
    split = split_model(model, "1")
    linked = SplitModel(split.head, _Negate(), split.tail)
    want = -model[0](x).sum(-1) + torch.arange(3)  # the float features negated, ids unchanged
    torch.testing.assert_close(linked(x), want)


class _DoublesItsInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x.mul_(2)))


def _relu_in_place_first() -> nn.Module:
    return nn.Sequential(nn.ReLU(inplace=True), nn.Linear(4, 4), nn.Linear(4, 2))


@pytest.mark.parametrize("build", [_relu_in_place_first, _DoublesItsInput])
def test_listing_and_splitting_leave_the_example_input_alone(build):
    """The shape run wrote into the caller's example tensor when the model writes its input
    (an in-place ReLU first, x.mul_)."""
    x = torch.randn(3, 4) - 0.5
    before = x.clone()
    points = list_split_points(build(), x)
    split_model(build(), points[0].name, x)
    assert torch.equal(x, before)


class _ContainerDefaults(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2)

    def forward(self, x, dims=(2, 3), cfg={"scale": 2.0, "axes": [1]}):  # noqa: B006
        pooled = torch.relu(self.bn(self.conv(x))).mean(dims) * cfg["scale"]
        return self.fc(pooled).flip(cfg["axes"])


def test_tuple_list_and_dict_defaults_are_traced_at_their_value():
    """A tuple or dict default was traced as a graph input: a non-tensor crossing every cut
    before its use, so list_split_points dropped those cuts (only 'mean' was left)."""
    model, x = _ContainerDefaults().eval(), torch.randn(2, 3, 8, 8)
    names = [p.name for p in list_split_points(model, x)]
    assert names[:4] == ["conv", "bn", "relu", "mean"]
    for name in names:
        split = split_model(model, name, x)
        assert torch.equal(split(x), model(x))
        assert all(isinstance(t, torch.Tensor) for t in _as_tuple(split.head(x)))


Spec = collections.namedtuple("Spec", ["heads", "split"])


class _UnpackedDefaults(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed, self.heads = nn.Linear(4, 6), nn.ModuleList([nn.Linear(3, 2), nn.Linear(3, 2)])

    def forward(self, x, order=(0, 2, 1, 3), spec=Spec(2, [1, 0])):  # noqa: B008
        h = self.embed(x).view(x.shape[0], x.shape[1], spec.heads, 3).permute(*order)
        return sum(self.heads[i](h[:, i]) for i in spec.split)


def test_defaults_unpacked_or_iterated_are_traced_at_their_value():
    """``permute(*order)`` or a loop over a default container (a namedtuple too) raised
    UntraceableModelError: fx traced the default as an input it could not iterate."""
    model, x = _UnpackedDefaults(), torch.randn(2, 5, 4)
    names = [p.name for p in list_split_points(model, x)]
    assert names[:2] == ["embed", "view"]
    for name in names:
        split = split_model(model, name, x)
        assert torch.equal(split(x), model(x))


def _as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


class _LazyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.fc = nn.LazyConv2d(4, 3), nn.LazyBatchNorm2d(), nn.LazyLinear(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


@pytest.mark.parametrize("build", [_LazyNet, lambda: nn.Sequential(
    nn.LazyConv2d(4, 3), nn.LazyBatchNorm2d(), nn.Flatten(), nn.LazyLinear(2))])  # fmt: skip
def test_lazy_modules_not_yet_called(build):
    """A lazy BatchNorm's buffers have no value before its first call: listing and splitting
    with an example raised torch's 'uninitialized parameter' error from deep inside."""
    x = torch.randn(2, 3, 8, 8)
    names = [p.name for p in list_split_points(build(), x)]
    assert len(names) >= 3
    model = build()
    split = split_model(model, names[1], x)
    bn = model.bn if hasattr(model, "bn") else model[1]
    assert torch.equal(bn.running_mean, torch.zeros(4))  # the example run left them fresh
    model.eval()
    assert torch.equal(split(x), model(x))
    with pytest.raises(TypeError, match="got the string 'Linear'"):
        list_split_points(_LazyNet(), x, leaf_modules="Linear")


class _Temperature(nn.Module):
    """A learned temperature used on both sides of every cut: exp(log_t) depends on a
    parameter alone."""

    def __init__(self, dropout: bool = False) -> None:
        super().__init__()
        self.log_t = nn.Parameter(torch.tensor(0.3))
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 2)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.log_t.exp()
        if self.dropout:  # random: computed twice, it would differ
            t = F.dropout(t, 0.5, self.training)
        return self.b(self.a(x) * t) / t


def test_values_of_parameters_alone_are_computed_again_in_the_tail():
    """exp(log_t) crossed every cut as a 0-d tensor: the cuts' payloads counted it, and a
    SplitLink refused it (features must be (batch, ...))."""
    from aiflow_comm.split import SplitLink, SplitModel
    from aiflow_comm.split.graph import parameter_values

    model, x = _Temperature().eval(), torch.randn(3, 8)
    assert {n.name for n in parameter_values(trace_model(model).graph)} == {"exp"}
    points = list_split_points(model, x)
    assert [p.name for p in points] == ["exp", "a", "mul", "b"]
    assert all(t.shape[0] == 3 for p in points for t in p.tensors)
    for point in points:
        split = split_model(model, point.name, x)
        assert torch.equal(split(x), model(x))
        linked = SplitModel(split.head, SplitLink(bits=8, group_size=8), split.tail).eval()
        torch.testing.assert_close(linked(x), model(x), rtol=0.05, atol=0.05)
    (grad,) = torch.autograd.grad(split_model(model, "a", x)(x).sum(), model.log_t)
    (want,) = torch.autograd.grad(model(x).sum(), model.log_t)
    torch.testing.assert_close(grad, want)


def test_random_values_of_parameters_cross_once():
    """A dropout of a parameter computed again in the tail would draw another mask."""
    from aiflow_comm.split.graph import parameter_values

    graph = trace_model(_Temperature(dropout=True)).graph
    assert {n.name for n in parameter_values(graph)} == {"exp"}
    model, x = _Temperature(dropout=True).train(), torch.randn(3, 8)
    crossing = {t.name for p in list_split_points(model, x) if p.name == "a" for t in p.tensors}
    assert crossing == {"dropout", "a"}


class _ClampedScale(nn.Module):
    """CLIP's logit scale clamped in place, and a running variance updated in place after use."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.out = nn.Linear(4, 3), nn.Linear(3, 2)
        self.logit_scale = nn.Parameter(torch.tensor(3.0))
        self.register_buffer("var", torch.full((3,), 4.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.logit_scale.exp()
        scale.clamp_(max=10.0)
        std = self.var.sqrt()
        h = torch.relu(self.fc(x)) * scale
        self.var.mul_(0.5).add_(1.0)
        return self.out(h / std)


def test_values_of_parameters_written_in_place_cross_instead_of_being_computed_again():
    """The tail computed exp(logit_scale) again without its clamp_ (an output 2x too large), and
    sqrt(var) from the buffer the head had already updated: a wrong output, with no error."""
    model, x = _ClampedScale().eval(), torch.randn(5, 4)
    names = [p.name for p in list_split_points(model, x)]
    assert {"clamp_", "fc", "relu"} <= set(names) and "mul_" not in names  # mul_ returns var
    state = {k: v.clone() for k, v in model.state_dict().items()}
    expected, updated = model(x), model.var.clone()
    for name in names:
        model.load_state_dict(state)
        assert torch.equal(split_model(model, name, x)(x), expected), name
        assert torch.equal(model.var, updated), name  # the tail updated the buffer itself


class _ParameterQueries(nn.Module):
    """Learned queries normalized by a LayerNorm and positions embedded from arange: values of
    parameters alone, through torch.nn modules."""

    def __init__(self) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(4, 8))
        self.qnorm, self.pos, self.enc = nn.LayerNorm(8), nn.Embedding(5, 8), nn.Linear(8, 8)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, 5, 8)
        keys = torch.relu(self.enc(x + self.pos(torch.arange(5))))
        queries = self.drop(self.qnorm(self.queries))
        return (queries @ keys.transpose(1, 2)).softmax(-1)


def test_values_of_parameters_through_torch_modules_are_computed_again():
    """LayerNorm(queries) and Embedding(arange) crossed the cuts as if they had a batch
    dimension (a SplitLink quantized and noised them); a dropout of them still crosses once."""
    model, x = _ParameterQueries().eval(), torch.randn(2, 5, 8)
    points = list_split_points(model, x)
    for point in points:
        crossing = {t.name for t in point.tensors}
        assert not crossing & {"qnorm", "pos", "arange"}, (point.name, crossing)
        assert torch.equal(split_model(model, point.name, x)(x), model(x))
    assert any("drop" in {t.name for t in p.tensors} for p in points)


class _Mode(enum.Enum):
    DOUBLE = 2
    SAME = 1


class _SettingsDefaults(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x, bias=None, /, dtype=torch.float64, mode=_Mode.DOUBLE):
        h = torch.relu(self.a(x)).to(dtype)
        if bias is not None:
            h = h + bias
        return self.b((h * mode.value).float())


def test_positional_only_dtype_and_enum_defaults_are_traced_at_their_value():
    """A positional-only default was traced as an input (None added to a tensor: an internal
    TypeError from the trace check); a dtype default crossed every cut (no split point), an
    enum default made fx fail."""
    model, x = _SettingsDefaults(), torch.randn(3, 4)
    names = [p.name for p in list_split_points(model, x)]
    assert names == ["a", "relu", "to", "mul", "float_1"]
    for name in names:
        assert torch.equal(split_model(model, name, x)(x), model(x))
        assert torch.equal(split_model(model, name)(x), model(x))


@pytest.mark.parametrize("name", ["meta", "code", "recompile"])
def test_submodules_named_as_graph_module_attributes_are_refused_clearly(name):
    """A submodule called 'meta' (image + metadata models) failed with 'cannot assign dict as
    child module'; 'code' and 'recompile' with errors from the generated code."""

    class Named(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            setattr(self, name, nn.Linear(4, 4))
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(getattr(self, name)(x))

    with pytest.raises(UntraceableModelError, match=rf"\['{name}'\].*Rename them"):
        list_split_points(Named(), torch.randn(2, 4))


def test_a_graph_failing_where_the_model_runs_is_untraceable_and_a_model_error_is_its_own():
    """The trace check let the graph's own exception through (a TypeError from generated code)."""
    from aiflow_comm.split.fidelity import check_trace

    model, wrong = nn.Linear(4, 2), torch.fx.symbolic_trace(nn.Linear(3, 2))
    with pytest.raises(UntraceableModelError, match="fails on example_input where the model runs"):
        check_trace(model, wrong, (torch.randn(2, 4),))
    with pytest.raises(RuntimeError, match="cannot be multiplied"):  # the model's own error
        check_trace(model, wrong, (torch.randn(2, 5),))


class _Masked(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.out = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x, mask=None):
        h = torch.relu(self.fc(x))
        if mask is not None:
            h = h.masked_fill(mask, 0.0)
        return self.out(h)


def test_a_split_point_listed_with_other_inputs_is_refused():
    """A point listed with (x, mask), split without an example, traced the model without the
    mask: the head returned fc alone while .point said mask and fc crossed."""
    model, x, mask = _Masked().eval(), torch.randn(3, 4), torch.rand(3, 4) > 0.5
    point = list_split_points(model, (x, mask))[0]
    assert [t.name for t in point.tensors] == ["mask", "fc"]
    with pytest.raises(ValueError, match="listed with other inputs"):
        split_model(model, point)
    split = split_model(model, point, (x, mask))
    assert split.point is point and torch.equal(split(x, mask), model(x, mask))
