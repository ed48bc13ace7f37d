"""Physical layer on Sionna 2.x: channels, receivers, analog and digital links, theory.

Conventions (``docs/channels.md``): complex baseband; SNR is Es/N0 in dB per complex symbol;
noise variance ``no = 10**(-snr_db/10)`` per complex symbol, ``no/2`` per real dimension;
fading gains have ``E|h|^2 = 1``; equalization is an explicit choice.
"""

from aiflow_comm.channel.awgn import AWGN
from aiflow_comm.channel.conventions import (
    ebno_db_to_snr_db,
    normalize_power,
    snr_db_to_ebno_db,
    snr_db_to_no,
)
from aiflow_comm.channel.equalization import EQUALIZERS, equalize
from aiflow_comm.channel.fading import RayleighFading, RicianFading
from aiflow_comm.channel.randomness import RandomSource
from aiflow_comm.channel.state import ChannelState

__all__ = [
    "AWGN",
    "EQUALIZERS",
    "ChannelState",
    "RandomSource",
    "RayleighFading",
    "RicianFading",
    "ebno_db_to_snr_db",
    "equalize",
    "normalize_power",
    "snr_db_to_ebno_db",
    "snr_db_to_no",
]
