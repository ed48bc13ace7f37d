"""GroupLayout: sizes of packed rows, checked against a direct count."""

from __future__ import annotations

import pytest

from aiflow_comm.kernels import GroupLayout
from aiflow_comm.kernels.layout import MAX_GROUP_SIZE, check_quant_args, row_group_size


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("group_size", [1, 3, 4, 7, 128])
@pytest.mark.parametrize("row_len", [1, 7, 17, 1025])
def test_row_bytes_counts_each_group_in_whole_bytes(bits, group_size, row_len):
    layout = GroupLayout.of((2, row_len), bits, group_size)
    sizes = [min(group_size, row_len - start) for start in range(0, row_len, group_size)]
    assert layout.num_groups == len(sizes)
    assert layout.last_group_size == sizes[-1]
    assert layout.row_bytes == sum(-(-n * bits // 8) for n in sizes)
    if group_size * bits % 8 == 0:
        assert layout.row_bytes == -(-row_len * bits // 8)


def test_levels_and_rows():
    layout = GroupLayout.of((2, 3, 5), 4, 2)
    assert (layout.rows, layout.row_len, layout.qmax, layout.levels) == (6, 5, 7, 15)


def test_huge_shapes_use_exact_integer_arithmetic():
    layout = GroupLayout.of((2**20, 2**13 + 1), 4, 128)
    assert layout.rows * layout.row_bytes == 2**20 * (64 * 64 + 1)


@pytest.mark.parametrize("group_size", [1, 7, 96, 97, MAX_GROUP_SIZE])
def test_a_group_wider_than_the_row_lays_out_as_the_row(group_size):
    narrow = row_group_size(group_size, 96)
    assert narrow == min(group_size, 96)
    for bits in (2, 4, 8):
        wide, row = GroupLayout.of((3, 96), bits, group_size), GroupLayout.of((3, 96), bits, narrow)
        assert (wide.num_groups, wide.row_bytes) == (row.num_groups, row.row_bytes)
    assert row_group_size(group_size, 0) == 1


def test_group_size_limits():
    check_quant_args(8, MAX_GROUP_SIZE)
    for bad in (0, MAX_GROUP_SIZE + 1, 2**64):
        with pytest.raises(ValueError, match=r"group_size must be in \[1, 2147483647\]"):
            check_quant_args(8, bad)
    with pytest.raises(TypeError, match="group_size must be a positive int"):
        check_quant_args(8, 4.0)


def _symmetric_users():
    import torch

    from aiflow_comm.codec import fake_quantize, quantize, sparsify
    from aiflow_comm.kernels import (
        dequantize_packed,
        project_quantize,
        quantize_packed,
        topk_quantize_packed,
    )
    from aiflow_comm.search import Codec
    from aiflow_comm.split import SplitLink

    x = torch.randn(2, 8)
    packed = quantize_packed(x, 8, 4)
    return {
        "quantize": lambda s: quantize(x, 8, 4, symmetric=s),
        "fake_quantize": lambda s: fake_quantize(x, 8, 4, symmetric=s),
        "sparsify": lambda s: sparsify(x, 2, 8, 4, symmetric=s),
        "quantize_packed": lambda s: quantize_packed(x, 8, 4, s),
        "dequantize_packed": lambda s: dequantize_packed(*packed, 8, 4, 8, s),
        "topk_quantize_packed": lambda s: topk_quantize_packed(x, 2, 8, 4, s),
        "project_quantize": lambda s: project_quantize(x, torch.eye(8), symmetric=s),
        "SplitLink": lambda s: SplitLink(bits=8, group_size=4, symmetric=s),
        "Codec": lambda s: Codec(8, 4, symmetric=s),
    }


@pytest.mark.parametrize("user", sorted(_symmetric_users()))
def test_symmetric_must_be_a_bool(user):
    """symmetric='asymmetric' read as true: the symmetric scheme, without a word."""
    import numpy as np

    run = _symmetric_users()[user]
    for bad in ("asymmetric", None, 1):
        with pytest.raises(TypeError, match=r"symmetric must be a bool .*got"):
            run(bad)
    run(np.bool_(True))
