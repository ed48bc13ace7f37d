"""Sizes and argument checks shared by every quantization backend: the layout of packed codes."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, replace

import numpy as np
import torch

__all__ = [
    "FLOAT_DTYPES",
    "MAX_GROUP_SIZE",
    "SUPPORTED_BITS",
    "GroupLayout",
    "check_count",
    "check_float_tensor",
    "check_group_size",
    "check_quant_args",
    "check_symmetric",
    "empty_packed",
    "row_group_size",
]

SUPPORTED_BITS = (2, 4, 8)
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# The wire formats store group_size in 32 bits; below 2**31 it is also a non-negative int32. A
# group wider than a row is that row (one group of row_len values, the same bytes).
MAX_GROUP_SIZE = 2**31 - 1


def _size(size: object, shape: object) -> int | torch.SymInt:
    """One dimension of ``shape``: a symbolic size as it is (no specialization), else an int
    >= 0, or ``ValueError``."""
    if isinstance(size, torch.SymInt):
        return size
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 0:
        raise ValueError(f"shape must hold ints >= 0; got {tuple(shape)}")
    return int(size)


@dataclass(frozen=True)
class GroupLayout:
    """Where each group's codes sit in the packed byte rows.

    A tensor of shape ``(..., D)`` is read as ``rows`` rows of ``D`` values. Each row is cut into
    ``num_groups = ceil(D / group_size)`` groups along the last dimension; the last group of a row
    holds ``last_group_size`` values. Codes are packed ``8 // bits`` per byte, the first value of a
    byte in its least significant bits. Every group starts on a byte boundary: a group of ``n``
    values takes ``ceil(n * bits / 8)`` bytes, and unused bits are zero. A row's bytes are its
    groups' bytes in order, so ``row_bytes = (num_groups - 1) * group_bytes + last_group_bytes``,
    which is ``ceil(D * bits / 8)`` whenever ``group_size * bits`` is a multiple of 8.

    Example:
        >>> GroupLayout.of((3, 10), bits=4, group_size=4).row_bytes
        5
    """

    rows: int
    row_len: int
    bits: int
    group_size: int

    def __post_init__(self) -> None:
        check_count("rows", self.rows)
        check_count("row_len", self.row_len)

    @classmethod
    def of(cls, shape: tuple[int, ...] | torch.Size, bits: int, group_size: int) -> GroupLayout:
        """The layout of a tensor of ``shape`` (at least one dimension, each an int >= 0; a
        symbolic size, under ``torch.compile`` or ``torch.export``, stays symbolic)."""
        if len(shape) == 0:
            raise ValueError(
                "x must have at least one dimension; got a 0-d tensor (use x.reshape(1))"
            )
        sizes = [_size(size, shape) for size in shape]
        rows = 1
        for size in sizes[:-1]:
            rows *= size
        return cls(rows=rows, row_len=sizes[-1], bits=bits, group_size=group_size)

    def within_row(self) -> GroupLayout:
        """This layout with groups no wider than the row (:func:`row_group_size`): the same
        bytes, without padding a row to ``group_size`` values.

        Example:
            >>> GroupLayout.of((3, 10), 4, 2**20).within_row().group_size
            10
        """
        narrow = row_group_size(self.group_size, self.row_len)
        return self if narrow == self.group_size else replace(self, group_size=narrow)

    @property
    def values_per_byte(self) -> int:
        return 8 // self.bits

    @property
    def num_groups(self) -> int:
        return -(-self.row_len // self.group_size) if self.row_len else 0

    @property
    def last_group_size(self) -> int:
        return self.row_len - (self.num_groups - 1) * self.group_size if self.row_len else 0

    @property
    def group_bytes(self) -> int:
        return -(-self.group_size * self.bits // 8)

    @property
    def last_group_bytes(self) -> int:
        return -(-self.last_group_size * self.bits // 8)

    @property
    def row_bytes(self) -> int:
        if self.num_groups == 0:
            return 0
        return (self.num_groups - 1) * self.group_bytes + self.last_group_bytes

    @property
    def qmax(self) -> int:
        """Largest code magnitude of the symmetric scheme: ``2**(bits-1) - 1``."""
        return 2 ** (self.bits - 1) - 1

    @property
    def levels(self) -> int:
        """Largest code of the asymmetric scheme: ``2**bits - 1``."""
        return 2**self.bits - 1


def check_count(name: str, value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is an int >= 0 (or a symbolic size, under
    ``torch.compile`` or ``torch.export``).

    Example:
        >>> check_count("row_len", 8.0)
        Traceback (most recent call last):
        ...
        ValueError: row_len must be an int >= 0; got 8.0
    """
    if not isinstance(value, torch.SymInt) and (
        isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0
    ):
        raise ValueError(f"{name} must be an int >= 0; got {value!r}")


def row_group_size(group_size: int, row_len: int) -> int:
    """``group_size``, or ``row_len`` where a group is wider than the row: one group of the row's
    values either way, in the same bytes, but kernels never pad a row to ``group_size`` values.

    Example:
        >>> row_group_size(128, 96), row_group_size(32, 96)
        (96, 32)
    """
    return min(group_size, max(row_len, 1))


def empty_packed(
    like: torch.Tensor, layout: GroupLayout, symmetric: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Uninitialized codes, scales and zero points for ``layout``, on ``like``'s device.

    :output: ``codes`` uint8 ``(rows, row_bytes)``, ``scales`` float32 ``(rows, num_groups)``,
        ``zero_points`` float32 ``(rows, num_groups)``, or ``(0,)`` when ``symmetric``.

    Example:
        >>> codes, scales, zero_points = empty_packed(torch.ones(1), GroupLayout(3, 10, 4, 4), True)
        >>> tuple(codes.shape), tuple(scales.shape), tuple(zero_points.shape)
        ((3, 5), (3, 3), (0,))
    """
    codes = like.new_empty((layout.rows, layout.row_bytes), dtype=torch.uint8)
    scales = like.new_empty((layout.rows, layout.num_groups), dtype=torch.float32)
    zero_shape = (0,) if symmetric else (layout.rows, layout.num_groups)
    return codes, scales, like.new_empty(zero_shape, dtype=torch.float32)


def check_float_tensor(x: object, name: str = "x") -> torch.Tensor:
    """Raise ``TypeError`` unless ``x`` is a dense float32, float16 or bfloat16 tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must have dtype float32, float16 or bfloat16; got {x.dtype}"
            " (integer and complex tensors are not quantized: view complex as real first)"
        )
    if x.layout is not torch.strided:
        raise TypeError(f"{name} must be a dense tensor; got layout {x.layout} (use .to_dense())")
    if x.is_nested:  # a legacy nested tensor reports the strided layout
        raise TypeError(f"{name} must be a dense tensor; got a nested one (.to_padded_tensor())")
    return x


def check_group_size(group_size: object) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``group_size`` is an int in
    ``[1, MAX_GROUP_SIZE]``."""
    if isinstance(group_size, bool) or not isinstance(group_size, int):
        raise TypeError(f"group_size must be a positive int; got {group_size!r}")
    if not 1 <= group_size <= MAX_GROUP_SIZE:
        raise ValueError(f"group_size must be in [1, {MAX_GROUP_SIZE}]; got {group_size}")


def check_symmetric(symmetric: object) -> bool:
    """``symmetric`` if it is a bool (NumPy's too), else ``TypeError``: a scheme's name such as
    ``"asymmetric"`` would read as true and pick the other scheme.

    Example:
        >>> check_symmetric(False)
        False
    """
    if not isinstance(symmetric, bool | np.bool_):
        raise TypeError(
            "symmetric must be a bool (True: symmetric scales, False: asymmetric with a zero "
            f"point); got {symmetric!r}"
        )
    return bool(symmetric)


def check_quant_args(bits: int, group_size: int) -> None:
    """Raise ``ValueError``/``TypeError`` for unsupported ``bits`` or ``group_size``."""
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"bits must be an int, one of {SUPPORTED_BITS}; got {bits!r}")
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"bits must be one of {SUPPORTED_BITS}; got {bits}")
    check_group_size(group_size)
