"""Physical layer on Sionna 2.x: channels, receivers, analog and digital links, theory.

Conventions (``docs/channels.md``): complex baseband; SNR is Es/N0 in dB per complex symbol;
noise variance ``no = 10**(-snr_db/10)`` per complex symbol, ``no/2`` per real dimension;
fading gains have ``E|h|^2 = 1``; equalization is an explicit choice.

Names load on first use, so ``import aiflow_comm.channel`` does not import Sionna until a
channel is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_SOURCES = {
    "AWGN": "awgn",
    "AnalogLink": "analog",
    "ChannelState": "state",
    "DigitalLink": "digital",
    "LinkResult": "digital",
    "bit_flip_ste": "digital",
    "quantized_bit_flip_ste": "digital",
    "simulate_ber": "ber",
    "EQUALIZERS": "equalization",
    "MODULATIONS": "modulation",
    "OFDMChannel": "ofdm",
    "RandomSource": "randomness",
    "RayleighFading": "fading",
    "RicianFading": "fading",
    "bits_per_symbol": "modulation",
    "ebno_db_to_snr_db": "conventions",
    "equalize": "equalization",
    "normalize_power": "conventions",
    "snr_db_to_ebno_db": "conventions",
    "snr_db_to_no": "conventions",
}

__all__ = [
    "AWGN",
    "EQUALIZERS",
    "MODULATIONS",
    "AnalogLink",
    "ChannelState",
    "DigitalLink",
    "LinkResult",
    "OFDMChannel",
    "RandomSource",
    "RayleighFading",
    "RicianFading",
    "bit_flip_ste",
    "bits_per_symbol",
    "ebno_db_to_snr_db",
    "equalize",
    "normalize_power",
    "quantized_bit_flip_ste",
    "simulate_ber",
    "snr_db_to_ebno_db",
    "snr_db_to_no",
]


def __getattr__(name: str) -> object:
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from aiflow_comm.channel.analog import AnalogLink
    from aiflow_comm.channel.awgn import AWGN
    from aiflow_comm.channel.ber import simulate_ber
    from aiflow_comm.channel.conventions import (
        ebno_db_to_snr_db,
        normalize_power,
        snr_db_to_ebno_db,
        snr_db_to_no,
    )
    from aiflow_comm.channel.digital import (
        DigitalLink,
        LinkResult,
        bit_flip_ste,
        quantized_bit_flip_ste,
    )
    from aiflow_comm.channel.equalization import EQUALIZERS, equalize
    from aiflow_comm.channel.fading import RayleighFading, RicianFading
    from aiflow_comm.channel.modulation import MODULATIONS, bits_per_symbol
    from aiflow_comm.channel.ofdm import OFDMChannel
    from aiflow_comm.channel.randomness import RandomSource
    from aiflow_comm.channel.state import ChannelState
