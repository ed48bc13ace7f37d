"""Codec settings of a cut and the bits they put on the wire (wire format, computed exactly)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass

from aiflow_comm.kernels.layout import (
    SUPPORTED_BITS,
    GroupLayout,
    check_group_size,
    check_symmetric,
)
from aiflow_comm.split.points import CrossingTensor

__all__ = ["RAW_BITS", "Codec", "payload_bits", "projection_flops"]

RAW_BITS = 32
_HEADER_BYTES = 16
_BYTES_PER_DIM = 8
_CRC_BYTES = 4


@dataclass(frozen=True)
class Codec:
    """How the tensors crossing a cut are sent: ``bits``, ``group_size``, an optional projection.

    * ``bits=32``: raw float32 values, ``32 * numel`` bits, no framing (what
      :meth:`~aiflow_comm.split.SplitLink.payload_bits` counts without quantization).
    * ``bits`` in 2, 4, 8: one wire-format message per crossing tensor (``docs/wire-format.md``:
      16-byte header, 8 bytes per dimension, packed codes, float32 scales, zero points when
      ``symmetric=False``, 4-byte CRC32).
    * ``ratio`` < 1: a learned projection (a 1x1 convolution or a linear layer along
      dimension 1, the channels) keeps ``ceil(ratio * channels)`` channels before
      quantization, images sent channels-last (:meth:`sent_shape`); its decoder restores them
      on the receiving tier. Its accuracy must come
      from an accuracy table (it has to be trained); its compute is
      :func:`projection_flops` on each side.

    >>> Codec(8).label, Codec(4, 64, ratio=0.25).label
    ('8b', '4b/g64/r0.25')
    """

    bits: int = RAW_BITS
    group_size: int = 128
    ratio: float = 1.0
    symmetric: bool = True

    def __post_init__(self) -> None:
        for name in ("bits", "group_size"):  # NumPy ints (from a sweep) as Python ints
            value = getattr(self, name)
            if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                object.__setattr__(self, name, int(value))
        if (
            not isinstance(self.bits, numbers.Integral)
            or isinstance(self.bits, bool)
            or (self.bits not in (*SUPPORTED_BITS, RAW_BITS))
        ):
            raise ValueError(
                f"bits must be one of {(*SUPPORTED_BITS, RAW_BITS)}; got {self.bits!r}"
            )
        check_group_size(self.group_size)
        if not (
            isinstance(self.ratio, numbers.Real)
            and not isinstance(self.ratio, bool)
            and 0.0 < self.ratio <= 1.0
        ):
            raise ValueError(f"ratio must be a number in (0, 1]; got {self.ratio!r}")
        object.__setattr__(self, "symmetric", check_symmetric(self.symmetric))

    @property
    def lossless(self) -> bool:
        """Raw float32 without projection: the tail sees the head's exact features."""
        return self.bits == RAW_BITS and self.ratio == 1.0

    @property
    def label(self) -> str:
        """A short name: ``"32b"``, ``"8b"``, ``"4b/g64/r0.25"`` (defaults left out)."""
        parts = [f"{self.bits}b"]
        if self.group_size != 128 and self.bits != RAW_BITS:
            parts.append(f"g{self.group_size}")
        if self.ratio != 1.0:
            parts.append(f"r{self.ratio:g}")
        if not self.symmetric and self.bits != RAW_BITS:
            parts.append("asym")
        return "/".join(parts)

    def sent_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape after the projection: dimension 1 scaled by ``ratio`` (rounded up), and
        moved last in a 4-d (image) shape, as a ``SplitLink`` with a 1x1 ``nn.Conv2d`` encoder
        sends it (channels-last, its groups along the kept channels).

        >>> Codec(8, ratio=0.5).sent_shape((2, 64, 4, 4))
        (2, 4, 4, 32)
        """
        if self.ratio == 1.0 or len(shape) < 2:
            return tuple(shape)
        kept = math.ceil(self.ratio * shape[1])
        if len(shape) == 4:
            return (shape[0], *shape[2:], kept)
        return (shape[0], kept, *shape[2:])


def _message_bits(shape: tuple[int, ...], codec: Codec) -> int:
    if codec.bits == RAW_BITS:
        return RAW_BITS * math.prod(shape)
    layout = GroupLayout.of(shape, codec.bits, codec.group_size)
    scales = layout.rows * layout.num_groups * (1 if codec.symmetric else 2)
    size = _HEADER_BYTES + _BYTES_PER_DIM * len(shape) + layout.rows * layout.row_bytes
    return 8 * (size + 4 * scales + _CRC_BYTES)


def payload_bits(tensors: Iterable[CrossingTensor], codec: Codec) -> int:
    """Bits on the wire for ``tensors`` (batch included) sent with ``codec``, one message each.

    Equals ``8 * len(quantize(t, bits, group_size).to_bytes())`` summed over the tensors for
    2/4/8 bits, and ``32 * numel`` for raw floats. Tensors that are not floating point (token
    ids, masks) are sent as they are, whatever the codec (a split model's link passes them
    through): ``8 * itemsize * numel``.

    >>> import torch
    >>> t = CrossingTensor("fc", (1, 64), torch.float32)
    >>> payload_bits([t], Codec(32)), payload_bits([t], Codec(4, 32))
    (2048, 608)
    """
    return sum(
        _message_bits(codec.sent_shape(t.shape), codec)
        if t.dtype.is_floating_point
        else 8 * t.dtype.itemsize * math.prod(t.shape)
        for t in tensors
    )


def projection_flops(tensors: Iterable[CrossingTensor], codec: Codec) -> int:
    """FLOPs of the projection encoder (and, the same, of its decoder): ``2 * numel_out * C``.

    A 1x1 convolution (or linear layer) from ``C`` to ``ceil(ratio * C)`` channels; zero when
    ``ratio`` is 1 or a tensor has fewer than two dimensions.

    >>> import torch
    >>> projection_flops([CrossingTensor("c", (1, 8, 4, 4), torch.float32)], Codec(8, ratio=0.5))
    1024
    """
    if codec.ratio == 1.0:
        return 0
    total = 0
    for t in tensors:  # tensors that are not floating point pass through unprojected
        if len(t.shape) >= 2 and t.dtype.is_floating_point:
            total += 2 * math.prod(codec.sent_shape(t.shape)) * t.shape[1]
    return total
