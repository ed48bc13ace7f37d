"""Offline data: bundled photos and a user's own Dataset."""

from __future__ import annotations

import pytest
import torch

from aiflow_comm.data import sample_images, stack_dataset


def test_sample_images_are_normalized_three_channel_tensors():
    images = sample_images(["astronaut", "camera"])
    assert [tuple(im.shape) for im in images] == [(3, 512, 512), (3, 512, 512)]
    for im in images:
        assert im.dtype == torch.float32 and im.min() >= 0 and im.max() <= 1


def test_unknown_sample_raises():
    with pytest.raises(ValueError, match="unknown"):
        sample_images(["not_a_photo"])


def test_stack_dataset_from_a_torch_dataset():
    dataset = torch.utils.data.TensorDataset(torch.arange(12.0).view(6, 2), torch.arange(6))
    assert torch.equal(stack_dataset(dataset, limit=4), torch.arange(8.0).view(4, 2))
    with pytest.raises(ValueError, match="empty"):
        stack_dataset([])
