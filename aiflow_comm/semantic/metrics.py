"""Task metrics of semantic communication: PSNR, SDR (and its OPTA bound) and accuracy."""

from __future__ import annotations

import math
import numbers

import torch

__all__ = ["accuracy", "one_plus_snr_db", "opta_sdr_db", "psnr_db", "sdr_db"]


def _check_tensor(name: str, value: object) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
    if value.is_complex():
        raise TypeError(f"{name} must be a real tensor; got {value.dtype}")


def _check_pair(reference: torch.Tensor, estimate: torch.Tensor) -> None:
    _check_tensor("reference", reference)
    _check_tensor("estimate", estimate)
    if reference.shape != estimate.shape:
        raise ValueError(
            f"reference and estimate must have the same shape; got {tuple(reference.shape)} "
            f"and {tuple(estimate.shape)}"
        )


def psnr_db(
    reference: torch.Tensor, estimate: torch.Tensor, max_value: float = 1.0
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per example: ``10 log10(max_value^2 / MSE)``.

    The first dimension indexes examples; returns a tensor of shape ``(batch,)`` (average it
    yourself: the mean of per-image PSNRs is the usual figure).

    >>> x = torch.zeros(2, 3, 4, 4)
    >>> psnr_db(x, x + 0.1).tolist()
    [20.0, 20.0]
    """
    _check_pair(reference, estimate)
    if isinstance(max_value, bool) or not isinstance(max_value, numbers.Real | torch.Tensor):
        raise TypeError(f"max_value must be a number > 0; got {type(max_value).__name__}")
    if isinstance(max_value, torch.Tensor) and max_value.numel() != 1:  # one peak for all
        raise ValueError(
            f"max_value must be a number or a one-value tensor; got shape {tuple(max_value.shape)}"
        )
    if not (math.isfinite(max_value) and max_value > 0):
        raise ValueError(f"max_value must be a finite number > 0; got {max_value}")
    if reference.dim() < 2:
        raise ValueError(
            f"reference and estimate must be (batch, ...) with at least 2 dimensions (one PSNR "
            f"per example); got shape {tuple(reference.shape)}"
        )
    error = (reference.double() - estimate.double()).pow(2).flatten(1).mean(dim=1)
    return (10 * torch.log10(max_value**2 / error)).float()


def sdr_db(reference: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """Signal-to-distortion ratio in dB over the batch: ``10 log10(sum x^2 / sum (x - x_hat)^2)``.

    For i.i.d. Gaussian sources this is the quantity Shannon's rate-distortion bound (OPTA)
    limits over AWGN: ``sdr_db <= 2 * ratio * 10 log10(1 + snr)`` (:func:`opta_sdr_db`).

    >>> x = torch.ones(4, 10)
    >>> round(float(sdr_db(x, 0.9 * x)), 3)
    20.0
    """
    _check_pair(reference, estimate)
    reference, estimate = reference.double(), estimate.double()
    signal = reference.pow(2).sum()
    distortion = (reference - estimate).pow(2).sum()
    return (10 * torch.log10(signal / distortion)).float()


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of examples whose largest logit is the label.

    >>> accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))
    0.5
    """
    _check_tensor("logits", logits)
    _check_tensor("labels", labels)
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(
            f"logits must be (batch, classes) and labels (batch,); got {tuple(logits.shape)} "
            f"and {tuple(labels.shape)}"
        )
    return float((logits.argmax(dim=1) == labels).float().mean())


def opta_sdr_db(ratio: float, snr_db: float) -> float:
    """Best SDR in dB any scheme reaches for an i.i.d. Gaussian source over AWGN (OPTA).

    With ``ratio`` complex channel uses per real source value, rate-distortion
    ``R(D) = 1/2 log2(var / D)`` bits per value meets capacity ``log2(1 + snr)`` per use:
    ``10 log10(var / D) <= 2 * ratio * 10 log10(1 + 10**(snr_db/10))``.

    >>> round(opta_sdr_db(1.0, 10.0), 3), round(opta_sdr_db(0.5, 0.0), 3)
    (20.828, 3.01)
    """
    if (
        isinstance(ratio, bool)
        or not isinstance(ratio, numbers.Real)
        or not (math.isfinite(ratio) and ratio > 0)
    ):
        raise ValueError(f"ratio must be a finite number > 0; got {ratio!r}")
    if isinstance(snr_db, bool) or not isinstance(snr_db, numbers.Real):
        raise TypeError(f"snr_db must be a number; got {type(snr_db).__name__}")
    if not math.isfinite(snr_db):
        raise ValueError(f"snr_db must be finite; got {snr_db}")
    return 2.0 * ratio * one_plus_snr_db(snr_db)


def one_plus_snr_db(snr_db: float) -> float:
    """``10 log10(1 + 10**(snr_db / 10))``, capacity in dB terms, at any finite ``snr_db``:
    above 0 dB as ``snr_db + 10 log10(1 + 10**(-snr_db / 10))``, whose power never overflows
    (``10**(snr_db / 10)`` does past about 3083 dB), and through ``log1p``, which keeps the
    digits of a tiny SNR (``1 + 1e-30`` is 1).

    >>> round(one_plus_snr_db(0.0), 4), one_plus_snr_db(5000.0)
    (3.0103, 5000.0)
    """
    tens = 10.0 / math.log(10.0)
    if snr_db > 0:
        return snr_db + tens * math.log1p(10.0 ** (-snr_db / 10.0))
    return tens * math.log1p(10.0 ** (snr_db / 10.0))
