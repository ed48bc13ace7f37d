"""Offline data: bundled photos and a user's own Dataset."""

from __future__ import annotations

import numpy as np
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
    # Callables of skimage.data that are not samples: file_hash(path) raised TypeError, and
    # download_all would fetch every sample over the network.
    for name in ("file_hash", "download_all", "__getattr__"):
        with pytest.raises(ValueError, match=f"unknown scikit-image sample '{name}'"):
            sample_images([name])


def test_stack_dataset_from_a_torch_dataset():
    dataset = torch.utils.data.TensorDataset(torch.arange(12.0).view(6, 2), torch.arange(6))
    assert torch.equal(stack_dataset(dataset, limit=4), torch.arange(8.0).view(4, 2))
    with pytest.raises(ValueError, match="empty"):
        stack_dataset([])


def test_sample_images_scale_by_pixel_type_and_take_one_name():
    (horse,) = sample_images("horse")  # boolean pixels: 0 and 1, not 0 and 1/255
    assert horse.shape[0] == 3 and float(horse.max()) == 1.0
    with pytest.raises(ValueError, match="not a grey or RGB image"):
        sample_images(["lfw_subset"])  # a stack of 200 faces


class _Indexed(torch.utils.data.Dataset):
    """Item ``i`` made from seed ``i``: indexable past ``len()``, never raising IndexError."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.randn(3, generator=torch.Generator().manual_seed(int(i))), 0


def test_stack_dataset_stops_at_the_datasets_length():
    assert stack_dataset(_Indexed()).shape == (4, 3)
    assert stack_dataset(_Indexed(), limit=2).shape == (2, 3)
    assert stack_dataset(iter([torch.ones(2)] * 5), limit=3).shape == (3, 2)


def test_stack_dataset_names_a_bad_limit_or_item():
    dataset = torch.utils.data.TensorDataset(torch.ones(3, 2))
    with pytest.raises(ValueError, match=r"limit must be an int >= 1 or None; got -1"):
        stack_dataset(iter(dataset), limit=-1)  # islice's own message did not name it
    with pytest.raises(ValueError, match=r"limit must be an int >= 1 or None; got -1"):
        stack_dataset(dataset, limit=-1)  # was "dataset is empty"
    with pytest.raises(TypeError, match=r"limit must be an int >= 1 or None; got float"):
        stack_dataset(dataset, limit=2.0)
    with pytest.raises(ValueError, match=r"limit must be an int >= 1 or None; got 0"):
        stack_dataset(dataset, limit=0)  # was "dataset is empty", of a dataset that is not
    with pytest.raises(TypeError, match=r"item 0: .* got dict"):
        stack_dataset([{"image": torch.ones(2), "label": 0}])
    with pytest.raises(ValueError, match=r"item 1: .* one shape.*\(3,\) after \(2,\)"):
        stack_dataset([torch.ones(2), torch.ones(3)])


class _Stream(torch.utils.data.IterableDataset):
    """An iterable dataset that knows its length (PyTorch allows it)."""

    def __len__(self) -> int:
        return 3

    def __iter__(self):
        yield from ((torch.full((2,), float(i)), i) for i in range(3))


def test_stack_dataset_iterates_an_iterable_dataset_with_a_length():
    """It was indexed, through Dataset's own __getitem__, which raises NotImplementedError."""
    assert torch.equal(stack_dataset(_Stream())[:, 0], torch.tensor([0.0, 1.0, 2.0]))
    assert stack_dataset(_Stream(), limit=2).shape == (2, 2)


def test_stack_dataset_takes_a_numpy_integer_limit():
    items = [(torch.full((2,), float(i)), i) for i in range(5)]
    assert stack_dataset(items, limit=np.int64(3)).shape == (3, 2)


def test_stack_dataset_takes_flipped_and_big_endian_arrays():
    """torch.as_tensor refuses negative strides and non-native byte order: a flipped image
    (img[..., ::-1], BGR to RGB) was refused as 'not an array'."""
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    stacked = stack_dataset([(image[..., ::-1], 0), (np.flipud(image), 1)])
    assert torch.equal(stacked[0], torch.from_numpy(image[..., ::-1].copy()))
    assert torch.equal(stacked[1], torch.from_numpy(np.flipud(image).copy()))
    big = stack_dataset([np.arange(4, dtype=">f4")] * 2)
    assert big.dtype == torch.float32 and big[1].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert stack_dataset([np.float32(3.5), np.array(2.0, dtype=np.float32)]).tolist() == [3.5, 2.0]
