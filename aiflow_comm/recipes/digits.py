"""Recipe ``digits``: a small CNN on scikit-learn's digits, split with a ``SplitLink``."""

from __future__ import annotations

import argparse
import copy
import math
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aiflow_comm.recipes.runner import (
    check_positive,
    check_snr_values,
    torch_threads,
    tqdm_disable,
)
from aiflow_comm.semantic.metrics import accuracy
from aiflow_comm.split import SplitLink, SplitModel, split_model

__all__ = [
    "CHANNELS",
    "LINKS",
    "MODULATIONS",
    "SETTINGS",
    "SPLIT_POINTS",
    "add_arguments",
    "bottleneck",
    "digits_cnn",
    "format_table",
    "load_digits_tensors",
    "make_link",
    "plot",
    "run",
]

CHANNELS = ("awgn", "rayleigh")
LINKS = ("digital", "analog")
MODULATIONS = ("qpsk", "16qam")
SETTINGS = ("joint", "no-channel")
SPLIT_POINTS = ("conv1", "relu1", "conv2", "relu2", "pool", "conv3", "relu3", "flatten")

_DEFAULT_SNR_DB = (0.0, 5.0, 10.0, 15.0, 20.0)
_SMOKE_SNR_DB = (0.0, 20.0)
_SMOKE_TEST_EXAMPLES = 48
_BASE_LR = 3e-3


def digits_cnn() -> nn.Sequential:
    """The recipe's CNN for ``(batch, 1, 8, 8)`` digits: a plain ``nn.Sequential``.

    Its children (the cut names, :data:`SPLIT_POINTS`, then ``"fc"``): ``conv1`` (1 -> 16
    channels, 3x3), ``relu1``, ``conv2`` (16 -> 32), ``relu2``, ``pool`` (2x2 max: 32x4x4),
    ``conv3`` (32 -> 32), ``relu3``, ``flatten`` (512) and ``fc`` (10 logits).

    >>> model = digits_cnn()
    >>> model(torch.zeros(2, 1, 8, 8)).shape, [name for name, _ in model.named_children()][4]
    (torch.Size([2, 10]), 'pool')
    """
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(1, 16, 3, padding=1),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(16, 32, 3, padding=1),
            relu2=nn.ReLU(),
            pool=nn.MaxPool2d(2),
            conv3=nn.Conv2d(32, 32, 3, padding=1),
            relu3=nn.ReLU(),
            flatten=nn.Flatten(),
            fc=nn.Linear(32 * 4 * 4, 10),
        )
    )


def bottleneck(shape: Sequence[int], ratio: float) -> tuple[nn.Module, nn.Module]:
    """Learned ``(encoder, decoder)`` keeping ``round(ratio * C)`` of a cut's ``C`` channels.

    ``shape`` is one example's feature shape. For ``(C, H, W)`` the encoder is a 1x1
    convolution ``C -> round(ratio * C)`` followed by a flatten (so quantization groups run
    over all values of an example), and the decoder unflattens and expands back with a 1x1
    convolution. For ``(F,)`` both are linear layers ``F -> round(ratio * F) -> F``.

    The encoder ends with a parameter-free ``LayerNorm`` (zero mean, unit variance per
    example). The quantizer's per-group scale makes the scale of the features meaningless to
    what is sent; without the norm, training through the straight-through bit-flip surrogate
    lets that scale drift upward without bound (a hundredfold in a few hundred steps) and the
    accuracy collapses.

    >>> encoder, decoder = bottleneck((32, 4, 4), 0.25)
    >>> z = encoder(torch.zeros(3, 32, 4, 4))
    >>> z.shape, decoder(z).shape
    (torch.Size([3, 128]), torch.Size([3, 32, 4, 4]))
    """
    _check_ratio(ratio)
    if len(shape) == 3:
        channels, height, width = shape
        kept = max(1, round(ratio * channels))
        encoder = nn.Sequential(
            nn.Conv2d(channels, kept, 1),
            nn.Flatten(),
            nn.LayerNorm(kept * height * width, elementwise_affine=False),
        )
        decoder = nn.Sequential(
            nn.Unflatten(1, (kept, height, width)), nn.Conv2d(kept, channels, 1)
        )
        return encoder, decoder
    if len(shape) == 1:
        kept = max(1, round(ratio * shape[0]))
        encoder = nn.Sequential(
            nn.Linear(shape[0], kept), nn.LayerNorm(kept, elementwise_affine=False)
        )
        return encoder, nn.Linear(kept, shape[0])
    raise ValueError(f"features must be (C, H, W) or (F,) per example; got {tuple(shape)}")


def make_link(
    link: str,
    channel: str,
    modulation: str = "qpsk",
    *,
    generator: int | torch.Generator | None = None,
) -> nn.Module:
    """The recipe's link: ``"digital"`` (uncoded QAM) or ``"analog"``, over ``channel``.

    ``channel`` is ``"awgn"`` or ``"rayleigh"`` (flat Rayleigh fading, a new gain per symbol,
    perfect CSI). The digital link equalizes by zero forcing and demaps exactly; the analog
    link sends the dequantized values as power-normalized complex symbols, MMSE-equalized.

    >>> make_link("digital", "rayleigh", "16qam", generator=0).bits_per_symbol
    4
    """
    from aiflow_comm.channel import AWGN, AnalogLink, DigitalLink, RayleighFading

    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}; got {channel!r}")
    if link not in LINKS:
        raise ValueError(f"link must be one of {LINKS}; got {link!r}")
    if channel == "awgn":
        medium: nn.Module = AWGN(generator=generator)
    else:
        medium = RayleighFading("symbol", generator=generator)
    if link == "digital":
        return DigitalLink(modulation, channel=medium)
    return AnalogLink(medium, equalizer="mmse")


def load_digits_tensors(
    seed: int = 0, test_fraction: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's 1797 digits as ``(x_train, y_train, x_test, y_test)``.

    Images are float32 ``(n, 1, 8, 8)``, scaled to ``[0, 1]`` and standardized with the
    training set's mean and standard deviation; labels are int64. The split is a random
    permutation drawn from ``seed`` (the same seed gives the same split).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            "the digits recipe needs scikit-learn: pip install 'aiflow-comm[examples]'"
        ) from error
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}")
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    labels = torch.tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_test = round(test_fraction * len(labels))
    if not 2 <= n_test <= len(labels) - 2:  # a split needs examples, and a std needs two
        raise ValueError(
            f"test_fraction={test_fraction} leaves {n_test} of {len(labels)} images for testing: "
            "both splits need at least 2"
        )
    test, train = order[:n_test], order[n_test:]
    mean, std = images[train].mean(), images[train].std()
    images = (images - mean) / std
    return images[train], labels[train], images[test], labels[test]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The recipe's own options (the runner adds ``--seed``, ``--json``, ``--out``...)."""
    parser.add_argument(
        "--split-at", default="pool", metavar="NAME",
        help=f"cut the CNN after this child: one of {', '.join(SPLIT_POINTS)} "
        "(default pool: the 32x4x4 output of the middle conv block)",
    )  # fmt: skip
    parser.add_argument("--bits", nargs="+", type=int, choices=(2, 4, 8), default=[8, 4, 2])
    parser.add_argument(
        "--ratios", nargs="+", type=float, default=[1.0, 0.25],
        help="fractions of the cut's channels the learned encoder keeps, in (0, 1] "
        "(default 1.0 0.25)",
    )  # fmt: skip
    parser.add_argument("--group-size", type=int, default=64, help="values per scale (64)")
    parser.add_argument("--channel", choices=CHANNELS, default="rayleigh",
                        help="rayleigh: flat fading, new gain per symbol, perfect CSI")  # fmt: skip
    parser.add_argument(
        "--link", choices=LINKS, default="digital",
        help="digital: uncoded QAM, bit errors reach the codes (on_error='keep'), trained "
        "with the bit-flip surrogate; analog: quantized values as complex symbols",
    )  # fmt: skip
    parser.add_argument("--modulation", choices=MODULATIONS, default="qpsk")
    parser.add_argument(
        "--train-snr-db", nargs=2, type=float, default=[0.0, 20.0], metavar=("LOW", "HIGH"),
        help="joint training draws each example's SNR (Es/N0, dB) uniformly in this range",
    )  # fmt: skip
    parser.add_argument(
        "--snr-db", nargs="+", type=float, default=None,
        help=f"evaluation SNRs in dB (default {' '.join(map(str, _DEFAULT_SNR_DB))})",
    )  # fmt: skip
    parser.add_argument("--base-steps", type=int, default=400,
                        help="steps training the CNN alone (default 400)")  # fmt: skip
    parser.add_argument(
        "--warmup-steps", type=int, default=200,
        help="steps training each (bits, ratio) bottleneck and the CNN without the channel, "
        "the start both settings share (default 200)",
    )  # fmt: skip
    parser.add_argument(
        "--steps", type=int, default=400,
        help="then steps of each setting: joint (through the channel) or no-channel "
        "(default 400)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3, help="fine-tuning learning rate")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads during the run (default 1: the model is too small to gain)",
    )  # fmt: skip
    parser.add_argument(
        "--smoke", action="store_true",
        help=f"a few steps and {_SMOKE_TEST_EXAMPLES} test examples (for tests)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train the CNN, then each (setting, bits, ratio) model; evaluate at every SNR.

    1. The CNN alone, ``base_steps`` steps (Adam, learning rate 3e-3).
    2. For each (bits, ratio): a copy of it, cut at ``split_at`` with a :func:`bottleneck` in a
       ``SplitLink`` over a perfect link (fake quantization), ``warmup_steps`` steps, every
       parameter trained: the start both settings share.
    3. From that start, ``steps`` more steps each: ``"no-channel"`` over the perfect link;
       ``"joint"`` through the channel's training path (digital: code bits flipped at the
       closed-form raw BER of each example's SNR, drawn uniformly in ``train_snr_db``;
       analog: the channel itself), with the same batches.
    4. Both in eval mode over the real link at each SNR: digital sends each example's codes
       as its own packet and keeps the bit errors (``on_error="keep"``); every model sees
       the same channel draws at a given SNR.

    Returns ``{"recipe": "digits", "options": ..., "base_accuracy": ..., "split": ...,
    "results": rows}``, one row per (setting, bits, ratio, SNR) with ``setting``, ``bits``,
    ``ratio``, ``snr_db``, ``accuracy`` (over the real link, eval mode), ``clean_accuracy``
    (same model over a perfect link), ``payload_bits`` (per example: the packed codes over the
    digital link, which keeps bit errors; the wire message over the analog link) and
    ``channel_uses`` (complex symbols per example).
    """
    options = _options(args)
    with torch_threads(options["threads"]):
        return _run(options, tqdm_disable(args))


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """Check the options and resolve the smoke and default values; raise ``ValueError``."""
    check_positive(args, "base_steps", "warmup_steps", "steps", "batch_size", "group_size",
                   "threads")  # fmt: skip
    try:
        split_model(digits_cnn(), args.split_at)
    except ValueError as error:
        raise ValueError(f"--split-at: {error}") from None
    for ratio in args.ratios:
        _check_ratio(ratio)
    low, high = args.train_snr_db
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ValueError(f"--train-snr-db needs finite LOW <= HIGH; got {low} {high}")
    if args.snr_db is None:
        snrs = list(_SMOKE_SNR_DB if args.smoke else _DEFAULT_SNR_DB)
    else:
        snrs = sorted(set(args.snr_db))  # a repeated SNR is one row
    check_snr_values("--snr-db", snrs)
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be a finite number > 0; got {args.lr}")
    return {
        "split_at": args.split_at,
        "bits": list(dict.fromkeys(args.bits)),
        "ratios": list(dict.fromkeys(args.ratios)),
        "group_size": args.group_size,
        "channel": args.channel,
        "link": args.link,
        "modulation": args.modulation if args.link == "digital" else None,
        "train_snr_db": [low, high],
        "snr_db": snrs,
        "base_steps": min(args.base_steps, 30) if args.smoke else args.base_steps,
        "warmup_steps": min(args.warmup_steps, 5) if args.smoke else args.warmup_steps,
        "steps": min(args.steps, 5) if args.smoke else args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "threads": args.threads,
        "smoke": args.smoke,
        "seed": args.seed,
        "device": args.device,
    }


def _check_ratio(ratio: float) -> None:
    if isinstance(ratio, bool) or not isinstance(ratio, int | float):
        raise TypeError(f"ratio must be a number in (0, 1]; got {type(ratio).__name__}")
    if not 0 < ratio <= 1:
        raise ValueError(
            f"ratios must be in (0, 1] (the fraction of the cut's channels the encoder keeps); "
            f"got {ratio}"
        )


def _batches(
    size: int, batch_size: int, steps: int, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """``steps`` index batches, walking through successive random permutations of ``size``."""
    order = torch.empty(0, dtype=torch.int64)
    for _ in range(steps):
        if len(order) < batch_size:
            order = torch.cat((order, torch.randperm(size, generator=generator)))
        index, order = order[:batch_size], order[batch_size:]
        yield index


def _train(
    model: nn.Module,
    data: tuple[torch.Tensor, torch.Tensor],
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> None:
    """Adam on the cross-entropy of ``model`` over batches of ``data`` drawn from ``seed``."""
    x, y = data
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    generator = torch.Generator().manual_seed(seed)
    for index in _batches(len(y), batch_size, steps, generator):
        index = index.to(x.device)
        loss = nn.functional.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()


def _run(o: dict[str, Any], disable: bool | None) -> dict[str, Any]:
    from tqdm import tqdm

    start = time.perf_counter()
    device = torch.device(o["device"])
    seed = o["seed"]
    x_train, y_train, x_test, y_test = load_digits_tensors(seed)
    if o["smoke"]:
        x_test, y_test = x_test[:_SMOKE_TEST_EXAMPLES], y_test[:_SMOKE_TEST_EXAMPLES]
    train = (x_train.to(device), y_train.to(device))
    x_test, y_test = x_test.to(device), y_test.to(device)
    pairs = [(b, r) for b in o["bits"] for r in o["ratios"]]
    bar = tqdm(total=1 + len(pairs) * (1 + len(SETTINGS)), desc="digits", unit="stage",
               disable=disable)  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        base = digits_cnn().to(device)
    bar.set_postfix_str("base CNN")
    _train(base, train, o["base_steps"], o["batch_size"], _BASE_LR, seed)
    bar.update()
    with torch.no_grad():
        base_accuracy = accuracy(base(x_test), y_test)
        shape = tuple(split_model(base, o["split_at"]).head(x_test[:1]).shape[1:])

    rows = []
    for index, (bits, ratio) in enumerate(pairs):
        bar.set_postfix_str(f"warm-up, {bits} bits, ratio {ratio}")
        cut = split_model(copy.deepcopy(base), o["split_at"])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1 + index)
            encoder, decoder = bottleneck(shape, ratio)
        link = _split_link(o, bits, encoder.to(device), decoder.to(device), False, seed)
        warm = SplitModel(cut.head, link, cut.tail)
        _train(warm, train, o["warmup_steps"], o["batch_size"], o["lr"], seed + 1)
        bar.update()
        for setting in SETTINGS:
            bar.set_postfix_str(f"{setting}, {bits} bits, ratio {ratio}")
            model = copy.deepcopy(warm)
            model.link = _split_link(
                o, bits, model.link.encoder, model.link.decoder, setting == "joint", seed
            )
            _train(model, train, o["steps"], o["batch_size"], o["lr"], seed + 2)
            rows += _evaluate(o, model, (x_test, y_test), setting, bits, ratio)
            bar.update()
    bar.close()
    return {
        "recipe": "digits",
        "options": o,
        "base_accuracy": base_accuracy,
        "split": {"at": o["split_at"], "shape": list(shape), "values": math.prod(shape)},
        "results": rows,
        "seconds": round(time.perf_counter() - start, 1),
    }


def _split_link(
    o: dict[str, Any],
    bits: int,
    encoder: nn.Module,
    decoder: nn.Module,
    channel: bool,
    seed: int,
    snr_db: float | tuple[float, float] | None = None,
) -> SplitLink:
    """A ``SplitLink`` over the recipe's link (``channel``) or a perfect one."""
    if not channel:
        return SplitLink(bits, o["group_size"], encoder, decoder)
    link = make_link(o["link"], o["channel"], o["modulation"] or "qpsk", generator=seed)
    return SplitLink(
        bits, o["group_size"], encoder, decoder, link,
        snr_db=tuple(o["train_snr_db"]) if snr_db is None else snr_db,
        on_error="keep", generator=seed,
    )  # fmt: skip


def _evaluate(
    o: dict[str, Any],
    model: SplitModel,
    data: tuple[torch.Tensor, torch.Tensor],
    setting: str,
    bits: int,
    ratio: float,
) -> list[dict[str, Any]]:
    """One row per evaluation SNR: the model in eval mode over the real link."""
    x, y = data
    encoder, decoder = model.link.encoder, model.link.decoder
    model.eval()
    rows = []
    with torch.no_grad():
        features = model.head(x)
        clean = SplitLink(bits, o["group_size"], encoder, decoder).eval()
        clean_accuracy = accuracy(model.tail(clean(features)), y)
        for i, snr in enumerate(o["snr_db"]):
            # The same channel draws for every model evaluated at this SNR.
            link = _split_link(o, bits, encoder, decoder, True, o["seed"] + 101 + i, snr).eval()
            rows.append(
                {
                    "setting": setting,
                    "bits": bits,
                    "ratio": ratio,
                    "snr_db": snr,
                    "accuracy": accuracy(model.tail(link(features)), y),
                    "clean_accuracy": clean_accuracy,
                    "payload_bits": link.payload_bits(features),
                    "channel_uses": link.channel_uses(features),
                }
            )
    return rows


def format_table(result: dict[str, Any]) -> str:
    """Accuracy per (setting, bits, ratio) against SNR, with payload and channel uses."""
    o = result["options"]
    snrs = o["snr_db"]
    link = f"digital link ({o['modulation']}, uncoded)" if o["link"] == "digital" else "analog link"
    shape = "x".join(map(str, result["split"]["shape"]))
    channel = "Rayleigh fading (per symbol)" if o["channel"] == "rayleigh" else "AWGN"
    lines = [
        f"digits: CNN cut after {o['split_at']!r} ({shape} per example), {link} over {channel}",
        f"base CNN accuracy {result['base_accuracy']:.3f}; joint training SNR "
        f"{o['train_snr_db'][0]:g}..{o['train_snr_db'][1]:g} dB; accuracy over the link at:",
    ]
    header = (
        f"{'setting':<10} {'bits':>4} {'ratio':>5} {'payload b':>9} {'ch.uses':>7} {'clean':>6}"
    )
    header += "".join(f" {f'{s:g} dB':>7}" for s in snrs)
    lines += [header, "-" * len(header)]
    by_model: dict[tuple, dict[float, dict[str, Any]]] = {}
    for row in result["results"]:
        key = (row["bits"], row["ratio"], row["setting"])
        by_model.setdefault(key, {})[row["snr_db"]] = row
    for (bits, ratio, setting), cells in by_model.items():
        first = next(iter(cells.values()))
        line = (
            f"{setting:<10} {bits:>4} {ratio:>5.2f} {first['payload_bits']:>9} "
            f"{first['channel_uses']:>7} {first['clean_accuracy']:>6.3f}"
        )
        line += "".join(
            f" {cells[s]['accuracy']:>7.3f}" if s in cells else f" {'':>7}" for s in snrs
        )
        lines.append(line)
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str | Path) -> Path:
    """Accuracy against SNR: one panel per bit width, a curve per (setting, ratio)."""
    from aiflow_comm.plotting import plot_accuracy_vs_snr

    o = result["options"]
    link = f"{o['modulation']} uncoded" if o["link"] == "digital" else "analog"
    title = f"digits, cut after {o['split_at']}, {link} over {o['channel']}"
    return plot_accuracy_vs_snr(result["results"], path, title)
