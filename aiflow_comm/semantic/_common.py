"""Argument checks and symbol packing shared by the JSCC encoders and decoders."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from fractions import Fraction

import torch

from aiflow_comm.channel.conventions import check_complex, normalize_power

__all__ = [
    "check_positive_int",
    "check_ratio",
    "check_real",
    "check_shape",
    "check_symbols",
    "decimal_times",
    "halves_to_symbols",
    "in_model_dtype",
    "round_half_up",
    "symbols_to_halves",
]


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is an int ``>= 1``, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an int >= 1; got {value!r}")
    return int(value)


def check_ratio(ratio: object) -> float:
    """Return a bandwidth ratio (complex channel uses per real source value) if finite, > 0."""
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real):
        raise TypeError(f"ratio must be a number > 0; got {type(ratio).__name__}")
    if not (math.isfinite(ratio) and ratio > 0):
        raise ValueError(
            f"ratio must be a finite number > 0 (complex channel uses per real source value); "
            f"got {ratio}"
        )
    return float(ratio)


def round_half_up(value: float | Fraction) -> int:
    """Nearest integer, halves rounded up (``round`` rounds halves to even).

    >>> round_half_up(2.5), round(2.5)
    (3, 2)
    """
    return math.floor(value + Fraction(1, 2))


def decimal_times(ratio: float, count: int) -> Fraction:
    """``ratio * count`` exactly, ``ratio`` read as the decimal it prints as: in binary
    ``0.58 * 25`` is 14.499999999999998, which rounds to 14 where 14.5 rounds to 15.

    >>> decimal_times(0.58, 25)
    Fraction(29, 2)
    """
    return Fraction(repr(float(ratio))) * count


def check_real(x: object, name: str, rank: int) -> torch.Tensor:
    """Return ``x`` if it is a real floating-point tensor of ``rank`` dimensions, else raise."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a real floating-point tensor; got {x.dtype}")
    if x.dim() != rank:
        raise ValueError(f"{name} must have {rank} dimensions; got shape {tuple(x.shape)}")
    return x


def in_model_dtype(x: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    """``x`` in the dtype of ``model``'s parameters (its complex counterpart for complex ``x``):
    a float64 array from NumPy, or float16 data, meets a float32 model as its layers would
    have it (a mismatch failed inside the first layer).

    >>> in_model_dtype(torch.ones(1, dtype=torch.float64), torch.nn.Linear(1, 1)).dtype
    torch.float32
    """
    dtype = next(model.parameters()).dtype
    return x.to(dtype.to_complex() if x.is_complex() else dtype)


def check_symbols(symbols: object, accepted: str) -> torch.Tensor:
    """Return complex ``symbols`` of shape ``(batch, k)``; ``accepted`` describes valid ``k``."""
    symbols = check_complex(symbols, "symbols")
    if symbols.dim() != 2:
        raise ValueError(
            f"symbols must have shape (batch, k) with k {accepted}; got {tuple(symbols.shape)}"
        )
    return symbols


def check_shape(shape: object, name: str = "shape") -> tuple[int, ...]:
    """Return ``shape`` as a tuple of ints (a ``torch.Size`` or a sequence of ints)."""
    if not isinstance(shape, Sequence) or not all(
        isinstance(s, int) and not isinstance(s, bool) for s in shape
    ):
        raise TypeError(f"{name} must be a sequence of ints (such as x.shape); got {shape!r}")
    return tuple(shape)


def halves_to_symbols(values: torch.Tensor) -> torch.Tensor:
    """Power-normalized complex symbols ``(batch, k)`` from real ``values`` ``(batch, 2m, ...)``.

    The first half of dimension 1 gives the real parts, the second half the imaginary parts;
    the rest is flattened. Each example is scaled to unit average energy per complex symbol.

    >>> halves_to_symbols(torch.tensor([[3.0, 4.0]]))
    tensor([[0.6000+0.8000j]])
    """
    if values.dtype not in (torch.float32, torch.float64):  # complex32 has no channel model
        raise TypeError(
            "JSCC encoders send float32 or float64 values (the channels simulate complex64 or "
            f"complex128); got {values.dtype}: run the model in float32 (outside autocast, "
            "or .float())"
        )
    real, imag = values.chunk(2, dim=1)
    return normalize_power(torch.complex(real.flatten(1), imag.flatten(1)))[0]


def symbols_to_halves(symbols: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Inverse packing of :func:`halves_to_symbols` (without the scaling): complex ``(batch, k)``
    to real ``(batch, 2 * shape[0], *shape[1:])`` where ``shape`` is one half's shape.

    >>> symbols_to_halves(torch.tensor([[1 + 2j, 3 + 4j]]), (2,))
    tensor([[1., 3., 2., 4.]])
    """
    batch = symbols.shape[0]
    return torch.cat(
        [symbols.real.reshape(batch, *shape), symbols.imag.reshape(batch, *shape)], dim=1
    )
