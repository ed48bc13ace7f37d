"""``QuantizedTensor`` and the ``quantize``/``dequantize`` pair that produce and consume it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Self

import torch

from aiflow_comm.kernels.layout import (
    FLOAT_DTYPES,
    GroupLayout,
    check_float_tensor,
    check_quant_args,
)
from aiflow_comm.kernels.ops import dequantize_fields, quantize_packed

__all__ = [
    "ROUNDINGS",
    "SCHEMES",
    "PackedTensor",
    "QuantizedTensor",
    "check_packed_fields",
    "dequantize",
    "quantize",
    "seed_from",
]

SCHEMES = ("symmetric", "asymmetric")
ROUNDINGS = ("nearest", "stochastic")


def check_packed_fields(
    scheme: str,
    dtype: torch.dtype,
    fields: dict[str, tuple[torch.Tensor | None, torch.dtype, tuple[int, ...]]],
) -> None:
    """Raise unless ``scheme`` and ``dtype`` are known and every field has its dtype and shape.

    ``fields`` maps each buffer's name to ``(tensor, dtype, shape)``. Its ``zero_points`` tensor
    must be ``None`` exactly when ``scheme`` is symmetric; every tensor given must be on one device.

    Example:
        >>> check_packed_fields("symmetric", torch.float32, {
        ...     "codes": (torch.zeros(2, 3, dtype=torch.uint8), torch.uint8, (2, 4)),
        ...     "zero_points": (None, torch.float32, (2, 1))})
        Traceback (most recent call last):
        ...
        ValueError: codes must be torch.uint8 of shape (2, 4); got torch.uint8 (2, 3)
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}; got {scheme!r}")
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32, float16 or bfloat16; got {dtype}")
    if (fields["zero_points"][0] is None) != (scheme == "symmetric"):
        raise ValueError("zero_points must be given exactly when scheme is 'asymmetric'")
    given = {name: spec for name, spec in fields.items() if spec[0] is not None}
    for name, (tensor, want, shape) in given.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(tensor).__name__}")
        if tensor.dtype != want or tuple(tensor.shape) != shape:
            raise ValueError(
                f"{name} must be {want} of shape {shape}; got {tensor.dtype} {tuple(tensor.shape)}"
            )
    devices = {tensor.device for tensor, _, _ in given.values()}
    if len(devices) > 1:
        *names, last = fields
        raise ValueError(f"{', '.join(names)} and {last} must be on one device; got {devices}")


class PackedTensor:
    """What the compressed tensors share: their buffers (codes, scales, ...) and their ``scheme``.

    A base of frozen dataclasses whose tensor fields are the buffers (``codes`` among them).

    Example:
        >>> q = quantize(torch.randn(2, 8), bits=4, group_size=4)
        >>> q.nbytes, q.to("cpu").symmetric  # 2 rows x 4 code bytes + 2 x 2 float32 scales
        (24, True)
    """

    @property
    def symmetric(self) -> bool:
        """Whether ``scheme`` is ``"symmetric"`` (no zero points)."""
        return self.scheme == "symmetric"

    @property
    def device(self) -> torch.device:
        """The device of the buffers (``codes.device``)."""
        return self.codes.device

    @property
    def nbytes(self) -> int:
        """Payload size in bytes: every buffer (codes, scales, ...), the wire header excluded."""
        return sum(t.numel() * t.element_size() for t in self._buffers().values())

    def to(self, device: str | torch.device) -> Self:
        """The same tensor with its buffers on ``device``."""
        moved = {name: t.to(device) for name, t in self._buffers().items()}
        return dataclasses.replace(self, **moved)

    def _buffers(self) -> dict[str, torch.Tensor]:
        fields = (field.name for field in dataclasses.fields(self))
        return {
            name: value for name in fields if isinstance(value := getattr(self, name), torch.Tensor)
        }


@dataclass(frozen=True, eq=False)
class QuantizedTensor(PackedTensor):
    """A tensor quantized per group along its last dimension, with packed codes.

    Attributes:
        codes: uint8 ``(rows, row_bytes)``, ``8 // bits`` codes per byte (see
            :class:`~aiflow_comm.kernels.layout.GroupLayout`).
        scales: float32 ``(rows, groups)``, the step of each group.
        zero_points: float32 ``(rows, groups)`` in the asymmetric scheme (the value code 0
            decodes to: the group's minimum), else ``None``.
        shape, dtype: the original tensor's shape and dtype (what :meth:`dequantize` returns).
        bits, group_size, scheme: the quantizer's settings.

    Example:
        >>> q = quantize(torch.randn(4, 256), bits=4)
        >>> q.nbytes  # 4 rows x 128 code bytes + 4 x 2 float32 scales
        544
        >>> QuantizedTensor.from_bytes(q.to_bytes()).dequantize().shape
        torch.Size([4, 256])
    """

    codes: torch.Tensor
    scales: torch.Tensor
    zero_points: torch.Tensor | None
    shape: tuple[int, ...]
    dtype: torch.dtype
    bits: int
    group_size: int
    scheme: str = "symmetric"

    def __post_init__(self) -> None:
        check_quant_args(self.bits, self.group_size)
        layout = self.layout
        groups = (layout.rows, layout.num_groups)
        check_packed_fields(
            self.scheme,
            self.dtype,
            {
                "codes": (self.codes, torch.uint8, (layout.rows, layout.row_bytes)),
                "scales": (self.scales, torch.float32, groups),
                "zero_points": (self.zero_points, torch.float32, groups),
            },
        )

    @classmethod
    def from_kernel(
        cls,
        outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        shape: tuple[int, ...],
        dtype: torch.dtype,
        bits: int,
        group_size: int,
        symmetric: bool,
    ) -> QuantizedTensor:
        """Wrap a quantize kernel's ``(codes, scales, zero_points)`` without checking them again.

        For the library's ops, whose outputs come from the layout of ``shape``: the checks of
        the constructor cost as much as quantizing a small tensor.

        Example:
            >>> from aiflow_comm.kernels import quantize_packed
            >>> outputs = quantize_packed(torch.ones(2, 8), 4, 4)
            >>> QuantizedTensor.from_kernel(outputs, (2, 8), torch.float32, 4, 4, True).nbytes
            24
        """
        codes, scales, zero_points = outputs
        q = object.__new__(cls)
        q.__dict__.update({  # what the frozen dataclass's own __init__ sets, minus the checks
            "codes": codes,
            "scales": scales,
            "zero_points": None if symmetric else zero_points,
            "shape": tuple(shape),
            "dtype": dtype,
            "bits": bits,
            "group_size": group_size,
            "scheme": "symmetric" if symmetric else "asymmetric",
        })  # fmt: skip
        return q

    @property
    def layout(self) -> GroupLayout:
        """The :class:`~aiflow_comm.kernels.layout.GroupLayout` of the codes: rows, groups and
        bytes per row."""
        return GroupLayout.of(self.shape, self.bits, self.group_size)

    def dequantize(self, dtype: torch.dtype | None = None, backend: str = "auto") -> torch.Tensor:
        """Decode to a tensor of the original shape (and ``dtype``, default the original)."""
        return dequantize(self, dtype, backend=backend)

    def to_bytes(self) -> bytes:
        """Serialize to the wire format of ``docs/wire-format.md``."""
        from aiflow_comm.codec.wire import encode

        return encode(self)

    @classmethod
    def from_bytes(cls, buf: bytes | bytearray | memoryview) -> QuantizedTensor:
        """Parse the wire format; raises :class:`~aiflow_comm.codec.wire.WireFormatError`."""
        from aiflow_comm.codec.wire import decode

        return decode(buf)


def check_generator(generator: object) -> None:
    """Raise unless ``generator`` is an int seed in ``[0, 2**63)``, a ``torch.Generator`` or
    ``None``."""
    if isinstance(generator, bool) or not (
        generator is None or isinstance(generator, int | torch.Generator)
    ):
        raise TypeError(
            "generator must be an int seed, a torch.Generator or None; "
            f"got {type(generator).__name__}"
        )
    if isinstance(generator, int) and not 0 <= generator < 2**63:
        raise ValueError(f"generator seed must be in [0, 2**63); got {generator}")


def seed_from(generator: int | torch.Generator | None) -> int:
    """A 32-bit rounding seed drawn from ``generator``: a ``torch.Generator``, an int seed (a
    generator seeded with it: the same seed, the same rounding seed) or ``None`` (the global RNG).

    Example:
        >>> seed_from(7) == seed_from(torch.Generator().manual_seed(7))
        True
    """
    check_generator(generator)
    if isinstance(generator, int):
        generator = torch.Generator().manual_seed(generator)
    device = generator.device if generator is not None else "cpu"
    return int(torch.randint(0, 2**32, (1,), generator=generator, device=device).item())


def quantize(
    x: torch.Tensor,
    bits: int = 8,
    group_size: int = 128,
    *,
    symmetric: bool = True,
    rounding: str = "nearest",
    generator: int | torch.Generator | None = None,
    backend: str = "auto",
    check_finite: bool = True,
) -> QuantizedTensor:
    """Quantize ``x`` per group of ``group_size`` values along its last dimension.

    Args:
        x: float32, float16 or bfloat16 tensor of any shape and strides, on CPU or CUDA.
        bits: 2, 4 or 8 bits per value (2 and 4 are packed 4 and 2 to a byte).
        group_size: values per scale; a last dimension not divisible by it gets a short last group.
        symmetric: ``scale = amax / (2**(bits-1) - 1)`` if true, else min-max with a zero point.
        rounding: ``"nearest"`` (half to even) or ``"stochastic"`` (unbiased, from ``generator``).
        generator: source of the stochastic-rounding seed, a ``torch.Generator`` or an int
            seed (``None``: the global RNG); same state or seed, same codes.
        backend: ``"auto"`` (fastest usable) or one of ``available_backends(x.device)``.
        check_finite: raise for NaN or Inf in ``x``. On a GPU the check is a device sync per
            call; ``False`` skips it, and a group holding NaN or Inf then gets a non-finite
            scale: it decodes to non-finite values, and :meth:`QuantizedTensor.to_bytes` refuses it.

    Raises:
        TypeError: ``x`` is not a float tensor (integer, complex, bool).
        ValueError: unsupported ``bits``, ``group_size < 1``, NaN or Inf in ``x`` (with
            ``check_finite``), unknown backend.

    Example:
        >>> x = torch.randn(8, 1000)
        >>> q = quantize(x, bits=8, group_size=128)
        >>> bool(((dequantize(q) - x).abs() <= q.scales.max() / 2).all())
        True
    """
    check_float_tensor(x)
    check_quant_args(bits, group_size)
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}; got {rounding!r}")
    check_generator(generator)  # checked with nearest rounding too, where it goes unused
    seed = seed_from(generator) if rounding == "stochastic" else -1
    outputs = quantize_packed(
        x, bits, group_size, symmetric, seed, backend, check_finite=check_finite
    )
    return QuantizedTensor.from_kernel(outputs, x.shape, x.dtype, bits, group_size, symmetric)


def dequantize(
    q: QuantizedTensor, dtype: torch.dtype | None = None, *, backend: str = "auto"
) -> torch.Tensor:
    """Decode a :class:`QuantizedTensor` to its original shape, in ``dtype`` (default: original).

    Example:
        >>> q = quantize(torch.zeros(3, 5), bits=2, group_size=4)
        >>> dequantize(q, torch.float16)
        tensor([[0., 0., 0., 0., 0.],
                [0., 0., 0., 0., 0.],
                [0., 0., 0., 0., 0.]], dtype=torch.float16)
    """
    if not isinstance(q, QuantizedTensor):
        raise TypeError(f"q must be a QuantizedTensor; got {type(q).__name__}")
    dtype = q.dtype if dtype is None else dtype
    zero_points = q.zero_points if q.zero_points is not None else q.scales.new_empty(0)
    flat = dequantize_fields(
        q.codes,
        q.scales,
        zero_points,
        q.bits,
        q.group_size,
        q.shape[-1],  # the layout's row_len, without building the layout
        q.symmetric,
        dtype,
        backend,
    )
    return flat.view(q.shape)
