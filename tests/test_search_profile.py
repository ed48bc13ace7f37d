"""Profiling cuts: FLOPs of head and tail, crossing tensors, payload bits of every codec."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from torch import nn

from aiflow_comm.codec import quantize
from aiflow_comm.search import INPUT_CUT, Codec, payload_bits, profile_model
from aiflow_comm.search.models import SmallResNet, deep_mlp, small_cnn
from aiflow_comm.search.payload import projection_flops
from aiflow_comm.split import CrossingTensor, SplitLink, list_split_points


def test_sequential_flops_by_hand():
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8), nn.Linear(8, 4))
    profile = profile_model(model, torch.ones(2, 16))
    total = 2 * 2 * (16 * 32 + 32 * 8 + 8 * 4)  # 2 FLOPs per multiply-add, batch 2
    assert profile.total_flops == total
    assert profile.names == [INPUT_CUT, "0", "1", "2"]
    assert [c.head_flops for c in profile.cuts] == [0, 2048, 2048, 3072]
    assert all(c.head_flops + c.tail_flops == total for c in profile.cuts)
    assert profile.cut(INPUT_CUT).tensors[0].shape == (2, 16)
    assert [c.raw_bytes for c in profile.cuts] == [128, 256, 256, 64]
    assert not profile.measured and profile.cuts[1].head_s is None
    with pytest.raises(KeyError, match="valid names"):
        profile.cut("nope")


def test_a_module_placed_twice_in_a_sequential_is_two_steps():
    linear = nn.Linear(8, 8)
    profile = profile_model(nn.Sequential(linear, nn.ReLU(), linear), torch.ones(1, 8))
    assert profile.names == [INPUT_CUT, "0", "1"]
    assert profile.total_flops == 2 * 2 * 8 * 8


def test_residual_net_profile_matches_split_points():
    model = SmallResNet()
    x = torch.randn(1, 3, 32, 32)
    profile = profile_model(model, x, measure=True, repeats=2, num_threads=1,
                            clock=time.process_time)  # fmt: skip
    points = list_split_points(model, x)
    assert profile.names == [INPUT_CUT, *[p.name for p in points]]
    assert [c.tensors for c in profile.cuts[1:]] == [p.tensors for p in points]
    head = np.array([c.head_flops for c in profile.cuts])
    assert np.all(np.diff(head) >= 0) and head[-1] < profile.total_flops
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(x)
    assert profile.total_flops == counter.get_total_flops()
    # in a residual block both the branch and the skip cross
    assert len(profile.cut("layer1.conv1").tensors) == 2
    seconds = np.array([c.head_s for c in profile.cuts])
    assert profile.measured and np.all(np.diff(seconds) >= 0) and seconds[-1] <= profile.total_s
    assert torch.get_num_threads() >= 1


def test_empty_and_single_step_models_raise():
    with pytest.raises(ValueError, match="no cut point"):
        profile_model(nn.Sequential(nn.Linear(4, 2)), torch.ones(1, 4))
    with pytest.raises(ValueError, match="no cut point"):
        profile_model(nn.Sequential(), torch.ones(1, 4))
    with pytest.raises(ValueError, match="repeats must be a positive int"):
        profile_model(small_cnn(), torch.ones(1, 3, 32, 32), measure=True, repeats=0)


SHAPES = [(1, 64), (1, 7), (2, 3, 17), (1, 32, 8, 8), (4, 1025), (1, 1)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bits, group_size, symmetric", [(8, 128, True), (4, 32, True),
                         (2, 7, True), (4, 64, False)])  # fmt: skip
def test_payload_bits_equal_the_wire_format(shape, bits, group_size, symmetric):
    tensor = CrossingTensor("t", shape, torch.float32)
    codec = Codec(bits, group_size, symmetric=symmetric)
    q = quantize(torch.zeros(shape), bits, group_size, symmetric=symmetric)
    assert payload_bits([tensor], codec) == 8 * len(q.to_bytes())


def test_payload_bits_equal_split_link_and_raw_floats():
    features = torch.randn(1, 32, 8, 8)
    tensor = CrossingTensor("f", tuple(features.shape), torch.float32)
    for bits in (8, 4, 2):
        link = SplitLink(bits, 64)
        assert payload_bits([tensor], Codec(bits, 64)) == link.payload_bits(features)
    assert payload_bits([tensor], Codec(32)) == SplitLink(None).payload_bits(features) == 65536
    two = [tensor, CrossingTensor("g", (1, 10), torch.float16)]
    assert payload_bits(two, Codec(32)) == 32 * (2048 + 10)


def test_tensors_that_are_not_floating_point_cross_as_they_are():
    tokens = CrossingTensor("ids", (2, 16), torch.int64)
    features = CrossingTensor("h", (2, 64), torch.float32)
    for codec in (Codec(32), Codec(8, 32), Codec(4, 32, ratio=0.5)):
        assert payload_bits([tokens], codec) == 64 * 32
        want = payload_bits([features], codec) + 64 * 32
        assert payload_bits([tokens, features], codec) == want
    assert projection_flops([tokens], Codec(8, 32, ratio=0.5)) == 0
    link = SplitLink(bits=8, group_size=32)
    assert 8 * len(link.encode(torch.randn(2, 64))) == payload_bits([features], Codec(8, 32))


def test_projection_codec_sizes():
    tensor = CrossingTensor("f", (1, 32, 8, 8), torch.float32)
    codec = Codec(8, 64, ratio=0.25)
    assert codec.sent_shape(tensor.shape) == (1, 8, 8, 8)
    assert payload_bits([tensor], codec) == 8 * len(quantize(torch.zeros(1, 8, 8, 8), 8, 64)
                                                    .to_bytes())  # fmt: skip
    assert projection_flops([tensor], codec) == 2 * (8 * 8 * 8) * 32


@pytest.mark.parametrize(("shape", "ratio", "bits", "group_size"),
                         [((1, 64, 4, 4), 0.5, 4, 16), ((1, 64, 2, 2), 0.25, 2, 16),
                          ((1, 30, 5, 7), 0.5, 8, 4), ((1, 24, 9), 0.5, 4, 8)])  # fmt: skip
def test_projection_payload_equals_a_split_link_with_a_pointwise_encoder(
    shape, ratio, bits, group_size
):
    """A 1x1 convolution encoder's SplitLink sends channels-last, groups along the channels;
    the search grouped along the last spatial dimension (2.5x the bits on (1, 64, 4, 4))."""
    channels, kept = shape[1], math.ceil(ratio * shape[1])
    conv = {4: torch.nn.Conv2d, 3: torch.nn.Conv1d}[len(shape)]
    link = SplitLink(bits, group_size, encoder=conv(channels, kept, 1),
                     decoder=conv(kept, channels, 1)).eval()  # fmt: skip
    tensor = CrossingTensor("f", shape, torch.float32)
    want = link.payload_bits(torch.randn(shape))
    assert payload_bits([tensor], Codec(bits, group_size, ratio=ratio)) == want


def test_builtin_models_have_many_cuts():
    profile = profile_model(deep_mlp(depth=30), torch.zeros(1, 3, 32, 32))
    assert len(profile.cuts) == 61  # the input and 60 cuts of 61 steps


class _Attention(nn.Module):
    """Token ids -> embedding -> self-attention -> linear (a traced model, not a Sequential)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.att = nn.MultiheadAttention(16, 2, batch_first=True)
        self.ff = nn.Linear(16, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids)
        return self.ff(self.att(h, h, h, need_weights=False)[0]).mean(1)


def _attention_models() -> list[tuple[nn.Module, int, int]]:
    """``(model, linear-layer FLOPs, attention-matmul FLOPs)`` by hand for batch 2, 5 tokens."""
    b, t, d, heads, ff = 2, 5, 16, 2, 32
    proj = 2 * b * t * d * 3 * d + 2 * b * t * d * d  # in_proj (q, k, v) and out_proj
    scores = 2 * 2 * b * heads * t * t * (d // heads)  # q k^T and weights @ v
    encoder = nn.Sequential(
        nn.Embedding(50, d),
        nn.TransformerEncoderLayer(d, heads, ff, batch_first=True, dropout=0.0),
        nn.Flatten(),
        nn.Linear(t * d, 4),
    )
    encoder_linear = proj + 2 * (2 * b * t * d * ff) + 2 * b * t * d * 4
    return [(encoder, encoder_linear, scores), (_Attention(), proj + 2 * b * t * d * 4, scores)]


@pytest.mark.parametrize("case", range(2), ids=["encoder-layer", "mha-graph"])
def test_attention_flops_counted(case):
    # eval + no_grad takes the fused fast path, whose ops FlopCounterMode counts as 0;
    # the count must hold every projection (the attention matmuls themselves may be counted)
    model, linear, scores = _attention_models()[case]
    ids = torch.randint(0, 50, (2, 5), generator=torch.Generator().manual_seed(0))
    total = profile_model(model, ids).total_flops
    assert linear <= total <= linear + scores
    assert torch.backends.mha.get_fastpath_enabled()  # the setting is restored


def test_attention_slow_path_restored_on_error():
    from aiflow_comm.search.profiling import attention_slow_path

    torch.backends.mha.set_fastpath_enabled(True)
    with pytest.raises(RuntimeError), attention_slow_path():
        assert not torch.backends.mha.get_fastpath_enabled()
        raise RuntimeError("model failed")
    assert torch.backends.mha.get_fastpath_enabled()


class _TokenAttention(nn.Module):
    """Token ids -> embedding -> a projection -> ``F.scaled_dot_product_attention`` -> linear."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(self.emb(ids)).chunk(3, dim=-1)
        return self.out(nn.functional.scaled_dot_product_attention(q, k, v)).mean(1)


def test_scaled_dot_product_attention_flops_counted():
    """The CPU's fused attention kernel (under ``F.scaled_dot_product_attention``, and under
    ``nn.TransformerEncoderLayer``'s attention) counted 0: its ``q k^T`` and weights-times-``v``
    matmuls, which grow with the square of the sequence, were missing from the head."""
    b, t, d = 2, 24, 8
    ids = torch.randint(0, 50, (b, t), generator=torch.Generator().manual_seed(0))
    scores = 2 * 2 * b * t * t * d  # q k^T and weights @ v
    qkv, out = 2 * b * t * d * 3 * d, 2 * b * t * d * 4
    profile = profile_model(_TokenAttention(d), ids)
    assert profile.total_flops == qkv + scores + out
    assert profile.cut("scaled_dot_product_attention").head_flops == qkv + scores
    encoder, linear, scores = _attention_models()[0]  # batch 2, 5 tokens
    assert profile_model(encoder, ids[:, :5]).total_flops == linear + scores


class _Recurrent(nn.Module):
    """A recurrent layer over a (batch, steps, features) input, then a linear head."""

    def __init__(self, rnn: nn.Module, hidden: int) -> None:
        super().__init__()
        self.rnn, self.head = rnn, nn.Linear(hidden, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])


@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True)])
def test_lstm_flops_counted(layers, bidirectional):
    """nn.LSTM runs one fused oneDNN kernel per layer and direction on the CPU, which torch's
    counter has no formula for: an LSTM counted 0 FLOPs, and the search put it on the device
    for free."""
    b, t, inp, hidden = 2, 7, 12, 10
    rnn = nn.LSTM(inp, hidden, num_layers=layers, bidirectional=bidirectional, batch_first=True)
    directions = 2 if bidirectional else 1
    gates = 4 * hidden
    flops = sum(
        directions * 2 * b * t * gates * ((inp if layer == 0 else directions * hidden) + hidden)
        for layer in range(layers)
    )
    head = 2 * b * directions * hidden * 3
    model = _Recurrent(rnn, directions * hidden)
    assert profile_model(model, torch.randn(b, t, inp)).total_flops == flops + head
    gru = _Recurrent(nn.GRU(inp, hidden, batch_first=True), hidden)  # ordinary matmuls
    assert (
        profile_model(gru, torch.randn(b, t, inp)).total_flops
        == 2 * b * t * 3 * hidden * (inp + hidden) + 2 * b * hidden * 3
    )
