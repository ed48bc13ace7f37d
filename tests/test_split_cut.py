"""list_split_points and split_model: exact head/tail equivalence, crossing tensors, errors."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from aiflow_comm.split import (
    CrossingTensor,
    SplitModel,
    SplitPoint,
    UntraceableModelError,
    list_split_points,
    split_model,
)


def _seeded(model: nn.Module, seed: int = 0) -> nn.Module:
    """``model`` in eval mode, with random BatchNorm statistics so eval BN is not an identity."""
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    return model.eval()


def _cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return _seeded(
        nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(8 * 4 * 4, 10),
        )
    )


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class ResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.layer1 = nn.Sequential(Block(8), Block(8))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc_a = nn.Linear(4, 6)
        self.enc_b = nn.Linear(3, 6)
        self.out = nn.Linear(12, 2)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fa = torch.relu(self.enc_a(a))
        fb = torch.tanh(self.enc_b(b))
        return self.out(torch.cat([fa, fb], dim=1))


class TwoHeads(nn.Module):
    """The body's features cross every cut between the two heads, beside the first head's output."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.cls = nn.Linear(8, 3)
        self.reg = nn.Linear(8, 1)
        self.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.body(x))
        logits = self.cls(h).softmax(dim=-1)
        return logits, self.reg(h) * self.scale


class Gate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
            return x * 2
        return -x


class Gated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 4)
        self.gate = Gate()
        self.fc2 = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.gate(self.fc1(x)))


def _assert_exact_at_every_point(model, example, **kwargs):
    inputs = example if isinstance(example, tuple) else (example,)
    points = list_split_points(model, example, **kwargs)
    assert points and [p.index for p in points] == list(range(len(points)))
    assert len({p.name for p in points}) == len(points)
    with torch.no_grad():
        expected = model(*inputs)
        for point in points:
            split = split_model(model, point.name, **kwargs)
            features = split.head(*inputs)
            crossing = features if isinstance(features, tuple) else (features,)
            assert [tuple(f.shape) for f in crossing] == [t.shape for t in point.tensors]
            got = split.tail(features)
            pairs = zip(got, expected, strict=True) if isinstance(got, tuple) else [(got, expected)]
            assert all(torch.equal(g, e) for g, e in pairs), point.name
            assert split(*inputs) is not None
    return points


def test_sequential_cnn_exact_at_every_point():
    points = _assert_exact_at_every_point(_cnn(), torch.randn(2, 3, 8, 8))
    assert [p.name for p in points] == ["0", "1", "2", "3", "4"]
    assert points[4].tensors == (CrossingTensor("4", (2, 128), torch.float32),)


def test_sequential_names_come_from_ordered_dict_and_children_are_not_traced():
    model = nn.Sequential(OrderedDict(enc=nn.Linear(4, 4), gate=Gate(), dec=nn.Linear(4, 2))).eval()
    points = _assert_exact_at_every_point(model, torch.randn(3, 4))
    assert [p.name for p in points] == ["enc", "gate"]
    split = split_model(model, "enc")
    assert list(split.head._modules) == ["enc"] and list(split.tail._modules) == ["gate", "dec"]
    assert split.head.enc is model.enc


def test_sequential_that_reuses_a_module_counts_every_step():
    linear, relu = nn.Linear(5, 5), nn.ReLU()
    model = nn.Sequential(linear, relu, linear, nn.Tanh(), linear, relu).eval()
    points = _assert_exact_at_every_point(model, torch.randn(3, 5))
    assert [p.name for p in points] == ["0", "1", "2", "3", "4"]
    split = split_model(model, "1")
    assert list(split.tail._modules) == ["2", "3", "4", "5"] and split.tail[0] is linear


class ViewThenInPlace(nn.Module):
    """A view of ``y`` and ``y`` itself are live when ``y`` is changed in place."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.act = nn.Linear(4, 8), nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        view = y[:, :4]
        return self.act(y).sum(1) + view.sum(1)


def test_cuts_whose_crossing_tensors_share_written_memory_are_left_out():
    """Sent, a view and its base arrive as two copies, and the tail's in-place write no longer
    reaches the view: such a cut is not offered, and refused with an example input."""
    model, x = ViewThenInPlace().eval(), torch.randn(3, 4)
    names = [p.name for p in list_split_points(model, x)]
    assert "getitem" not in names and "fc" in names
    split = split_model(model, "fc", x)
    copies = split.head(x).clone()
    assert torch.equal(split.tail(copies), model(x))
    with pytest.raises(ValueError, match="share memory that the tail writes in place"):
        split_model(model, "getitem", x)
    split_model(model, "getitem")  # without an example, nothing tells


def test_shared_memory_is_told_on_the_meta_device_too():
    """Every meta tensor's data sits at address 0, which the check read as no storage at all:
    the cut after getitem was offered and accepted on meta."""
    model, x = ViewThenInPlace().to("meta").eval(), torch.randn(3, 4, device="meta")
    assert "getitem" not in [p.name for p in list_split_points(model, x)]
    with pytest.raises(ValueError, match="share memory that the tail writes in place"):
        split_model(model, "getitem", x)


def test_residual_network_exact_and_skip_crosses_inside_a_block():
    model = _seeded(ResNet())
    points = _assert_exact_at_every_point(model, torch.randn(2, 3, 8, 8))
    by_name = {p.name: p for p in points}
    assert [p.name for p in points][:4] == [
        "stem",
        "layer1.0.conv1",
        "layer1.0.bn1",
        "layer1_0_relu",  # a module called twice is named by its fx node
    ]
    inside = by_name["layer1.0.conv1"]
    assert [t.name for t in inside.tensors] == ["stem", "layer1.0.conv1"]
    assert inside.nbytes == 2 * 2 * 8 * 8 * 8 * 4
    assert len(by_name["layer1.0.bn2"].tensors) == 2
    assert len(by_name["layer1_0_relu_1"].tensors) == 1  # after the block: only its output


def test_two_inputs_exact_and_the_unused_input_crosses():
    torch.manual_seed(1)
    model = TwoInputs().eval()
    example = (torch.randn(5, 4), torch.randn(5, 3))
    points = _assert_exact_at_every_point(model, example)
    first = points[0]
    assert first.name == "enc_a"
    assert [(t.name, t.shape) for t in first.tensors] == [("b", (5, 3)), ("enc_a", (5, 6))]


def test_two_tensors_cross_and_tuple_outputs_are_exact():
    torch.manual_seed(2)
    model = TwoHeads().eval()
    points = _assert_exact_at_every_point(model, torch.randn(6, 4))
    cls = next(p for p in points if p.name == "cls")
    assert [t.name for t in cls.tensors] == ["relu", "cls"]
    split = split_model(model, cls)
    h, logits = split.head(torch.randn(6, 4))
    assert h.shape == (6, 8) and logits.shape == (6, 3)
    assert split.point is cls


def test_split_points_by_hand_on_a_tiny_model():
    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(4, 3)
            self.fc2 = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(torch.relu(self.fc1(x))).view(x.size(0), -1)

    points = list_split_points(Tiny().double(), torch.ones(5, 4, dtype=torch.float64))
    # x crosses every cut (x.size(0) runs last); the cut after `size` is left out: an int crosses
    assert points == [
        SplitPoint(
            "fc1",
            0,
            (
                CrossingTensor("x", (5, 4), torch.float64),
                CrossingTensor("fc1", (5, 3), torch.float64),
            ),
        ),
        SplitPoint(
            "relu",
            1,
            (
                CrossingTensor("x", (5, 4), torch.float64),
                CrossingTensor("relu", (5, 3), torch.float64),
            ),
        ),
        SplitPoint(
            "fc2",
            2,
            (
                CrossingTensor("x", (5, 4), torch.float64),
                CrossingTensor("fc2", (5, 2), torch.float64),
            ),
        ),
    ]
    assert [p.nbytes for p in points] == [(20 + 15) * 8, (20 + 15) * 8, (20 + 10) * 8]
    half = CrossingTensor("h", (2, 3, 5), torch.float16)
    assert half.nbytes == 30 * torch.empty((), dtype=torch.float16).element_size()
    # the name of the non-tensor cut is still accepted by split_model
    x = torch.randn(5, 4, dtype=torch.float64)
    model = Tiny().double()
    split = split_model(model, "size")
    assert torch.equal(split.tail(split.head(x)), model(x))


def test_list_split_points_keeps_training_flags_and_batchnorm_statistics():
    model = _cnn().train()
    before = model[1].running_mean.clone()
    list_split_points(model, torch.randn(2, 3, 8, 8))
    resnet = ResNet().train()
    list_split_points(resnet, torch.randn(2, 3, 8, 8))
    assert all(m.training for m in [*model.modules(), *resnet.modules()])
    assert torch.equal(model[1].running_mean, before)


def test_gradients_reach_the_original_parameters_through_the_cut():
    torch.manual_seed(3)
    model = ResNet().train()
    x, target = torch.randn(4, 3, 8, 8), torch.randint(0, 5, (4,))
    nn.functional.cross_entropy(model(x), target).backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    split = split_model(model, "layer1.0.bn2")
    assert split.head.stem.weight is model.stem.weight
    loss = nn.functional.cross_entropy(split.tail(split.head(x)), target)
    loss.backward()
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), expected, strict=True))
    assert model.stem.weight.grad.abs().sum() > 0


def test_untraceable_model_raises_a_clear_error_and_leaf_modules_fix_it():
    torch.manual_seed(4)
    model = Gated().eval()
    x = torch.randn(3, 4)
    with pytest.raises(UntraceableModelError) as info:
        list_split_points(model, x)
    message = str(info.value)
    assert "Gated" in message and "control flow" in message
    assert "leaf_modules" in message and "nn.Sequential" in message
    assert isinstance(info.value, ValueError)
    with pytest.raises(UntraceableModelError):
        split_model(model, "fc1")
    points = _assert_exact_at_every_point(model, x, leaf_modules=[Gate])
    assert [p.name for p in points] == ["fc1", "gate"]
    split = split_model(model, "fc1", leaf_modules=[Gate])
    for sign in (1.0, -1.0):  # both branches of the gate run in the tail
        y = sign * torch.ones(3, 4)
        assert torch.equal(split(y), model(y))


def test_bad_at_and_bad_arguments_raise():
    model = _seeded(ResNet())
    with pytest.raises(ValueError, match=r"got 'layer9'.*'stem', 'layer1.0.conv1'"):
        split_model(model, "layer9")
    with pytest.raises(ValueError, match="last step"):
        split_model(model, "fc")
    with pytest.raises(ValueError, match=r"got '9'.*'0', '1'"):
        split_model(_cnn(), "9")
    with pytest.raises(ValueError, match="last step"):
        split_model(_cnn(), "5")
    with pytest.raises(TypeError, match="at must be"):
        split_model(_cnn(), 2)
    with pytest.raises(TypeError, match="leaf_modules"):
        list_split_points(model, torch.randn(1, 3, 8, 8), leaf_modules=[Gate()])
    with pytest.raises(TypeError, match="example_input"):
        list_split_points(model, "x")
    with pytest.raises(ValueError, match="one input"):
        list_split_points(_cnn(), (torch.randn(1, 3, 8, 8), torch.randn(1)))


def test_split_model_reports_its_point_when_given_an_example():
    model, x = _cnn(), torch.randn(2, 3, 8, 8)
    assert split_model(model, "3").point is None
    point = split_model(model, "3", x).point
    assert point == list_split_points(model, x)[3]
    assert split_model(_seeded(ResNet()), "stem", x).point.tensors[0].shape == (2, 8, 8, 8)


def test_link_applies_to_each_floating_point_tensor():
    class AddOne(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 1

    class Pair(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x.long()

    class Sum(nn.Module):
        def forward(self, pair: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            return pair[0] + pair[1]

    split = SplitModel(Pair(), AddOne(), Sum())
    x = torch.tensor([1.5, 2.0])
    assert torch.equal(split(x), torch.tensor([3.5, 5.0]))  # (x + 1) + long(x)
    model = _cnn()
    plain = split_model(model, "2")
    linked = SplitModel(plain.head, AddOne(), plain.tail)
    y = torch.randn(2, 3, 8, 8)
    assert torch.equal(linked(y), plain.tail(plain.head(y) + 1))
    with pytest.raises(TypeError, match="link"):
        SplitModel(plain.head, lambda t: t, plain.tail)


@pytest.mark.parametrize(
    ("build", "at"), [(_cnn, "3"), (lambda: _seeded(ResNet()), "layer1.1.bn1")]
)
def test_head_and_tail_export_separately(build, at):
    model, x = build(), torch.randn(2, 3, 8, 8)
    split = split_model(model, at)
    head = torch.export.export(split.head, (x,)).module()
    features = head(x)
    tail = torch.export.export(split.tail, (features,)).module()
    assert torch.equal(tail(features), model(x))


def test_torchvision_resnet18_at_a_few_cuts():
    models = pytest.importorskip("torchvision.models")
    model = models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 64, 64)
    points = {p.name: p for p in list_split_points(model, x)}
    assert len(points["layer1.0.conv1"].tensors) == 2
    with torch.no_grad():
        for at in ("layer1.0.conv1", "layer2", "avgpool"):
            split = split_model(model, at)
            assert torch.equal(split.tail(split.head(x)), model(x))
