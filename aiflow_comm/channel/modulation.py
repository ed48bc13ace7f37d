"""Names of the digital modulations the library knows, and their bits per symbol."""

from __future__ import annotations

import numbers

__all__ = ["MODULATIONS", "bits_per_symbol", "check_modulation"]

MODULATIONS = ("bpsk", "qpsk", "16qam", "64qam", "256qam")

_BITS = {"bpsk": 1, "qpsk": 2, "16qam": 4, "64qam": 6, "256qam": 8}
_BY_POINTS = {2**bits: name for name, bits in _BITS.items()}
_ALIASES = {"4qam": "qpsk"}


def check_modulation(modulation: str | int) -> str:
    """Canonical name of ``modulation``: one of :data:`MODULATIONS`.

    Accepts the names in any case (``"16QAM"``), ``"4qam"`` for ``"qpsk"``, and the number of
    constellation points as an int (2, 4, 16, 64, 256). Anything else raises ``ValueError``
    (``TypeError`` for a value that is neither a string nor an int).

    >>> check_modulation("16QAM"), check_modulation(4)
    ('16qam', 'qpsk')
    """
    if isinstance(modulation, str):
        name = modulation.strip().lower()
        name = _ALIASES.get(name, name)
        if name in _BITS:
            return name
    elif isinstance(modulation, numbers.Integral) and not isinstance(modulation, bool):
        if int(modulation) in _BY_POINTS:
            return _BY_POINTS[int(modulation)]
    else:
        raise TypeError(
            f"modulation must be a name or a number of points; got {type(modulation).__name__}"
        )
    raise ValueError(
        f"modulation must be one of {MODULATIONS} (any case) or a number of points "
        f"{tuple(_BY_POINTS)}; got {modulation!r}"
    )


def bits_per_symbol(modulation: str | int) -> int:
    """Bits carried by one symbol of ``modulation`` (``log2`` of its number of points).

    >>> bits_per_symbol("bpsk"), bits_per_symbol("64qam")
    (1, 6)
    """
    return _BITS[check_modulation(modulation)]
