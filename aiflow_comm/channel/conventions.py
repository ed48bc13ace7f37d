"""SNR, noise and power conventions shared by every channel and link (see ``docs/channels.md``).

SNR is Es/N0 in dB per complex symbol. The noise variance is ``no = 10**(-snr_db/10)`` per
complex symbol and ``no/2`` per real dimension (Sionna's ``no``), for transmitters that send
symbols of unit average energy.
"""

from __future__ import annotations

import math
import numbers

import torch

from aiflow_comm.channel.complex_ops import scale

__all__ = [
    "check_complex",
    "ebno_db_to_snr_db",
    "normalize_power",
    "precision_of",
    "snr_db_to_ebno_db",
    "snr_db_to_no",
]

_PRECISIONS = {torch.complex64: "single", torch.complex128: "double"}
_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
_SNR_RANGE = (
    "snr_db must be finite, and high enough that the noise variance 10**(-snr_db/10) fits {1} "
    "(about -383 dB for float32); got {0}"
)


def check_complex(x: object, name: str = "x") -> torch.Tensor:
    """Return ``x`` if it is a complex64 or complex128 tensor, else raise ``TypeError``.

    >>> check_complex(torch.ones(2, dtype=torch.complex64)).dtype
    torch.complex64
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.dtype not in _PRECISIONS:
        hint = " (pair real features into complex symbols, e.g. with AnalogLink)" * (
            not x.is_complex()
        )
        raise TypeError(f"{name} must be complex64 or complex128; got {x.dtype}{hint}")
    return x


def precision_of(x: torch.Tensor) -> str:
    """Sionna's precision name (``"single"`` or ``"double"``) for a complex tensor's dtype."""
    return _PRECISIONS[check_complex(x).dtype]


def snr_db_to_no(snr_db: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Noise variance per complex symbol, shaped to broadcast against ``like``.

    ``snr_db`` is a number, a 0-d tensor, or a tensor whose shape is a prefix of ``like``'s
    shape (one SNR per example: shape ``(batch,)``). The result has ``like``'s real dtype and
    device, with trailing singleton dimensions added. A NaN or infinite SNR, or one so low that
    the noise variance overflows the dtype, raises ``ValueError`` (for a tensor on a CUDA
    device, not checked).

    >>> x = torch.zeros(3, 4, dtype=torch.complex64)
    >>> snr_db_to_no(torch.tensor([0.0, 10.0, 20.0]), x).flatten().tolist()
    [1.0, 0.10000000149011612, 0.009999999776482582]
    """
    real = like.real.dtype if like.is_complex() else like.dtype
    if isinstance(snr_db, bool) or not isinstance(snr_db, (numbers.Real, torch.Tensor)):
        raise TypeError(f"snr_db must be a number or a tensor; got {type(snr_db).__name__}")
    if not isinstance(snr_db, torch.Tensor):
        snr_db = float(snr_db)  # NumPy scalars too
        if not math.isfinite(snr_db) or -snr_db / 10.0 > math.log10(torch.finfo(real).max):
            raise ValueError(_SNR_RANGE.format(snr_db, real))
        return torch.tensor(10.0 ** (-snr_db / 10.0), dtype=real, device=like.device)
    if (
        snr_db.is_complex()
        or snr_db.dtype == torch.bool
        or not (snr_db.is_floating_point() or snr_db.dtype in _INT_DTYPES)
    ):
        raise TypeError(f"snr_db must be a real tensor; got {snr_db.dtype}")
    shape = tuple(snr_db.shape)
    if shape != tuple(like.shape[: len(shape)]):
        raise ValueError(
            f"snr_db of shape {shape} does not match the input of shape {tuple(like.shape)}: "
            "pass a number, a 0-d tensor, or one value per example (a prefix of the input's shape)"
        )
    snr_db = snr_db.to(device=like.device, dtype=real)
    no = torch.pow(10.0, -snr_db / 10.0)
    # NaN or +-inf SNRs, or a noise variance past the dtype's range, would pass as NaN or
    # noiseless outputs. Checked on the CPU only: on a GPU the check would wait for the device
    # on every call, and under torch.compile it would break the graph.
    checked = no.is_cpu and not torch.compiler.is_compiling()
    if checked and not bool((torch.isfinite(snr_db) & torch.isfinite(no)).all()):
        raise ValueError(_SNR_RANGE.format(snr_db.tolist(), real))
    return no.reshape(shape + (1,) * (like.dim() - len(shape)))


def ebno_db_to_snr_db(
    ebno_db: float | torch.Tensor, bits_per_symbol: int, code_rate: float = 1.0
) -> float | torch.Tensor:
    """Es/N0 in dB from Eb/N0 in dB: ``ebno_db + 10*log10(bits_per_symbol * code_rate)``.

    >>> round(ebno_db_to_snr_db(0.0, 2), 4)
    3.0103
    """
    _check_rate(bits_per_symbol, code_rate)
    _check_db(ebno_db, "ebno_db")
    return ebno_db + 10.0 * math.log10(bits_per_symbol * code_rate)


def snr_db_to_ebno_db(
    snr_db: float | torch.Tensor, bits_per_symbol: int, code_rate: float = 1.0
) -> float | torch.Tensor:
    """Eb/N0 in dB from Es/N0 in dB, the inverse of :func:`ebno_db_to_snr_db`.

    >>> round(snr_db_to_ebno_db(3.0103, 2), 4)
    0.0
    """
    _check_rate(bits_per_symbol, code_rate)
    _check_db(snr_db, "snr_db")
    return snr_db - 10.0 * math.log10(bits_per_symbol * code_rate)


def _check_db(value: object, name: str) -> None:
    """Raise unless ``value`` is a real number (finite) or a real floating-point tensor."""
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a real floating-point tensor; got {value.dtype}")
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number (dB) or a tensor; got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}")


def _check_rate(bits_per_symbol: int, code_rate: float) -> None:
    if isinstance(bits_per_symbol, bool) or not isinstance(bits_per_symbol, int):
        raise TypeError(f"bits_per_symbol must be an int; got {type(bits_per_symbol).__name__}")
    if bits_per_symbol < 1:
        raise ValueError(f"bits_per_symbol must be >= 1; got {bits_per_symbol}")
    if not 0.0 < code_rate <= 1.0:
        raise ValueError(f"code_rate must be in (0, 1]; got {code_rate}")


def normalize_power(
    x: torch.Tensor, batch_dims: int = 1, eps: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale each example of complex ``x`` to unit average energy per complex symbol.

    The first ``batch_dims`` dimensions index examples; the mean of ``|x|**2`` is taken over the
    rest (summed in float64: float32 squares overflow past about 1e19 and lose their digits
    below 1e-19). Returns ``(x / gain, gain)`` with ``gain = sqrt(mean |x|**2)`` shaped to
    broadcast against ``x``, at least ``sqrt(eps)`` (``None``: the dtype's smallest normal
    number, so that any example but an all-zero one, which stays zero, gets unit energy).
    Differentiable.

    >>> x = torch.tensor([[3 + 4j, 0j], [1j, 1j]])
    >>> y, gain = normalize_power(x)
    >>> [round(e, 5) for e in y.abs().pow(2).mean(dim=1).tolist()], gain.flatten().tolist()
    ([1.0, 1.0], [3.535533905029297, 1.0])
    """
    check_complex(x)
    if not 0 <= batch_dims < x.dim():
        raise ValueError(
            f"batch_dims must be in [0, {x.dim() - 1}] for a {x.dim()}-D x; got {batch_dims}"
        )
    pairs = torch.view_as_real(x)
    rms = root_mean_square(pairs, tuple(range(batch_dims, pairs.dim())))
    gain = rms[..., 0].clamp_min(rms_floor(pairs.dtype, eps))
    return scale(x, 1.0 / gain), gain


def root_mean_square(pairs: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """``sqrt(sum(pairs**2 over dims) / count)`` per example, ``count`` the number of complex
    symbols (the last dimension of ``pairs``, a real view, holds their two parts), kept
    dimensions. Summed in float64 (in ``pairs``' dtype after), so that no float32 or narrower
    value overflows or underflows when squared; float64 values are scaled by their example's
    largest magnitude first (squared, 1e160 overflows and 1e-200 vanishes).

    >>> root_mean_square(torch.tensor([[[3.0, 4.0], [0.0, 0.0]]]), (1, 2)).flatten().tolist()
    [3.535533905029297]
    """
    count = math.prod(pairs.shape[d] for d in dims) // 2
    scale = 1.0
    if pairs.dtype == torch.float64 and pairs.numel():
        peak = pairs.abs().amax(dim=dims, keepdim=True)
        scale = torch.where(peak > 0, peak, torch.ones_like(peak))
        pairs = pairs / scale
    norm = torch.linalg.vector_norm(pairs, dim=dims, keepdim=True, dtype=torch.float64) * scale
    return (norm / math.sqrt(max(count, 1))).to(pairs.dtype)


def rms_floor(dtype: torch.dtype, eps: float | None) -> float:
    """The least gain a power normalization divides by: ``sqrt(eps)``, or with ``None`` the
    smallest normal number of ``dtype`` (``1 / floor`` still fits it).

    >>> rms_floor(torch.float32, 1e-12), rms_floor(torch.float32, None) == 2.0**-126
    (1e-06, True)
    """
    return math.sqrt(eps) if eps is not None else torch.finfo(dtype).tiny
