"""Recipe ``images``: deep JSCC on patches of real photos against quantize + LDPC + QAM."""

from __future__ import annotations

import argparse
import math
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from aiflow_comm.recipes.runner import (
    check_positive,
    check_snr_values,
    torch_threads,
    tqdm_disable,
)

__all__ = [
    "CHANNELS",
    "DEFAULT_TEST_PHOTOS",
    "MAX_CODE_RATE",
    "MODULATIONS",
    "PHOTOS",
    "PSNR_CAP_DB",
    "DigitalScheme",
    "SourceCode",
    "add_arguments",
    "choose_digital",
    "format_table",
    "load_photo",
    "make_channel",
    "plot",
    "random_patches",
    "run",
    "tile_patches",
]

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "china", "flower")
"""RGB photos that ship in packages: scikit-image's ``astronaut``, ``chelsea``, ``coffee``,
``rocket`` and ``motorcycle`` (the left view of ``stereo_motorcycle``), scikit-learn's
``china`` and ``flower`` (``load_sample_image``)."""

DEFAULT_TEST_PHOTOS = ("chelsea", "flower")
"""Photos held out for testing by default: no patch of them is seen in training."""

CHANNELS = ("awgn", "rayleigh")
MODULATIONS = ("qpsk", "16qam", "64qam", "256qam")
MAX_CODE_RATE = 2 / 3
"""Link adaptation moves to the next QAM order above this LDPC code rate (5G NR's MCS tables
switch near it); the largest order goes up to Sionna's limit, 0.95."""

PSNR_CAP_DB = 10 * math.log10(12 * 255**2)
"""Per-patch PSNR cap, 58.9 dB: an error below the photos' own 8-bit rounding noise (MSE
``1 / (12 * 255^2)``) counts as that noise, so a flat patch rebuilt exactly is not infinite."""

_MIN_CODE_RATE = 0.2  # Sionna's 5G LDPC range is [1/5, 0.95]
_TOP_CODE_RATE = 0.95
_MAX_LDPC_K = 8448
_CRC_BITS = 32
_SIDE_BITS = 64  # the float32 scale and zero point of the patch's quantization group
_DEFAULT_SNR_DB = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0)
_SMOKE_SNR_DB = (4.0, 10.0)
_SMOKE_STEPS = 3
_SMOKE_TEST_PATCHES = 16
_SMOKE_CALIBRATION = 8
_LINK_BATCH = 64
_EVAL_BATCH = 128
# Full-range BT.601 (JPEG) RGB -> YCbCr, chroma offset by 1/2 so that all planes lie in [0, 1].
_YCBCR = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
)
_YCBCR_OFFSET = torch.tensor([0.0, 0.5, 0.5])


def load_photo(name: str) -> torch.Tensor:
    """One of :data:`PHOTOS` as float32 ``(3, H, W)`` in ``[0, 1]`` (offline: files in packages).

    >>> tuple(load_photo("flower").shape)
    (3, 427, 640)
    """
    if name not in PHOTOS:
        raise ValueError(f"photo must be one of {PHOTOS}; got {name!r}")
    if name in ("china", "flower"):
        try:
            from sklearn.datasets import load_sample_image
        except ImportError as error:
            raise ImportError(
                "the images recipe needs scikit-learn: pip install 'aiflow-comm[examples]'"
            ) from error
        pixels = load_sample_image(f"{name}.jpg")
    elif name == "motorcycle":
        try:
            from skimage import data
        except ImportError as error:
            raise ImportError(
                "the images recipe needs scikit-image: pip install 'aiflow-comm[examples]'"
            ) from error
        pixels = data.stereo_motorcycle()[0]
    else:
        from aiflow_comm.data import sample_images

        return sample_images([name])[0]
    return torch.from_numpy(np.array(pixels)).float().div(255.0).permute(2, 0, 1)


def random_patches(
    photos: Sequence[torch.Tensor], count: int, size: int, generator: torch.Generator
) -> torch.Tensor:
    """``count`` random ``size x size`` crops ``(count, 3, size, size)``, randomly mirrored.

    A photo is drawn with probability proportional to its area, then a uniform position in it.
    """
    areas = torch.tensor([float(p.shape[1] * p.shape[2]) for p in photos])
    which = torch.multinomial(areas, count, replacement=True, generator=generator)
    draws = torch.rand(count, 3, generator=generator)
    crops = []
    for index, (u, v, flip) in zip(which.tolist(), draws.tolist(), strict=True):
        photo = photos[index]
        top = int(u * (photo.shape[1] - size + 1))
        left = int(v * (photo.shape[2] - size + 1))
        crop = photo[:, top : top + size, left : left + size]
        crops.append(crop.flip(-1) if flip < 0.5 else crop)
    return torch.stack(crops)


def tile_patches(
    photos: Sequence[torch.Tensor], size: int, count: int | None, generator: torch.Generator
) -> torch.Tensor:
    """Non-overlapping ``size x size`` tiles of ``photos`` (a grid from the top-left corner).

    With ``count`` below the number of tiles, ``count`` of them drawn without replacement
    (kept in photo and raster order).
    """
    tiles = [
        photo.unfold(1, size, size)
        .unfold(2, size, size)
        .permute(1, 2, 0, 3, 4)
        .reshape(-1, 3, size, size)
        for photo in photos
    ]
    patches = torch.cat(tiles)
    if count is not None and count < len(patches):
        keep = torch.randperm(len(patches), generator=generator)[:count].sort().values
        patches = patches[keep]
    return patches.contiguous()


def make_channel(channel: str, seed: int) -> nn.Module:
    """``"awgn"`` or ``"rayleigh"`` (flat fading, one ``h ~ CN(0, 1)`` per patch) from ``seed``.

    >>> make_channel("rayleigh", 0).coherence
    'example'
    """
    from aiflow_comm.channel import AWGN, RayleighFading

    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}; got {channel!r}")
    if channel == "awgn":
        return AWGN(generator=seed)
    return RayleighFading("example", generator=seed)


@dataclass(frozen=True)
class SourceCode:
    """The digital baseline's source code for ``size x size`` RGB patches.

    RGB to full-range YCbCr (JPEG's BT.601), luma averaged down to ``luma x luma`` and
    chroma to ``chroma x chroma`` (4:2:0: ``chroma = max(1, luma // 2)``), all the values of
    a patch quantized as one asymmetric group with :func:`~aiflow_comm.codec.quantize`
    (``bits`` per value, a float32 scale and zero point). The receiver dequantizes, upsamples
    bilinearly and converts back to RGB in ``[0, 1]``.

    A packet is the codes' bytes, the scale and the zero point (float32, little-endian) and a
    CRC32 of them: :attr:`payload_bits` bits.

    >>> code = SourceCode(size=32, luma=8, bits=4)
    >>> code.values, code.payload_bits
    (96, 480)
    """

    size: int
    luma: int
    bits: int

    @property
    def chroma(self) -> int:
        """Side of the subsampled chroma planes (4:2:0)."""
        return max(1, self.luma // 2)

    @property
    def values(self) -> int:
        """Quantized values per patch: ``luma^2 + 2 chroma^2``."""
        return self.luma**2 + 2 * self.chroma**2

    @property
    def code_bytes(self) -> int:
        """Bytes of packed codes per patch."""
        return math.ceil(self.values * self.bits / 8)

    @property
    def payload_bits(self) -> int:
        """Bits per packet: codes, scale and zero point, CRC32."""
        return 8 * self.code_bytes + _SIDE_BITS + _CRC_BITS

    def describe(self) -> str:
        """A short name: ``"Y 8x8 + CbCr 4x4, 4 bits"``."""
        return f"Y {self.luma}x{self.luma} + CbCr {self.chroma}x{self.chroma}, {self.bits} bits"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Packets ``(batch, payload_bits // 8)`` uint8 for patches ``(batch, 3, size, size)``."""
        from aiflow_comm.codec import quantize

        ycc = torch.einsum("ij,bjhw->bihw", _YCBCR, x) + _YCBCR_OFFSET.view(1, 3, 1, 1)
        luma = F.adaptive_avg_pool2d(ycc[:, :1], self.luma).flatten(1)
        chroma = F.adaptive_avg_pool2d(ycc[:, 1:], self.chroma).flatten(1)
        q = quantize(
            torch.cat([luma, chroma], dim=1).contiguous(),
            self.bits,
            self.values,
            symmetric=False,
        )
        side = torch.cat([q.scales, q.zero_points], dim=1).numpy().astype("<f4")
        body = np.concatenate([q.codes.numpy(), side.view(np.uint8)], axis=1)
        crc = np.array([zlib.crc32(row.tobytes()) for row in body], dtype="<u4")
        return torch.from_numpy(np.concatenate([body, crc[:, None].view(np.uint8)], axis=1))

    def decode(
        self, packets: torch.Tensor, concealment: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Patches from received ``packets`` and a bool ``(batch,)``: which packets were lost.

        A packet whose CRC32 fails (or whose scale or zero point is not finite) is lost: its
        patch is the ``concealment`` RGB colour ``(3,)`` everywhere.
        """
        from aiflow_comm.codec import QuantizedTensor

        raw = packets.numpy()
        body, crc = raw[:, :-4], raw[:, -4:].copy().view("<u4")[:, 0]
        side = body[:, self.code_bytes :].copy().view("<f4").astype(np.float32)
        ok = np.array([zlib.crc32(row.tobytes()) for row in body], dtype=np.uint32) == crc
        ok &= np.isfinite(side).all(axis=1)
        side[~ok] = 0.0  # placeholders: those patches are concealed below
        side_t = torch.from_numpy(side)
        q = QuantizedTensor(
            torch.from_numpy(np.ascontiguousarray(body[:, : self.code_bytes])),
            side_t[:, :1].contiguous(),
            side_t[:, 1:].contiguous(),
            (len(raw), self.values),
            torch.float32,
            self.bits,
            self.values,
            "asymmetric",
        )
        values = q.dequantize()
        batch, luma, chroma = len(raw), self.luma, self.chroma
        planes = torch.cat(
            [
                _upsample(values[:, : luma * luma].reshape(batch, 1, luma, luma), self.size),
                _upsample(values[:, luma * luma :].reshape(batch, 2, chroma, chroma), self.size),
            ],
            dim=1,
        )
        ycc = planes - _YCBCR_OFFSET.view(1, 3, 1, 1)
        rgb = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_YCBCR), ycc).clamp(0.0, 1.0)
        lost = torch.from_numpy(~ok)
        rgb[lost] = concealment.view(3, 1, 1).to(rgb.dtype)
        return rgb, lost


def _psnr_db(reference: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """Per-patch PSNR (:func:`~aiflow_comm.semantic.psnr_db`), capped at :data:`PSNR_CAP_DB`."""
    from aiflow_comm.semantic import psnr_db

    return psnr_db(reference, estimate).clamp(max=PSNR_CAP_DB)


def _mean_psnr_db(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    return float(_psnr_db(reference, estimate).mean())


def _upsample(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def _packets_to_bits(packets: torch.Tensor) -> torch.Tensor:
    shifts = torch.arange(8, dtype=torch.uint8)
    return ((packets[:, :, None] >> shifts) & 1).reshape(len(packets), -1)


def _bits_to_packets(bits: torch.Tensor) -> torch.Tensor:
    shifts = torch.arange(8, dtype=torch.int32)
    grouped = bits.reshape(len(bits), -1, 8).to(torch.int32) << shifts
    return grouped.sum(dim=2).to(torch.uint8)


@dataclass(frozen=True)
class DigitalScheme:
    """A :class:`SourceCode` sent as one 5G LDPC codeword per patch over Gray QAM.

    The codeword fills the channel-use budget exactly: ``ldpc_k = payload_bits`` information
    bits, ``ldpc_n = channel_uses * bits_per_symbol`` coded bits.
    """

    source: SourceCode
    modulation: str
    channel_uses: int

    @property
    def bits_per_symbol(self) -> int:
        """Bits per QAM symbol."""
        from aiflow_comm.channel import bits_per_symbol

        return bits_per_symbol(self.modulation)

    @property
    def ldpc_n(self) -> int:
        """Coded bits per patch: every channel use carries ``bits_per_symbol`` of them."""
        return self.channel_uses * self.bits_per_symbol

    @property
    def code_rate(self) -> float:
        """``payload_bits / ldpc_n``."""
        return self.source.payload_bits / self.ldpc_n

    @classmethod
    def fitting(cls, source: SourceCode, channel_uses: int) -> DigitalScheme | None:
        """The scheme carrying ``source`` in ``channel_uses``, or ``None`` when none fits.

        The modulation is the smallest QAM order whose code rate is at most
        :data:`MAX_CODE_RATE` (256-QAM up to 0.95); the rate must be at least 1/5, the
        payload at most 8448 bits (one 5G LDPC codeword), and the code one Sionna builds
        (:func:`~aiflow_comm.channel.digital.ldpc_code_exists`: above 3840 bits, a rate over 1/3).
        """
        from aiflow_comm.channel.digital import ldpc_code_exists

        if source.payload_bits > _MAX_LDPC_K:
            return None
        for modulation in MODULATIONS:
            scheme = cls(source, modulation, channel_uses)
            top = _TOP_CODE_RATE if modulation == MODULATIONS[-1] else MAX_CODE_RATE
            if scheme.code_rate <= top:
                usable = scheme.code_rate >= _MIN_CODE_RATE and ldpc_code_exists(
                    source.payload_bits, scheme.ldpc_n
                )
                return scheme if usable else None
        return None

    def describe(self) -> str:
        """``"Y 8x8 + CbCr 4x4, 4 bits; 16qam, LDPC rate 0.47"``."""
        return f"{self.source.describe()}; {self.modulation}, LDPC rate {self.code_rate:.3f}"

    def link(self, channel: nn.Module) -> nn.Module:
        """A :class:`~aiflow_comm.channel.DigitalLink` for this scheme over ``channel``."""
        from aiflow_comm.channel import DigitalLink

        return DigitalLink(
            self.modulation,
            channel=channel,
            ldpc_k=self.source.payload_bits,
            ldpc_n=self.ldpc_n,
        )

    def transmit(
        self,
        x: torch.Tensor,
        snr_db: float,
        channel: nn.Module,
        concealment: torch.Tensor,
        batch_size: int = _LINK_BATCH,
    ) -> tuple[torch.Tensor, float]:
        """Patches received over ``channel`` at ``snr_db`` and the fraction of lost packets."""
        link = self.link(channel)
        received, lost = [], []
        for start in range(0, len(x), batch_size):
            packets = self.source.encode(x[start : start + batch_size])
            result = link(_packets_to_bits(packets), snr_db)
            patches, missing = self.source.decode(_bits_to_packets(result.bits), concealment)
            received.append(patches)
            lost.append(missing)
        return torch.cat(received), float(torch.cat(lost).float().mean())


def choose_digital(
    calibration: torch.Tensor,
    channel_uses: int,
    channel: str,
    train_snr_db: float,
    target_bler: float,
    concealment: torch.Tensor,
    seed: int,
) -> tuple[DigitalScheme, list[dict[str, Any]]]:
    """Link adaptation for the training SNR, on training patches ``calibration``.

    Candidates: every :class:`SourceCode` with an even luma side from 4 to the patch size and
    2, 4 or 8 bits, each with the modulation :meth:`DigitalScheme.fitting` gives. Those on
    the Pareto front of (payload, error-free PSNR on ``calibration``) are ordered by payload;
    a binary search finds the largest whose packet loss rate, measured over the real link at
    ``train_snr_db``, is at most ``target_bler`` (the smallest candidate when none is).

    Returns the scheme and the search log: one dict per candidate tried.
    """
    size = calibration.shape[-1]
    front: list[tuple[DigitalScheme, float]] = []
    candidates = []
    for luma in range(4, size + 1, 2):
        for bits in (2, 4, 8):
            scheme = DigitalScheme.fitting(SourceCode(size, luma, bits), channel_uses)
            if scheme is not None:
                candidates.append(scheme)
    if not candidates:
        raise ValueError(
            f"no digital scheme fits {channel_uses} channel uses per patch (one LDPC codeword "
            "of rate 1/5 to 0.95 on QPSK to 256-QAM): change --ratio or --patch"
        )
    zero = torch.zeros(3)
    for scheme in sorted(candidates, key=lambda s: s.source.payload_bits):
        packets = scheme.source.encode(calibration)
        clean, _ = scheme.source.decode(packets, zero)
        quality = _mean_psnr_db(calibration, clean)
        if not front or quality > front[-1][1]:
            front.append((scheme, quality))
    log = []
    low, high, best = 0, len(front) - 1, 0
    while low <= high:
        middle = (low + high) // 2
        scheme, quality = front[middle]
        _, loss = scheme.transmit(
            calibration, train_snr_db, make_channel(channel, seed), concealment
        )
        log.append(
            {
                "scheme": scheme.describe(),
                "payload_bits": scheme.source.payload_bits,
                "clean_psnr_db": round(quality, 3),
                "bler": loss,
            }
        )
        if loss <= target_bler:
            best, low = middle, middle + 1
        else:
            high = middle - 1
    return front[best][0], log


def _ratio(text: str) -> float:
    try:
        value = float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"expected a number or a fraction such as 1/6; got {text!r}"
        ) from None
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The recipe's own options (the runner adds ``--seed``, ``--json``, ``--out``...)."""
    parser.add_argument(
        "--channel", choices=CHANNELS, default="awgn",
        help="awgn, or rayleigh: flat fading with one gain per patch (block fading), "
        "perfect CSI, MMSE equalization for JSCC and exact LLRs for the digital link",
    )  # fmt: skip
    parser.add_argument(
        "--train-snr-db", type=float, default=10.0,
        help="SNR (Es/N0, dB) JSCC is trained at and the digital link is adapted to (10)",
    )  # fmt: skip
    parser.add_argument(
        "--snr-db", nargs="+", type=float, default=None,
        help=f"evaluation SNRs in dB (default {' '.join(f'{s:g}' for s in _DEFAULT_SNR_DB)})",
    )  # fmt: skip
    parser.add_argument(
        "--ratio", type=_ratio, default=1 / 6,
        help="bandwidth ratio: complex channel uses per real source value, e.g. 1/6 (default) "
        "or 1/12; JSCC rounds it to a multiple of 1/48, the digital link uses the same count",
    )  # fmt: skip
    parser.add_argument("--patch", type=int, default=32, help="patch side in pixels (32)")
    parser.add_argument("--hidden", type=int, default=48, help="JSCC conv filters (48)")
    parser.add_argument("--steps", type=int, default=1500, help="JSCC training steps (1500)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam, cosine decay (2e-3)")
    parser.add_argument(
        "--test-photos", nargs="+", choices=PHOTOS, default=list(DEFAULT_TEST_PHOTOS),
        help=f"photos held out for testing (default {' '.join(DEFAULT_TEST_PHOTOS)}); "
        "training uses the others",
    )  # fmt: skip
    parser.add_argument(
        "--test-patches", type=int, default=200,
        help="tiles of the test photos evaluated, drawn from all of them (200)",
    )  # fmt: skip
    parser.add_argument(
        "--target-bler", type=float, default=0.1,
        help="link adaptation: the largest scheme whose packet loss at the training SNR is "
        "at most this (0.1, the CQI target of LTE and 5G NR)",
    )  # fmt: skip
    parser.add_argument(
        "--calibration-packets", type=int, default=64,
        help="training patches sent per link-adaptation trial (64)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads during the run (default 1: small convolutions gain little)",
    )  # fmt: skip
    parser.add_argument(
        "--smoke", action="store_true",
        help=f"{_SMOKE_STEPS} steps, {_SMOKE_TEST_PATCHES} test patches, "
        f"{_SMOKE_CALIBRATION} calibration packets, SNRs {_SMOKE_SNR_DB} (for tests)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train JSCC, adapt the digital link, evaluate both at every SNR on held-out photos.

    Returns ``{"recipe": "images", "options", "data", "jscc", "digital", "results",
    "seconds"}``; ``results`` has one row per (scheme, SNR) with ``scheme`` (``"jscc"`` or
    ``"digital"``), ``snr_db``, ``psnr_db`` (the mean of per-patch PSNRs over the test
    patches, each capped at :data:`PSNR_CAP_DB`), ``psnr_of_mean_mse_db`` (from the MSE over
    all test pixels), ``channel_uses`` and ``payload_bits`` per patch (``None`` for JSCC,
    which sends no bits), ``packet_loss`` (digital) and the setting's details.

    Data: training crops come from :data:`PHOTOS` minus ``--test-photos``; the test patches
    are tiles of the held-out photos only. The digital scheme is chosen by
    :func:`choose_digital` on training crops, for the same channel uses per patch as JSCC.
    """
    options = _options(args)
    with torch_threads(options["threads"]):
        return _run(options, tqdm_disable(args))


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """Check the options and resolve the smoke and default values; raise ``ValueError``."""
    check_positive(args, "steps", "batch_size", "hidden", "test_patches", "calibration_packets",
                   "threads")  # fmt: skip
    if args.patch < 8 or args.patch % 4:
        raise ValueError(
            f"--patch must be a multiple of 4 and >= 8 (JSCC downsamples by 4); got {args.patch}"
        )
    if not (math.isfinite(args.ratio) and 0 < args.ratio <= 1):
        raise ValueError(
            f"--ratio must be in (0, 1] (complex channel uses per real value); got {args.ratio}"
        )
    test = list(dict.fromkeys(args.test_photos))
    train = [name for name in PHOTOS if name not in test]
    if not train:
        raise ValueError(f"--test-photos must leave at least one of {PHOTOS} for training")
    if not math.isfinite(args.train_snr_db):
        raise ValueError(f"--train-snr-db must be finite; got {args.train_snr_db}")
    if args.snr_db is None:
        snrs = list(_SMOKE_SNR_DB if args.smoke else _DEFAULT_SNR_DB)
    else:
        snrs = list(dict.fromkeys(args.snr_db))
    check_snr_values("--snr-db", snrs)
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be a finite number > 0; got {args.lr}")
    if not 0 <= args.target_bler < 1:
        raise ValueError(f"--target-bler must be in [0, 1); got {args.target_bler}")
    smoke = args.smoke
    return {
        "channel": args.channel,
        "train_snr_db": args.train_snr_db,
        "snr_db": snrs,
        "ratio": args.ratio,
        "patch": args.patch,
        "hidden": args.hidden,
        "steps": min(args.steps, _SMOKE_STEPS) if smoke else args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "train_photos": train,
        "test_photos": test,
        "test_patches": min(args.test_patches, _SMOKE_TEST_PATCHES) if smoke
        else args.test_patches,
        "target_bler": args.target_bler,
        "calibration_packets": min(args.calibration_packets, _SMOKE_CALIBRATION) if smoke
        else args.calibration_packets,
        "threads": args.threads,
        "smoke": smoke,
        "seed": args.seed,
        "device": args.device,
    }  # fmt: skip


def _load(names: Sequence[str], size: int) -> list[torch.Tensor]:
    photos = [load_photo(name) for name in names]
    for name, photo in zip(names, photos, strict=True):
        if min(photo.shape[1:]) < size:
            raise ValueError(f"--patch {size} is larger than photo {name!r} {tuple(photo.shape)}")
    return photos


def _train_jscc(
    o: dict[str, Any], photos: list[torch.Tensor], device: torch.device, disable: bool | None
) -> tuple[nn.Module, float]:
    """ImageJSCC trained at the training SNR on random crops: the model and its last loss."""
    from tqdm import tqdm

    from aiflow_comm.semantic import ImageJSCC

    seed = o["seed"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ImageJSCC(
            3, o["ratio"], make_channel(o["channel"], seed), hidden=o["hidden"], equalizer="mmse"
        ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=o["lr"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, o["steps"], o["lr"] / 20)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    recent: list[float] = []
    for _ in tqdm(range(o["steps"]), desc="images: JSCC", unit="step", disable=disable):
        x = random_patches(photos, o["batch_size"], o["patch"], generator).to(device)
        loss = F.mse_loss(model(x, o["train_snr_db"]), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        recent = [*recent[-49:], loss.item()]
    model.eval()
    return model, sum(recent) / len(recent)


def _jscc_received(
    model: nn.Module, x: torch.Tensor, snr_db: float, channel: nn.Module
) -> torch.Tensor:
    """JSCC reconstructions of ``x`` over ``channel`` at ``snr_db`` (eval mode, batched)."""
    model.channel = channel
    with torch.no_grad():
        return torch.cat(
            [
                model(x[start : start + _EVAL_BATCH], snr_db)
                for start in range(0, len(x), _EVAL_BATCH)
            ]
        )


def _quality(reference: torch.Tensor, estimate: torch.Tensor) -> dict[str, float]:
    """``psnr_db`` (mean over patches) and ``psnr_of_mean_mse_db`` (over all pixels)."""
    mse = float((reference.double() - estimate.double().to(reference.device)).pow(2).mean())
    return {
        "psnr_db": _mean_psnr_db(reference, estimate.to(reference.device)),
        "psnr_of_mean_mse_db": -10 * math.log10(max(mse, 10 ** (-PSNR_CAP_DB / 10))),
    }


def _run(o: dict[str, Any], disable: bool | None) -> dict[str, Any]:
    from tqdm import tqdm

    start = time.perf_counter()
    device = torch.device(o["device"])
    seed, size = o["seed"], o["patch"]
    train_photos = _load(o["train_photos"], size)
    test_photos = _load(o["test_photos"], size)
    x_test = tile_patches(
        test_photos, size, o["test_patches"], torch.Generator().manual_seed(seed + 2)
    )
    calibration = random_patches(
        train_photos, o["calibration_packets"], size, torch.Generator().manual_seed(seed + 3)
    )
    concealment = torch.stack([p.flatten(1).mean(dim=1) for p in train_photos]).mean(dim=0)

    model, final_loss = _train_jscc(o, train_photos, device, disable)
    channel_uses = model.channel_uses(x_test[:1])
    digital, search = choose_digital(
        calibration, channel_uses, o["channel"], o["train_snr_db"], o["target_bler"],
        concealment, seed + 5,
    )  # fmt: skip
    clean, _ = digital.source.decode(digital.source.encode(x_test), concealment)
    digital_clean = _mean_psnr_db(x_test, clean)

    rows = []
    common = {"channel": o["channel"], "train_snr_db": o["train_snr_db"]}
    x_device = x_test.to(device)
    for i, snr in enumerate(tqdm(o["snr_db"], desc="images: eval", unit="SNR", disable=disable)):
        # The same seed for both schemes at an SNR (their draws differ in number and use).
        rows.append(
            {
                "scheme": "jscc",
                "snr_db": snr,
                **_quality(
                    x_test,
                    _jscc_received(
                        model, x_device, snr, make_channel(o["channel"], seed + 101 + i)
                    ),
                ),
                "channel_uses": channel_uses,
                "payload_bits": None,
                "packet_loss": None,
                "setting": f"JSCC, ratio {model.ratio:.4g}",
                **common,
            }
        )
        received, loss = digital.transmit(
            x_test, snr, make_channel(o["channel"], seed + 101 + i), concealment
        )
        rows.append(
            {
                "scheme": "digital",
                "snr_db": snr,
                **_quality(x_test, received),
                "channel_uses": channel_uses,
                "payload_bits": digital.source.payload_bits,
                "packet_loss": loss,
                "setting": digital.describe(),
                **common,
            }
        )
    return {
        "recipe": "images",
        "options": o,
        "data": {
            "train_photos": o["train_photos"],
            "test_photos": o["test_photos"],
            "patch": [3, size, size],
            "test_patches": len(x_test),
            "concealment_rgb": [round(v, 4) for v in concealment.tolist()],
        },
        "jscc": {
            "ratio": model.ratio,
            "channel_uses": channel_uses,
            "latent_channels": model.encoder.latent_channels,
            "parameters": sum(p.numel() for p in model.parameters()),
            "final_train_mse": final_loss,
            "final_train_psnr_db": -10 * math.log10(final_loss),
        },
        "digital": {
            "scheme": digital.describe(),
            "modulation": digital.modulation,
            "ldpc_k": digital.source.payload_bits,
            "ldpc_n": digital.ldpc_n,
            "code_rate": digital.code_rate,
            "payload_bits": digital.source.payload_bits,
            "channel_uses": digital.channel_uses,
            "luma": digital.source.luma,
            "chroma": digital.source.chroma,
            "bits": digital.source.bits,
            "clean_psnr_db": digital_clean,
            "search": search,
        },
        "results": rows,
        "seconds": round(time.perf_counter() - start, 1),
    }


def format_table(result: dict[str, Any]) -> str:
    """PSNR of each scheme against SNR, with the data split and the digital choice."""
    o, d, j = result["options"], result["digital"], result["jscc"]
    snrs = o["snr_db"]
    channel = "Rayleigh block fading (one gain per patch)" if o["channel"] == "rayleigh" else "AWGN"
    lines = [
        f"images: {o['patch']}x{o['patch']} patches over {channel}; train photos "
        f"{', '.join(o['train_photos'])}; test photos {', '.join(o['test_photos'])} "
        f"({result['data']['test_patches']} patches)",
        f"JSCC: ratio {j['ratio']:.4g} ({j['channel_uses']} channel uses per patch), trained at "
        f"{o['train_snr_db']:g} dB for {o['steps']} steps (final train PSNR "
        f"{j['final_train_psnr_db']:.2f} dB)",
        f"digital: {d['scheme']} ({d['payload_bits']} bits in {d['channel_uses']} channel uses; "
        f"error-free PSNR {d['clean_psnr_db']:.2f} dB); adapted for packet loss <= "
        f"{o['target_bler']:g} at {o['train_snr_db']:g} dB",
        "mean PSNR (dB) over test patches at SNR (dB):",
    ]
    header = f"{'scheme':<8} {'payload b':>9} {'ch.uses':>7}" + "".join(
        f" {f'{s:g}':>6}" for s in snrs
    )
    lines += [header, "-" * len(header)]
    for scheme in ("jscc", "digital"):
        cells = {r["snr_db"]: r for r in result["results"] if r["scheme"] == scheme}
        if not cells:
            continue
        first = next(iter(cells.values()))
        payload = "-" if first["payload_bits"] is None else str(first["payload_bits"])
        line = f"{scheme:<8} {payload:>9} {first['channel_uses']:>7}"
        line += "".join(f" {cells[s]['psnr_db']:>6.2f}" if s in cells else " " * 7 for s in snrs)
        lines.append(line)
    losses = {r["snr_db"]: r["packet_loss"] for r in result["results"] if r["scheme"] == "digital"}
    if losses:
        line = f"{'lost':<8} {'':>9} {'':>7}"
        line += "".join(f" {losses[s]:>6.2f}" if s in losses else " " * 7 for s in snrs)
        lines.append(line + "  (digital packet loss)")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str | Path) -> Path:
    """PSNR against SNR: JSCC and the digital baseline, the training SNR marked."""
    from aiflow_comm.plotting import plot_psnr_vs_snr

    o = result["options"]
    title = (
        f"images, {o['patch']}x{o['patch']} patches, {o['channel']}, ratio "
        f"{result['jscc']['ratio']:.3g}"
    )
    return plot_psnr_vs_snr(result["results"], path, title, train_snr_db=o["train_snr_db"])
