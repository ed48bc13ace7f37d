"""Custom ops that skip the dispatcher's Python round trip when nothing needs it.

A ``torch.library.custom_op`` call from Python costs tens of microseconds on the CPU (the
dispatcher calls back into Python through the autograd and backend layers), as much as
quantizing a few thousand values. :func:`custom_op` registers the op as usual, so
``torch.compile``, ``torch.export``, fake tensors and dispatch modes see it, and in plain eager
mode (no compilation or tracing, no active mode, only plain tensors) calls its implementation
directly, which is what the dispatcher would run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

__all__ = ["EagerCustomOp", "custom_op", "plain_eager"]

# Argument types that are never tensor subclasses.
_PLAIN_TYPES = frozenset({torch.Tensor, int, float, bool, str, type(None), torch.dtype})


def plain_eager(args: tuple[Any, ...]) -> bool:
    """Whether calling an op's implementation directly is what the dispatcher would do: not for
    tensor subclasses, nor for meta tensors (the dispatcher runs the fake implementation).

    Example:
        >>> plain_eager((torch.ones(2), 3))
        True
    """
    if torch.compiler.is_compiling() or torch._C._get_tracing_state() is not None:
        return False
    if torch._C._is_torch_function_mode_enabled() or _get_current_dispatch_mode() is not None:
        return False
    for arg in args:  # type() first: isinstance against torch.Tensor's metaclass costs ~0.2 us
        kind = type(arg)
        if kind is torch.Tensor:
            if arg.is_meta:
                return False
        elif kind not in _PLAIN_TYPES and isinstance(arg, torch.Tensor):
            return False
    return True


class EagerCustomOp:
    """A registered custom op (``.op``) whose eager calls go straight to ``.implementation``."""

    def __init__(self, name: str, implementation: Callable[..., Any]) -> None:
        self.implementation = implementation
        self.op = torch.library.custom_op(name, mutates_args=())(implementation)

    def register_fake(self, fake: Callable[..., Any]) -> Callable[..., Any]:
        """Register the op's fake (shape) implementation, as ``CustomOpDef.register_fake``."""
        return self.op.register_fake(fake)

    def __call__(self, *args: Any) -> Any:
        if plain_eager(args):
            return self.implementation(*args)
        return self.op(*args)


def custom_op(name: str) -> Callable[[Callable[..., Any]], EagerCustomOp]:
    """Decorator: ``torch.library.custom_op(name, mutates_args=())`` with the eager shortcut.

    Example:
        >>> @custom_op("aiflow_comm::doctest_twice")
        ... def twice(x: torch.Tensor) -> torch.Tensor:
        ...     return x * 2
        >>> twice(torch.ones(2)), twice.op(torch.ones(2))
        (tensor([2., 2.]), tensor([2., 2.]))
    """

    def wrap(implementation: Callable[..., Any]) -> EagerCustomOp:
        return EagerCustomOp(name, implementation)

    return wrap
