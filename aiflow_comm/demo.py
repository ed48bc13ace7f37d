"""``aiflow-comm demo``: quantize real photos at 8, 4 and 2 bits and report what it costs."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from aiflow_comm.codec import dequantize, quantize
from aiflow_comm.data import sample_images

__all__ = ["QuantDemoRow", "format_demo_table", "psnr_db", "quantization_demo"]


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
