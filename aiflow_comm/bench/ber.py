"""``aiflow-comm bench ber``: Monte-Carlo BER throughput of the library's digital link against
the same Sionna blocks composed by hand (uncoded QPSK over per-symbol Rayleigh fading)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from aiflow_comm.bench.timing import median_seconds, resolve_device
from aiflow_comm.channel.randomness import seeded_block

__all__ = ["BerBenchRow", "bench_ber", "format_ber_bench"]

ROW_BITS = 2048


@dataclass
class BerBenchRow:
    """One implementation's time per batch, its throughput and what it measured."""

    name: str
    num_bits: int
    seconds: float
    bits_per_second: float
    ber: float
    cost_vs_sionna: float

    def as_dict(self) -> dict:
        return asdict(self)


def _by_hand(rows: int, snr_db: float, device: torch.device) -> Callable[[], float]:
    """Sionna's blocks, wired directly: bits -> QAM -> h x + n -> zero forcing -> APP demapper."""
    from sionna.phy.channel import AWGN
    from sionna.phy.mapping import Demapper, Mapper
    from sionna.phy.utils import complex_normal

    where = {"precision": "single", "device": str(device)}
    mapper, demapper = Mapper("qam", 2, **where), Demapper("app", "qam", 2, **where)
    no = torch.tensor(10 ** (-snr_db / 10), device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    # Sionna's AWGN block drawing from the same generator: from Sionna's own global one, this
    # row changed from run to run (the bits and fades were seeded, the noise was not).
    awgn = seeded_block(AWGN, generator, **where)

    def run() -> float:
        bits = torch.randint(0, 2, (rows, ROW_BITS), generator=generator, device=device).float()
        x = mapper(bits)
        h = complex_normal(x.shape, device=str(device), generator=generator)
        y = awgn(h * x, no)
        llr = demapper(y / h, no / (h.real.square() + h.imag.square()))
        return float(((llr > 0).float() != bits).sum()) / bits.numel()

    return run


def _library(rows: int, snr_db: float, device: torch.device) -> Callable[[], float]:
    from aiflow_comm.channel.digital import DigitalLink
    from aiflow_comm.channel.fading import RayleighFading

    link = DigitalLink("qpsk", channel=RayleighFading("symbol", generator=0)).to(device)
    generator = torch.Generator(device=device).manual_seed(0)

    def run() -> float:
        bits = torch.randint(0, 2, (rows, ROW_BITS), generator=generator, device=device).float()
        result = link(bits, snr_db)
        return int(result.bit_errors) / int(result.num_bits)

    return run


def bench_ber(
    num_bits: int = 1 << 20,
    snr_db: float = 10.0,
    repeats: int = 7,
    device: str | torch.device = "cpu",
) -> list[BerBenchRow]:
    """Time both implementations on batches of ``num_bits`` bits, in one run, same device.

    ``cost_vs_sionna`` is the time ratio to the hand-wired Sionna blocks (1.0 for that row):
    the library's target is at most 1.10.

    >>> rows = bench_ber(num_bits=1 << 14, repeats=1)
    >>> [r.name for r in rows], rows[0].cost_vs_sionna
    (['sionna (by hand)', 'aiflow_comm DigitalLink'], 1.0)
    """
    if num_bits < ROW_BITS or repeats < 1:
        raise ValueError(f"num_bits must be >= {ROW_BITS} and repeats >= 1")
    device = resolve_device(device)
    rows = num_bits // ROW_BITS
    names = ("sionna (by hand)", "aiflow_comm DigitalLink")
    runs = [make(rows, snr_db, device) for make in (_by_hand, _library)]
    samples: list[list[float]] = [[], []]
    with torch.no_grad():
        bers = [run() for run in runs]  # warm-up, and what each measured
        for _ in range(repeats):  # alternate, so both see the same machine load
            for run, times in zip(runs, samples, strict=True):
                times.append(median_seconds(run, device, repeats=1, warmup=0))
    seconds = [sorted(times)[len(times) // 2] for times in samples]
    bits = rows * ROW_BITS
    return [
        BerBenchRow(name, bits, t, bits / t, ber, t / seconds[0])
        for name, t, ber in zip(names, seconds, bers, strict=True)
    ]


def format_ber_bench(rows: list[BerBenchRow]) -> str:
    """A plain-text table of :func:`bench_ber`'s rows."""
    lines = [f"{'implementation':<26} {'ms/batch':>9} {'Mbit/s':>8} {'BER':>10} {'cost':>6}"]
    for r in rows:
        lines.append(
            f"{r.name:<26} {r.seconds * 1e3:9.2f} {r.bits_per_second / 1e6:8.2f} "
            f"{r.ber:10.3e} {r.cost_vs_sionna:6.3f}"
        )
    return "\n".join(lines)
