"""``aiflow-comm demo``: a split CNN trained over fading, then real photos quantized."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from aiflow_comm.codec import dequantize, quantize
from aiflow_comm.data import sample_images

__all__ = [
    "DEMO_BITS",
    "QuantDemoRow",
    "digits_demo",
    "format_demo_table",
    "format_split_point_table",
    "psnr_db",
    "quantization_demo",
    "split_point_sizes",
]

DEMO_BITS = (8, 4, 2)


@dataclass
class QuantDemoRow:
    bits: int
    scheme: str
    payload_bytes: int
    compression: float
    psnr_db: float
    throughput_mbps: float


def psnr_db(reference: torch.Tensor, decoded: torch.Tensor, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB (``inf`` for identical tensors).

    Example:
        >>> round(psnr_db(torch.zeros(4), torch.full((4,), 0.1)), 6)
        20.0
    """
    mse = torch.mean((reference.double() - decoded.double()) ** 2).item()
    return float("inf") if mse == 0 else 10.0 * torch.log10(torch.tensor(peak**2 / mse)).item()


def quantization_demo(
    group_size: int = 64, bits_list: tuple[int, ...] = (8, 4, 2)
) -> list[QuantDemoRow]:
    """Quantize the bundled photos (groups along image rows) and measure size, PSNR and speed."""
    images = sample_images()
    original_bytes = sum(im.numel() * im.element_size() for im in images)
    quantize(images[0], 8, group_size)  # warm-up: first calls pay for lazy initialisation
    rows = []
    for bits in bits_list:
        for symmetric in (True, False):
            start = time.perf_counter()
            coded = [quantize(im, bits, group_size, symmetric=symmetric) for im in images]
            decoded = [dequantize(q) for q in coded]
            seconds = time.perf_counter() - start
            payload = sum(q.nbytes for q in coded)
            error = torch.cat([(d - im).flatten() for d, im in zip(decoded, images, strict=True)])
            rows.append(
                QuantDemoRow(
                    bits,
                    "symmetric" if symmetric else "asymmetric",
                    payload,
                    original_bytes / payload,
                    psnr_db(torch.zeros_like(error), error),
                    original_bytes / seconds / 1e6,
                )
            )
    return rows


def format_demo_table(rows: list[QuantDemoRow]) -> str:
    header = f"{'bits':>4} {'scheme':<11} {'payload B':>10} {'ratio':>6} {'PSNR dB':>8} {'MB/s':>8}"
    lines = [header, "-" * len(header)]
    lines += [
        f"{r.bits:>4} {r.scheme:<11} {r.payload_bytes:>10} {r.compression:>5.1f}x "
        f"{r.psnr_db:>8.2f} {r.throughput_mbps:>8.1f}"
        for r in rows
    ]
    return "\n".join(lines)


def digits_demo(*, smoke: bool = False, seed: int = 0, progress: str = "auto") -> dict[str, Any]:
    """A short ``digits`` recipe run: the CNN cut after ``pool``, a 0.25 bottleneck at 4 and 2
    bits, uncoded QPSK over Rayleigh fading, trained jointly and without the channel.

    Returns the recipe's result (:func:`aiflow_comm.recipes.digits.run`); ``smoke`` runs a few
    steps on a few test examples (seconds, for tests).
    """
    from aiflow_comm.recipes import digits
    from aiflow_comm.recipes.runner import build_parser

    argv = ["--bits", "4", "2", "--ratios", "0.25", "--channel", "rayleigh", "--link", "digital",
            "--seed", str(seed), "--progress", progress]  # fmt: skip
    if smoke:
        argv.append("--smoke")
    return digits.run(build_parser("digits").parse_args(argv))


def split_point_sizes(
    model: nn.Module,
    example_input: torch.Tensor,
    bits_list: tuple[int, ...] = DEMO_BITS,
    group_size: int = 64,
) -> list[dict[str, Any]]:
    """Bits one example takes at each split point of ``model``: raw float32 and quantized.

    The first row is the input itself (what sending the raw data costs). Quantized sizes are
    the wire format's (header, codes, one float32 scale per ``group_size`` values, CRC32), the
    values of an example flattened into one row. Where several tensors cross a cut (a residual
    block's branch and skip), each is its own message and the row sums them. Keys: ``name``,
    ``shape`` (per example; a list of shapes where several tensors cross), ``values``,
    ``float32_bits`` and ``bits_8``, ``bits_4``... for ``bits_list``.

    >>> model = nn.Sequential(nn.Linear(4, 128), nn.ReLU(), nn.Linear(128, 2))
    >>> rows = split_point_sizes(model, torch.zeros(1, 4), (8,))
    >>> [(r["name"], r["values"], r["float32_bits"], r["bits_8"]) for r in rows]
    [('(input)', 4, 128, 352), ('0', 128, 4096, 1376), ('1', 128, 4096, 1376)]
    """
    from aiflow_comm.split import SplitLink, list_split_points

    cuts = [("(input)", [tuple(example_input.shape[1:])])]
    cuts += [
        (point.name, [tuple(t.shape[1:]) for t in point.tensors])
        for point in list_split_points(model, example_input[:1])
    ]
    rows = []
    for name, shapes in cuts:
        values = sum(math.prod(shape) for shape in shapes)
        row: dict[str, Any] = {
            "name": name,
            "shape": list(shapes[0]) if len(shapes) == 1 else [list(s) for s in shapes],
            "values": values,
            "float32_bits": 32 * values,
        }
        for bits in bits_list:
            link = SplitLink(bits, group_size, encoder=nn.Flatten())
            row[f"bits_{bits}"] = sum(link.payload_bits(torch.zeros(1, *s)) for s in shapes)
        rows.append(row)
    return rows


def _shape_text(shape: list) -> str:
    """``"32x4x4"``, or ``"16+16"`` for the shapes of several tensors crossing one cut."""
    if shape and isinstance(shape[0], list):
        return "+".join(map(_shape_text, shape))
    return "x".join(map(str, shape))


def format_split_point_table(rows: list[dict[str, Any]], marked: str | None = None) -> str:
    """The rows of :func:`split_point_sizes` as a table; ``marked`` gets a ``*``."""
    bit_keys = [key for key in rows[0] if key.startswith("bits_")]
    header = f"  {'cut':<9} {'shape':<8} {'values':>6} {'float32':>8}"
    header += "".join(f" {key[5:] + '-bit':>7}" for key in bit_keys)
    lines = [header, "-" * len(header)]
    for row in rows:
        mark = "*" if row["name"] == marked else " "
        shape = _shape_text(row["shape"])
        line = f"{mark} {row['name']:<9} {shape:<8} {row['values']:>6} {row['float32_bits']:>8}"
        lines.append(line + "".join(f" {row[key]:>7}" for key in bit_keys))
    return "\n".join(lines)
