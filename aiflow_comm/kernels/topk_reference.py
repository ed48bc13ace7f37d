"""The pure-PyTorch top-k sparsification kernels: the reference every other backend must match.

This module is the specification. A tensor is read as ``R`` rows of ``D`` values, cut into groups
of ``G = group_size`` values along the last dimension (the last group of a row may be short, see
:class:`~aiflow_comm.kernels.layout.GroupLayout`). In a group of ``n`` values:

* **selection**: the group keeps ``min(k, n)`` values, those of largest magnitude ``|x|``
  (compared in float32, so ``-0.0`` and ``0.0`` tie). Ties go to the lower index: value ``i`` is
  kept when ``rank(i) < min(k, n)`` with ``rank(i) = #{j : |x_j| > |x_i|} +
  #{j < i : |x_j| == |x_i|}``.
* **indices**: the kept values' positions inside the group, ascending, stored as
  :func:`index_dtype` of ``G`` (uint8 up to ``G = 256``, int16 up to ``2**15``, int32 above).
* **quantization**: the kept values, in index order, form a row of
  ``L = (groups - 1) * min(k, G) + min(k, last group length)`` values per tensor row, quantized by
  :func:`~aiflow_comm.kernels.reference.quantize_reference` with group size ``min(k, G)``: each
  original group's kept values are one quantization group, its scale (and zero point) taken from
  them alone. In the symmetric scheme that is the scale of the whole group, since the largest
  ``|x|`` is always kept.
* **decoding**: each kept position holds its dequantized value, every other position ``0``.

A group holding NaN or Inf gets a NaN scale (its indices and codes are unspecified); callers turn
that into an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from aiflow_comm.kernels.layout import GroupLayout, check_count, empty_packed
from aiflow_comm.kernels.reference import dequantize_reference, quantize_reference

__all__ = [
    "MAX_K",
    "SparseLayout",
    "check_k",
    "index_dtype",
    "indices_in_groups",
    "scatter_kept",
    "topk_dequantize_reference",
    "topk_quantize_reference",
]

MAX_K = 2**32 - 1  # the wire format carries k as a uint32


def index_dtype(group_size: int) -> torch.dtype:
    """The dtype of in-group indices: the smallest of uint8, int16, int32 that holds ``G - 1``.

    Example:
        >>> index_dtype(128), index_dtype(257), index_dtype(40000)
        (torch.uint8, torch.int16, torch.int32)
    """
    if group_size <= 2**8:
        return torch.uint8
    return torch.int16 if group_size <= 2**15 else torch.int32


def check_k(k: int) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``k`` is an int from 1 to ``MAX_K``.

    Example:
        >>> check_k(0)
        Traceback (most recent call last):
        ...
        ValueError: k must be >= 1 (values kept per group); got 0
    """
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be a positive int (values kept per group); got {k!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1 (values kept per group); got {k}")
    if k > MAX_K:
        raise ValueError(
            f"k must be at most 2**32 - 1; got {k} (k >= group_size keeps every value)"
        )


@dataclass(frozen=True)
class SparseLayout:
    """How many values each group keeps, and the layout of their codes.

    Every full group keeps ``kept_per_group = min(k, group_size)`` values, the last group of a row
    ``last_kept = min(k, last group length)``, a row ``kept_per_row`` in all. The kept values are
    quantized as a ``(rows, kept_per_row)`` tensor in groups of ``kept_per_group``
    (:meth:`values`): one quantization group per original group.

    Example:
        >>> layout = SparseLayout.of((3, 10), group_size=4, k=3)
        >>> layout.kept_per_row, layout.values(bits=4).row_bytes
        (8, 5)
    """

    rows: int
    row_len: int
    group_size: int
    k: int

    def __post_init__(self) -> None:
        check_count("rows", self.rows)
        check_count("row_len", self.row_len)

    @classmethod
    def of(cls, shape: tuple[int, ...] | torch.Size, group_size: int, k: int) -> SparseLayout:
        """The layout of a tensor of ``shape`` (at least one dimension)."""
        groups = GroupLayout.of(shape, 8, group_size)
        return cls(rows=groups.rows, row_len=groups.row_len, group_size=group_size, k=k)

    @property
    def num_groups(self) -> int:
        return -(-self.row_len // self.group_size) if self.row_len else 0

    @property
    def kept_per_group(self) -> int:
        return min(self.k, self.group_size)

    @property
    def last_kept(self) -> int:
        if self.num_groups == 0:
            return 0
        return min(self.k, self.row_len - (self.num_groups - 1) * self.group_size)

    @property
    def kept_per_row(self) -> int:
        if self.num_groups == 0:
            return 0
        return (self.num_groups - 1) * self.kept_per_group + self.last_kept

    @property
    def index_dtype(self) -> torch.dtype:
        return index_dtype(self.group_size)

    def values(self, bits: int) -> GroupLayout:
        """The layout of the kept values' packed codes at ``bits`` bits."""
        return GroupLayout(self.rows, self.kept_per_row, bits, self.kept_per_group)


def _select(x: torch.Tensor, layout: SparseLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """In-group int64 indices ``(R, L)`` of the kept values, and the zero-padded float32 rows."""
    rows, groups, size = layout.rows, layout.num_groups, layout.group_size
    flat = x.reshape(rows, layout.row_len).to(torch.float32)
    flat = torch.nn.functional.pad(flat, (0, groups * size - layout.row_len))
    magnitude = flat.abs().view(rows, groups, size)
    in_row = torch.arange(groups * size, device=x.device) < layout.row_len
    magnitude = torch.where(in_row.view(groups, size), magnitude, -1.0)
    # A stable descending sort ranks ties by index: exactly the order of the specification.
    order = torch.sort(magnitude, dim=-1, descending=True, stable=True).indices
    chosen = order[..., : layout.kept_per_group].sort(dim=-1).values
    # The last group's padding positions sort last; cutting to L drops exactly them.
    return chosen.reshape(rows, groups * layout.kept_per_group)[:, : layout.kept_per_row], flat


def topk_quantize_reference(
    x: torch.Tensor, k: int, bits: int, group_size: int, symmetric: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep the ``k`` largest-magnitude values of each group and quantize them.

    :input: ``x`` float tensor of shape ``(..., D)``.
    :output: ``indices`` ``(R, L)`` of :func:`index_dtype`, ``codes`` uint8
        ``(R, values.row_bytes)``, ``scales`` float32 ``(R, groups)``, ``zero_points`` float32
        ``(R, groups)`` (empty ``(0,)`` when symmetric), with ``L`` and ``values`` from
        :class:`SparseLayout`.

    Example:
        >>> x = torch.tensor([[0.5, -2.0, 1.0, 2.0, 3.0]])
        >>> indices, codes, scales, _ = topk_quantize_reference(x, 2, 8, 4, True)
        >>> indices.tolist(), codes.tolist()
        ([[1, 3, 0]], [[1, 255, 255]])
    """
    layout = SparseLayout.of(x.shape, group_size, k)
    if layout.rows == 0:  # no values; the index tensors below would be as long as a row
        indices = x.new_empty((0, layout.kept_per_row), dtype=layout.index_dtype)
        return indices, *empty_packed(x, layout.values(bits), symmetric)
    chosen, flat = _select(x, layout)
    group_start = torch.arange(layout.kept_per_row, device=x.device) // layout.kept_per_group
    values = flat.gather(1, group_start * group_size + chosen)
    codes, scales, zero_points = quantize_reference(values, bits, layout.kept_per_group, symmetric)
    # A non-finite value anywhere in the group, kept or not, makes the group's scale NaN.
    scales = scales + (flat * 0).view(layout.rows, layout.num_groups, group_size).sum(-1)
    return chosen.to(layout.index_dtype), codes, scales, zero_points


def indices_in_groups(indices: torch.Tensor, layout: SparseLayout) -> bool:
    """Whether every group's ``indices`` ``(R, L)`` ascend strictly and stay inside the group
    (what :func:`topk_quantize_reference` makes): else two kept values could share a position,
    or one land in another group. A boolean from the indices' device (on a GPU, a sync).

    Example:
        >>> layout = SparseLayout.of((1, 5), group_size=4, k=2)
        >>> indices_in_groups(torch.tensor([[1, 3, 0]], dtype=torch.uint8), layout)
        True
        >>> indices_in_groups(torch.tensor([[3, 1, 0]], dtype=torch.uint8), layout)
        False
    """
    if indices.numel() == 0:
        return True
    wide = indices.to(torch.int64)
    slot = torch.arange(layout.kept_per_row, device=indices.device)
    group = slot // layout.kept_per_group
    length = torch.where(
        group == layout.num_groups - 1,
        layout.row_len - (layout.num_groups - 1) * layout.group_size,
        layout.group_size,
    )
    opens = slot % layout.kept_per_group == 0
    ascending = opens[1:] | (wide[:, 1:] > wide[:, :-1])
    return bool(((wide >= 0) & (wide < length)).all() & ascending.all())


def scatter_kept(values: torch.Tensor, indices: torch.Tensor, layout: SparseLayout) -> torch.Tensor:
    """The dense ``(R, D)`` rows holding ``values`` ``(R, L)`` at ``indices``, zeros elsewhere
    (contiguous); the indices must be :func:`indices_in_groups`.

    Example:
        >>> layout = SparseLayout.of((1, 5), group_size=4, k=2)
        >>> values = torch.tensor([[1.0, 2.0, 3.0]])
        >>> scatter_kept(values, torch.tensor([[1, 3, 0]], dtype=torch.uint8), layout)
        tensor([[0., 1., 0., 2., 3.]])
    """
    dense = values.new_zeros((layout.rows, layout.row_len))
    if layout.rows == 0:  # no values; the index tensors below would be as long as a row
        return dense
    group_start = torch.arange(layout.kept_per_row, device=values.device) // layout.kept_per_group
    return dense.scatter_(1, group_start * layout.group_size + indices.to(torch.int64), values)


def topk_dequantize_reference(
    indices: torch.Tensor,
    codes: torch.Tensor,
    scales: torch.Tensor,
    zero_points: torch.Tensor,
    k: int,
    bits: int,
    group_size: int,
    row_len: int,
    symmetric: bool,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Decode the outputs of :func:`topk_quantize_reference` to a dense ``(R, row_len)`` tensor.

    Example:
        >>> x = torch.tensor([[0.5, -2.0, 1.0, 2.0, 3.0]])
        >>> packed = topk_quantize_reference(x, 2, 8, 4, True)
        >>> topk_dequantize_reference(*packed, 2, 8, 4, 5, True, torch.float32)
        tensor([[ 0., -2.,  0.,  2.,  3.]])
    """
    layout = SparseLayout(indices.shape[0], row_len, group_size, k)
    values = dequantize_reference(
        codes,
        scales,
        zero_points,
        bits,
        layout.kept_per_group,
        layout.kept_per_row,
        symmetric,
        torch.float32,
    )
    return scatter_kept(values, indices, layout).to(dtype)
