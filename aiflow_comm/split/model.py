"""``SplitModel``: a model cut into a head and a tail, with an optional link between them."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch
from torch import nn

from aiflow_comm.split.points import SplitPoint

__all__ = ["SplitModel"]


class SplitModel(nn.Module):
    """``forward(*inputs) = tail(link(head(*inputs)))``: the two sides of a cut, and the link.

    The head takes the model's inputs and returns what crosses the cut: one tensor, or a tuple
    of tensors when several cross (a residual block's branch and skip). The tail takes that
    value as *one* argument, a tuple included: ``tail(head(x))``. Without a link, ``forward``
    equals the original model's output exactly.

    Args:
        head: the device side.
        link: a module applied to every floating-point tensor crossing (each element of a
            tuple, list, dict or dataclass separately; other values such as integer tensors
            pass unchanged), or ``None`` for a perfect link.
        tail: the edge side.
        point: the :class:`SplitPoint` of the cut, when known (else ``None``).

    >>> model = SplitModel(nn.Linear(4, 3), nn.Identity(), nn.Linear(3, 2))
    >>> model(torch.ones(5, 4)).shape
    torch.Size([5, 2])
    """

    def __init__(
        self,
        head: nn.Module,
        link: nn.Module | None,
        tail: nn.Module,
        *,
        point: SplitPoint | None = None,
    ) -> None:
        super().__init__()
        for arg, value in (("head", head), ("tail", tail)):
            if not isinstance(value, nn.Module):
                raise TypeError(f"{arg} must be an nn.Module; got {type(value).__name__}")
        if link is not None and not isinstance(link, nn.Module):
            raise TypeError(f"link must be an nn.Module or None; got {type(link).__name__}")
        if point is not None and not isinstance(point, SplitPoint):
            raise TypeError(f"point must be a SplitPoint or None; got {type(point).__name__}")
        self.head = head
        self.link = link
        self.tail = tail
        self.point = point

    def transmit(self, features: Any) -> Any:
        """``features`` through the link: each floating-point tensor, also inside tuples, lists,
        dicts and dataclass instances (a new container of the same type); anything else as
        it is."""
        if self.link is None:
            return features
        if isinstance(features, torch.Tensor):
            return self.link(features) if features.is_floating_point() else features
        if isinstance(features, tuple | list):
            sent = [self.transmit(f) for f in features]
            if hasattr(features, "_fields"):  # a namedtuple
                return type(features)(*sent)
            return type(features)(sent)
        if isinstance(features, dict):
            sent = copy.copy(features)  # a dict subclass keeps its type and settings
            sent.update((key, self.transmit(value)) for key, value in features.items())
            return sent
        if dataclasses.is_dataclass(features) and not isinstance(features, type):
            fields = dataclasses.fields(features)
            changes = {f.name: self.transmit(getattr(features, f.name)) for f in fields if f.init}
            return dataclasses.replace(features, **changes)
        return features

    def forward(self, *inputs: Any, **named: Any) -> Any:
        return self.tail(self.transmit(self.head(*inputs, **named)))
