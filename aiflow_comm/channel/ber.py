"""Monte-Carlo bit and block error rates of a :class:`DigitalLink`, beside the closed forms."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from aiflow_comm.channel.modulation import bits_per_symbol, check_modulation
from aiflow_comm.channel.theory import ber_awgn, ber_rayleigh

__all__ = ["BER_CHANNELS", "BerPoint", "format_ber_table", "simulate_ber"]

BER_CHANNELS = ("awgn", "rayleigh")
_ROW_SYMBOLS = 1024  # symbols per row of an uncoded batch


@dataclass(frozen=True)
class BerPoint:
    """One Eb/N0 point of a Monte-Carlo run. Block fields are ``None`` for uncoded links."""

    ebno_db: float
    ber: float
    bit_errors: int
    num_bits: int
    bler: float | None
    block_errors: int | None
    num_blocks: int | None
    theory_ber: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _make_channel(channel: str, seed: int) -> torch.nn.Module:
    # Sionna loads here, not on import: the CLI builds its parser from this module's names.
    from aiflow_comm.channel.awgn import AWGN
    from aiflow_comm.channel.fading import RayleighFading

    if channel == "awgn":
        return AWGN(generator=seed)
    if channel == "rayleigh":
        return RayleighFading("symbol", generator=seed)
    raise ValueError(f"channel must be one of {BER_CHANNELS}; got {channel!r}")


def _check_positive(name: str, value: int | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")


def _ebno_points(ebno_db: object) -> list[float]:
    """``ebno_db`` (a number, a sequence, an array or a tensor) as a non-empty list of finite
    floats; raise ``ValueError``/``TypeError`` naming it otherwise."""
    if isinstance(ebno_db, torch.Tensor | np.ndarray):
        ebno_db = ebno_db.tolist()
    if isinstance(ebno_db, int | float) and not isinstance(ebno_db, bool):
        ebno_db = [ebno_db]
    try:
        points = [float(e) for e in ebno_db]
    except (TypeError, ValueError):
        raise TypeError(f"ebno_db must be numbers in dB; got {ebno_db!r}") from None
    if not points:
        raise ValueError("ebno_db must hold at least one value")
    if any(not math.isfinite(e) for e in points):
        raise ValueError(f"ebno_db values must be finite; got {points}")
    return points


def simulate_ber(
    modulation: str = "qpsk",
    channel: str = "awgn",
    ebno_db: Sequence[float] | float | torch.Tensor | np.ndarray = (0.0, 2.0, 4.0, 6.0),
    num_bits: int = 1_000_000,
    *,
    ldpc_k: int | None = None,
    ldpc_n: int | None = None,
    max_block_errors: int | None = None,
    batch_bits: int = 1 << 18,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
) -> list[BerPoint]:
    """Bit error rate (and block error rate when LDPC-coded) of a digital link per Eb/N0.

    Sends at least ``num_bits`` random information bits per Eb/N0 point (``ebno_db``: one
    number in dB, or several, as a sequence, an array or a 1-D tensor) through a
    :class:`DigitalLink` (Gray ``modulation``, ``channel`` ``"awgn"`` or ``"rayleigh"``: flat
    fading with a new CN(0, 1) gain per symbol, perfect CSI, zero forcing), in batches of about
    ``batch_bits`` bits, stopping a point early once ``max_block_errors`` codewords were wrong
    (checked after each batch). ``theory_ber`` is the closed form for
    uncoded links (``None`` when coded); uncoded runs decide each bit from max-log LLRs, which
    is the nearest-point decision the closed forms assume (APP decisions err slightly less at
    low SNR), and coded runs decode APP LLRs. ``progress``: a bar on stderr (``None``: only on a
    terminal).

    >>> points = simulate_ber("qpsk", "awgn", [4.0], num_bits=20000, seed=1, progress=False)
    >>> p = points[0]
    >>> p.num_bits >= 20000 and abs(p.ber - p.theory_ber) < 0.01
    True
    """
    modulation = check_modulation(modulation)
    _check_positive("num_bits", num_bits)
    _check_positive("batch_bits", batch_bits)
    _check_positive("max_block_errors", max_block_errors, allow_none=True)
    ebno_db = _ebno_points(ebno_db)
    from aiflow_comm.channel.digital import DigitalLink

    device = torch.device(device)
    coded = ldpc_k is not None
    # Uncoded: max-log hard decisions are the nearest-point (symbol) decisions the closed forms
    # assume; bit-wise APP decisions would err slightly less at low SNR. Coded: APP LLRs.
    link = DigitalLink(
        modulation,
        channel=_make_channel(channel, seed),
        ldpc_k=ldpc_k,
        ldpc_n=ldpc_n,
        demapping="app" if coded else "maxlog",
    ).to(device)
    row_bits = ldpc_k if coded else _ROW_SYMBOLS * bits_per_symbol(modulation)
    rows = max(1, min(batch_bits // row_bits, math.ceil(num_bits / row_bits)))
    source = torch.Generator(device=device).manual_seed(seed)
    theory = ber_awgn if channel == "awgn" else ber_rayleigh
    points = []
    bar = tqdm(total=num_bits * len(ebno_db), unit="bit", unit_scale=True, disable=_quiet(progress))
    with bar, torch.no_grad():
        for ebno in ebno_db:
            snr_db = link.snr_db_for(float(ebno))
            bit_errors = num_sent = block_errors = num_blocks = 0
            while num_sent < num_bits:
                bits = torch.randint(0, 2, (rows, row_bits), generator=source, device=device)
                result = link(bits.float(), snr_db)
                bit_errors += int(result.bit_errors)
                num_sent += int(result.num_bits)
                if coded:
                    block_errors += int(result.block_errors)
                    num_blocks += int(result.num_blocks)
                bar.update(min(int(result.num_bits), num_bits - (num_sent - int(result.num_bits))))
                if coded and max_block_errors is not None and block_errors >= max_block_errors:
                    break
            points.append(
                BerPoint(
                    ebno_db=float(ebno),
                    ber=bit_errors / num_sent,
                    bit_errors=bit_errors,
                    num_bits=num_sent,
                    bler=block_errors / num_blocks if coded else None,
                    block_errors=block_errors if coded else None,
                    num_blocks=num_blocks if coded else None,
                    theory_ber=None if coded else float(theory(modulation, float(ebno))),
                )
            )
    return points


def _quiet(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


def format_ber_table(points: Sequence[BerPoint]) -> str:
    """A plain-text table of :func:`simulate_ber`'s points."""

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.3e}"

    lines = [
        f"{'Eb/N0 dB':>8} {'BER':>10} {'theory':>10} {'bit errors':>11} {'bits':>11} "
        f"{'BLER':>10} {'blocks':>8}"
    ]
    for p in points:
        lines.append(
            f"{p.ebno_db:8.2f} {number(p.ber):>10} {number(p.theory_ber):>10} "
            f"{p.bit_errors:11d} {p.num_bits:11d} {number(p.bler):>10} "
            f"{'-' if p.num_blocks is None else p.num_blocks:>8}"
        )
    return "\n".join(lines)
