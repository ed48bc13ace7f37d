"""Complex arithmetic through real views: on the CPU, torch's complex kernels are several times
slower than real ones, and a complex tensor times a real one is promoted to complex."""

from __future__ import annotations

import torch

__all__ = ["energy", "scale"]


def energy(z: torch.Tensor) -> torch.Tensor:
    """``|z|**2`` as a real tensor of ``z``'s shape.

    >>> energy(torch.tensor([3 + 4j]))
    tensor([25.])
    """
    return torch.view_as_real(z).square().sum(dim=-1)


def scale(z: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``z * factor`` for complex ``z`` and a real ``factor`` broadcastable to it.

    >>> scale(torch.tensor([1 + 2j, 3j]), torch.tensor([2.0, 0.5]))
    tensor([2.+4.0000j, 0.+1.5000j])
    """
    return torch.view_as_complex((torch.view_as_real(z) * factor.unsqueeze(-1)).contiguous())
