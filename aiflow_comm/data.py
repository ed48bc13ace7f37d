"""Offline data that ships inside packages (no downloads), and adapters for a user's own data."""

from __future__ import annotations

import inspect
import itertools
import numbers
from collections.abc import Iterable

import numpy as np
import torch

__all__ = ["SAMPLE_IMAGES", "sample_images", "stack_dataset"]

SAMPLE_IMAGES = ("astronaut", "chelsea", "coffee", "rocket")


def sample_images(names: Iterable[str] | str = SAMPLE_IMAGES) -> list[torch.Tensor]:
    """Photos bundled with scikit-image as float32 ``(3, H, W)`` tensors in ``[0, 1]``.

    Needs the ``examples`` extra (``scikit-image``). Grey images are repeated to three channels;
    integer pixels are scaled by their type's range, boolean ones to 0 and 1.

    Example:
        >>> [tuple(im.shape) for im in sample_images(["chelsea"])]
        [(3, 300, 451)]
    """
    try:
        from skimage import data
    except ImportError as error:
        raise ImportError(
            "sample_images needs scikit-image: pip install 'aiflow-comm[examples]'"
        ) from error
    images = []
    for name in [names] if isinstance(names, str) else names:
        loader = None if name in _NOT_SAMPLES or name.startswith("_") else getattr(data, name, None)
        if loader is None or not callable(loader) or _needs_arguments(loader):
            raise ValueError(f"unknown scikit-image sample {name!r}; try one of {SAMPLE_IMAGES}")
        array = loader()
        if not isinstance(array, np.ndarray) or not (
            array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))
        ):
            raise ValueError(
                f"scikit-image sample {name!r} is not a grey or RGB image; try one of "
                f"{SAMPLE_IMAGES}"
            )
        pixels = _unit_range(torch.from_numpy(np.ascontiguousarray(array)))
        if pixels.dim() == 2:
            pixels = pixels[..., None].expand(-1, -1, 3)
        images.append(pixels[..., :3].permute(2, 0, 1).contiguous())
    return images


# Callables of skimage.data that are not samples and take no argument: download_all fetches
# every sample over the network.
_NOT_SAMPLES = frozenset({"download_all"})


def _needs_arguments(loader: object) -> bool:
    """Whether ``loader`` has a parameter without a default (``file_hash(path)``: no sample)."""
    try:
        parameters = inspect.signature(loader).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(
        p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                       inspect.Parameter.KEYWORD_ONLY)
        for p in parameters
    )  # fmt: skip


def _unit_range(pixels: torch.Tensor) -> torch.Tensor:
    """Integer pixels over their type's full range, booleans as 0/1, floats as they are."""
    if pixels.dtype == torch.bool or pixels.is_floating_point():
        return pixels.float()
    return pixels.float() / float(torch.iinfo(pixels.dtype).max)


def stack_dataset(dataset: Iterable, limit: int | None = None) -> torch.Tensor:
    """Stack the inputs of a map-style or iterable ``Dataset`` (items ``x`` or ``(x, ...)``).

    ``limit`` (an int >= 1, or ``None`` for all) caps the items read. The inputs must be
    tensors, arrays or numbers of one shape; otherwise the error names the first bad item.

    Example:
        >>> stack_dataset([(torch.ones(2), 0), (torch.zeros(2), 1)]).shape
        torch.Size([2, 2])
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, numbers.Integral)):
        raise TypeError(f"limit must be an int >= 1 or None; got {type(limit).__name__}")
    if limit is not None and limit < 1:  # nothing to stack: no shape to give the result
        raise ValueError(f"limit must be an int >= 1 or None; got {limit}")
    limit = None if limit is None else int(limit)  # a numpy integer, as range() and islice() take
    # An IterableDataset may define __len__, and inherits a __getitem__ that raises.
    iterable = isinstance(dataset, torch.utils.data.IterableDataset)
    if not iterable and hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"):
        # Map-style: by index up to len(). Iterating one calls __getitem__ until IndexError,
        # past len() (or forever, for a dataset that makes item i from seed i).
        count = len(dataset) if limit is None else min(limit, len(dataset))
        source: Iterable = (dataset[i] for i in range(count))
    else:
        source = itertools.islice(dataset, limit)
    items = []
    for index, item in enumerate(source):
        x = item[0] if isinstance(item, tuple | list) else item
        if isinstance(x, np.ndarray | np.generic):  # torch takes no negative strides (a flip)
            x = np.asarray(x, dtype=x.dtype.newbyteorder("="), order="C")  # nor big-endian data
        try:
            items.append(torch.as_tensor(x))
        except (TypeError, RuntimeError, ValueError) as error:
            raise TypeError(
                f"item {index}: the input (an item, or its first element) must be a tensor, an "
                f"array or a number; got {type(x).__name__}"
            ) from error
        if items[-1].shape != items[0].shape:
            raise ValueError(
                f"item {index}: inputs must share one shape to be stacked; got "
                f"{tuple(items[-1].shape)} after {tuple(items[0].shape)}"
            )
    if not items:
        raise ValueError("dataset is empty")
    return torch.stack(items)
