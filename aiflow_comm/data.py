"""Offline data that ships inside packages (no downloads), and adapters for a user's own data."""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["SAMPLE_IMAGES", "sample_images", "stack_dataset"]

SAMPLE_IMAGES = ("astronaut", "chelsea", "coffee", "rocket")


def sample_images(names: Iterable[str] = SAMPLE_IMAGES) -> list[torch.Tensor]:
    """Photos bundled with scikit-image as float32 ``(3, H, W)`` tensors in ``[0, 1]``.

    Needs the ``examples`` extra (``scikit-image``). Grey images are repeated to three channels.

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
    for name in names:
        loader = getattr(data, name, None)
        if loader is None or not callable(loader):
            raise ValueError(f"unknown scikit-image sample {name!r}; try one of {SAMPLE_IMAGES}")
        pixels = torch.from_numpy(loader()).float() / 255.0
        if pixels.dim() == 2:
            pixels = pixels[..., None].expand(-1, -1, 3)
        images.append(pixels[..., :3].permute(2, 0, 1).contiguous())
    return images


def stack_dataset(dataset: Iterable, limit: int | None = None) -> torch.Tensor:
    """Stack the inputs of a map-style or iterable ``Dataset`` (items ``x`` or ``(x, ...)``).

    Example:
        >>> stack_dataset([(torch.ones(2), 0), (torch.zeros(2), 1)]).shape
        torch.Size([2, 2])
    """
    items = []
    for index, item in enumerate(dataset):
        if limit is not None and index >= limit:
            break
        x = item[0] if isinstance(item, tuple | list) else item
        items.append(torch.as_tensor(x))
    if not items:
        raise ValueError("dataset is empty")
    return torch.stack(items)
