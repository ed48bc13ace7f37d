"""The ``aiflow-comm`` command: ``demo``, ``ber``, ``search``, ``train`` and ``bench``."""

from __future__ import annotations

import argparse
import math
import os
import sys

import torch

import aiflow_comm
from aiflow_comm.recipes.runner import strict_json

__all__ = ["build_parser", "main"]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiflow-comm", description=aiflow_comm.__doc__)
    parser.add_argument(
        "--version", action="version", version=f"aiflow-comm {aiflow_comm.__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo",
        help="train a split CNN over a fading channel, then quantize real photos at 8/4/2 bits",
        description="A short digits training (CNN cut in two, uncoded QPSK over Rayleigh "
        "fading, trained jointly and without the channel): accuracy against SNR and payload "
        "per split point; then the scikit-image photos quantized at 8, 4 and 2 bits.",
    )
    demo.add_argument("--group-size", type=int, default=64, help="photo quantization groups")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--smoke", action="store_true", help="a few training steps (seconds)")
    demo.add_argument("--json", action="store_true", help="print JSON instead of tables")

    _add_ber_parser(commands)
    _add_search_parser(commands)

    from aiflow_comm.recipes import RECIPES

    train = commands.add_parser(
        "train",
        help="training recipes on built-in data (gaussian, images, digits)",
        description="Run a training recipe; `aiflow-comm train RECIPE --help` lists its options.",
    )
    train.add_argument("recipe", choices=RECIPES)
    train.add_argument("options", nargs=argparse.REMAINDER, help="the recipe's own options")

    bench = commands.add_parser("bench", help="microbenchmarks")
    targets = bench.add_subparsers(dest="target", required=True)
    quant = targets.add_parser("quant", help="quantize/dequantize throughput per backend")
    quant.add_argument("--size-mib", type=float, default=64.0, help="input size (default 64)")
    quant.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    quant.add_argument(
        "--dtypes", nargs="+", choices=sorted(_DTYPES), default=["float32", "bfloat16"]
    )
    quant.add_argument("--bits", nargs="+", type=int, choices=[2, 4, 8], default=[8, 4])
    quant.add_argument("--group-size", type=int, default=128)
    quant.add_argument("--backends", nargs="+", default=None, help="default: every usable one")
    quant.add_argument("--repeats", type=int, default=10)
    quant.add_argument("--no-compile", action="store_true", help="skip the torch.compile baseline")
    quant.add_argument("--json", action="store_true", help="print JSON instead of a table")

    ber = targets.add_parser(
        "ber", help="BER simulation throughput: DigitalLink against Sionna blocks by hand"
    )
    ber.add_argument("--num-bits", type=int, default=1 << 20, help="bits per batch")
    ber.add_argument("--snr-db", type=float, default=10.0)
    ber.add_argument("--repeats", type=int, default=7)
    ber.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ber.add_argument("--json", action="store_true", help="print JSON instead of a table")

    fused = targets.add_parser(
        "fused",
        help="projection+quantize and dequantize+projection against the matmul alone and the "
        "separate ops",
    )
    fused.add_argument("--bits", type=int, choices=[2, 4, 8], default=8)
    fused.add_argument("--group-size", type=int, default=32)
    fused.add_argument("--repeats", type=int, default=9)
    fused.add_argument(
        "--backend",
        choices=["auto", "cpp", "triton", "cuda", "torch"],
        default="auto",
        help="fused backend (default: the fastest usable on the device)",
    )
    fused.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    fused.add_argument("--dtype", choices=sorted(_DTYPES), default="float32")
    fused.add_argument(
        "--transposed-weights",
        action="store_true",
        help="store each weight transposed (weight.T contiguous): read without packing on the CPU",
    )
    fused.add_argument(
        "--no-finite-check",
        action="store_true",
        help="quantize with check_finite=False: no NaN/Inf check (a device sync per call on a GPU)",
    )
    fused.add_argument("--json", action="store_true", help="print JSON instead of a table")

    step = targets.add_parser(
        "train-step", help="a training step with a SplitLink against a plain training step"
    )
    step.add_argument("--batch", type=int, default=32)
    step.add_argument("--width", type=int, default=64, help="channels of the first conv layer")
    step.add_argument("--repeats", type=int, default=9)
    step.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    step.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _add_ber_parser(commands: argparse._SubParsersAction) -> None:
    from aiflow_comm.channel.ber import BER_CHANNELS
    from aiflow_comm.channel.modulation import MODULATIONS

    ber = commands.add_parser(
        "ber",
        help="Monte-Carlo BER/BLER of a digital link beside the closed form",
        description="Monte-Carlo bit (and block) error rate of Gray M-QAM over AWGN or flat "
        "Rayleigh fading (new gain per symbol, perfect CSI, zero forcing), optionally 5G LDPC "
        "coded, with the closed-form BER beside it for uncoded links.",
    )
    ber.add_argument("--modulation", choices=MODULATIONS, default="qpsk")
    ber.add_argument("--channel", choices=BER_CHANNELS, default="awgn")
    ber.add_argument(
        "--ebno-db", nargs="+", type=float, default=[0.0, 2.0, 4.0, 6.0, 8.0], help="Eb/N0 in dB"
    )
    ber.add_argument("--num-bits", type=int, default=1_000_000, help="bits per Eb/N0 point")
    ber.add_argument("--ldpc-k", type=int, help="5G LDPC information bits per codeword")
    ber.add_argument("--ldpc-n", type=int, help="5G LDPC codeword length")
    ber.add_argument(
        "--max-block-errors", type=int, help="stop a coded point after this many block errors"
    )
    ber.add_argument("--seed", type=int, default=0)
    ber.add_argument("--device", default="cpu")
    ber.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ber.add_argument("--plot", metavar="FILE.png", help="draw the curves into this file")


def _add_search_parser(commands: argparse._SubParsersAction) -> None:
    from aiflow_comm.search.fading import FADINGS
    from aiflow_comm.search.link import COHERENCE, MCS_NAMES
    from aiflow_comm.search.planner import OBJECTIVES

    search = commands.add_parser(
        "search",
        help="channel-aware split-point search across device, edge and cloud",
        description="Profile a model's cuts and pick, per SNR, where to cut, how many bits to "
        "send and whether to offload, from a cost model of the tiers and the link "
        "(docs/search.md).",
    )
    search.add_argument(
        "--model", default="small-cnn",
        help="small-cnn, small-resnet, deep-mlp, or module:callable returning an nn.Module",
    )  # fmt: skip
    search.add_argument("--input-shape", default="1,3,32,32", help="example input, batch first")
    tiers = search.add_argument_group("tiers")
    tiers.add_argument("--device-flops", type=float, default=2e9, help="device FLOP/s")
    tiers.add_argument("--edge-flops", type=float, default=1e11, help="edge FLOP/s")
    tiers.add_argument("--cloud-flops", type=float, help="cloud FLOP/s: adds two-cut plans")
    tiers.add_argument("--device-power", type=float, default=2.0, help="W while computing")
    tiers.add_argument("--tx-power", type=float, default=1.0, help="device W while sending")
    tiers.add_argument("--idle-power", type=float, default=0.1, help="device W while waiting")
    tiers.add_argument("--measure", action="store_true", help="time the steps here")
    for tier in ("device", "edge", "cloud"):
        tiers.add_argument(
            f"--{tier}-scale", type=float,
            help=f"with --measure: {tier} time = time here x this (instead of FLOP/s)",
        )  # fmt: skip
    link = search.add_argument_group("device -> edge link")
    link.add_argument("--bandwidth-hz", type=float, default=10e6)
    link.add_argument("--snr-db", type=float, nargs="+", default=[30.0, 20.0, 10.0, 0.0, -10.0])
    link.add_argument("--fading", choices=FADINGS, default="none")
    link.add_argument("--coherence", choices=COHERENCE, default="block")
    link.add_argument("--rician-k", type=float, default=10.0, help="linear Rician K")
    link.add_argument("--mcs", choices=tuple(MCS_NAMES), default="shannon")
    link.add_argument("--retransmissions", type=int, default=3)
    link.add_argument("--propagation-s", type=float, default=0.0)
    backhaul = search.add_argument_group("edge -> cloud link (with --cloud-flops)")
    backhaul.add_argument("--backhaul-bandwidth-hz", type=float, default=100e6)
    backhaul.add_argument("--backhaul-snr-db", type=float, default=30.0)
    backhaul.add_argument("--backhaul-propagation-s", type=float, default=0.005)
    codec = search.add_argument_group("codec and objective")
    codec.add_argument("--bits", type=int, nargs="+", choices=[32, 8, 4, 2], default=[32, 8, 4])
    codec.add_argument("--group-size", type=int, default=128)
    codec.add_argument("--objective", choices=OBJECTIVES, default="latency")
    codec.add_argument(
        "--accuracy", metavar="FILE.json", help='{"cut@bits": accuracy, "lossless": accuracy}'
    )
    codec.add_argument("--min-accuracy", type=float)
    codec.add_argument("--max-failure-prob", type=float)
    search.add_argument("--json", action="store_true", help="print one JSON object")
    search.add_argument("--plot", metavar="FILE.png", help="latency per cut and Pareto front")


def _check_plot(command: str, path: str | None) -> None:
    """Exit with a one-line message, before any work, when ``--plot`` cannot be written."""
    if path == "":  # the option given, its value empty: nothing would be drawn
        raise SystemExit(f"aiflow-comm {command}: --plot needs a file path; got ''")
    if path:
        from aiflow_comm.plotting import check_plot_path

        try:
            check_plot_path(path)
        except ValueError as error:
            raise SystemExit(f"aiflow-comm {command}: --plot: {error}") from error


def _plot(command: str, draw, *args) -> None:
    """``draw(*args)``; a file it cannot write exits with a one-line message."""
    try:
        draw(*args)
    except (ValueError, OSError, RuntimeError) as error:  # RuntimeError: pgf without LaTeX
        raise SystemExit(f"aiflow-comm {command}: --plot: {error}") from error


def _search(args: argparse.Namespace) -> None:
    from aiflow_comm.search.command import format_search, run_search, search_json

    _check_plot("search", args.plot)
    try:
        result = run_search(args)
    except (ValueError, TypeError, KeyError) as error:
        raise SystemExit(f"aiflow-comm search: {error}") from error
    if args.json:
        print(strict_json(search_json(result)))
    else:
        print(format_search(result))
    if args.plot:
        from aiflow_comm.plotting import plot_search

        fading = "no fading" if args.fading == "none" else f"{args.fading} fading"
        _plot("search", plot_search, result, args.plot, f"{args.model}, {fading}")


def _ber(args: argparse.Namespace) -> None:
    from aiflow_comm.bench.timing import resolve_device
    from aiflow_comm.channel.ber import format_ber_table, simulate_ber

    if (args.ldpc_k is None) != (args.ldpc_n is None):
        raise SystemExit("aiflow-comm ber: give both --ldpc-k and --ldpc-n, or neither")
    _check_plot("ber", args.plot)
    try:
        resolve_device(args.device)
        points = simulate_ber(
            args.modulation,
            args.channel,
            args.ebno_db,
            args.num_bits,
            ldpc_k=args.ldpc_k,
            ldpc_n=args.ldpc_n,
            max_block_errors=args.max_block_errors,
            seed=args.seed,
            device=args.device,
        )
    except ValueError as error:
        raise SystemExit(f"aiflow-comm ber: {error}") from error
    if args.json:
        print(strict_json([p.as_dict() for p in points], indent=2))
    else:
        code = f", LDPC ({args.ldpc_k}, {args.ldpc_n})" if args.ldpc_k else ", uncoded"
        print(f"{args.modulation} over {args.channel}{code}")
        print(format_ber_table(points))
    if args.plot:
        from aiflow_comm.plotting import plot_ber

        code = f" LDPC({args.ldpc_k},{args.ldpc_n})" if args.ldpc_k else ""
        _plot("ber", plot_ber, points, args.plot, f"{args.modulation} over {args.channel}{code}")


def _demo(args: argparse.Namespace) -> None:
    from aiflow_comm.demo import (
        digits_demo,
        format_demo_table,
        format_split_point_table,
        quantization_demo,
        split_point_sizes,
    )
    from aiflow_comm.kernels.layout import check_quant_args
    from aiflow_comm.recipes.digits import digits_cnn, format_table
    from aiflow_comm.recipes.runner import check_seed

    try:
        check_quant_args(8, args.group_size)
    except ValueError as error:
        raise SystemExit(f"aiflow-comm demo: --group-size: {error}") from error
    check_seed("aiflow-comm demo", args.seed)
    try:
        result = digits_demo(
            smoke=args.smoke, seed=args.seed, progress="off" if args.json else "auto"
        )
    except ValueError as error:
        raise SystemExit(f"aiflow-comm demo: {error}") from error
    points = split_point_sizes(digits_cnn(), torch.zeros(1, 1, 8, 8))
    rows = quantization_demo(group_size=args.group_size)
    if args.json:
        print(strict_json({"digits": result, "split_points": points,
                           "quantization": [vars(r) for r in rows]}, indent=2))  # fmt: skip
        return
    print(format_table(result))
    print(f"(trained and evaluated in {result['seconds']:.0f} s)\n")
    print("Payload per example at each split point of the digits CNN, in bits (quantized: wire")
    print("format with header, a float32 scale per 64 values and CRC32; * the cut trained above):")
    print(format_split_point_table(points, marked=result["options"]["split_at"]))
    print("\nQuantizing the scikit-image sample photos (astronaut, chelsea, coffee, rocket):")
    print(format_demo_table(rows))


def _bench_quant(args: argparse.Namespace) -> None:
    from aiflow_comm.bench.quant import bench_quant, format_table

    if (
        not (math.isfinite(args.size_mib) and args.size_mib > 0)
        or min(args.repeats, args.group_size) < 1
    ):
        raise SystemExit(
            "aiflow-comm bench quant: --size-mib, --repeats and --group-size must be positive "
            "(and --size-mib finite)"
        )
    try:
        rows = bench_quant(
            args.size_mib,
            args.device,
            tuple(_DTYPES[d] for d in args.dtypes),
            tuple(args.bits),
            args.group_size,
            args.backends,
            not args.no_compile,
            args.repeats,
        )
    except ValueError as error:
        raise SystemExit(f"aiflow-comm bench quant: {error}") from error
    if args.json:
        print(strict_json([r.as_dict() for r in rows], indent=2))
    else:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
        print(format_table(rows))


def _bench_ber(args: argparse.Namespace) -> None:
    from aiflow_comm.bench.ber import bench_ber, format_ber_bench

    try:
        rows = bench_ber(args.num_bits, args.snr_db, args.repeats, args.device)
    except ValueError as error:
        raise SystemExit(f"aiflow-comm bench ber: {error}") from error
    if args.json:
        print(strict_json([r.as_dict() for r in rows], indent=2))
    else:
        print(f"uncoded QPSK, Rayleigh per symbol, {args.snr_db} dB, device {args.device}")
        print(format_ber_bench(rows))


def _bench_train_step(args: argparse.Namespace) -> None:
    from aiflow_comm.bench.train_step import bench_train_step, format_train_step

    try:
        rows = bench_train_step(args.batch, args.width, args.repeats, args.device)
    except ValueError as error:
        raise SystemExit(f"aiflow-comm bench train-step: {error}") from error
    if args.json:
        print(strict_json([r.as_dict() for r in rows], indent=2))
    else:
        print(f"batch {args.batch} of 3x32x32, width {args.width}, device {args.device}, "
              f"{torch.get_num_threads()} threads")  # fmt: skip
        print(format_train_step(rows))


def _bench_fused(args: argparse.Namespace) -> None:
    from aiflow_comm.bench.fused import bench_fused, format_fused_table

    try:
        rows = bench_fused(
            bits=args.bits,
            group_size=args.group_size,
            repeats=args.repeats,
            backend=args.backend,
            device=args.device,
            dtype=_DTYPES[args.dtype],
            transposed_weights=args.transposed_weights,
            check_finite=not args.no_finite_check,
        )
    except (ValueError, RuntimeError) as error:
        raise SystemExit(f"aiflow-comm bench fused: {error}") from error
    if args.json:
        print(strict_json([r.as_dict() for r in rows], indent=2))
    else:
        print(f"{args.dtype} on {args.device}, {torch.get_num_threads()} threads, "
              f"bits {args.bits}, group size {args.group_size}"
              + (", weights stored transposed" if args.transposed_weights else "")
              + (", no NaN/Inf check" if args.no_finite_check else ""))  # fmt: skip
        print(format_fused_table(rows))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aiflow-comm`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:  # `aiflow-comm search | head`: the reader left, as for any tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 141  # 128 + SIGPIPE, as a shell reports it
    except RuntimeError as error:  # sizes too large for this machine: a user's error
        if not (isinstance(error, torch.OutOfMemoryError) or "can't allocate" in str(error)):
            raise
        name = f"bench {args.target}" if args.command == "bench" else args.command
        message = str(error).strip().splitlines()[0]
        raise SystemExit(f"aiflow-comm {name}: out of memory: {message}") from error


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        _demo(args)
    elif args.command == "ber":
        _ber(args)
    elif args.command == "search":
        _search(args)
    elif args.command == "train":
        from aiflow_comm.recipes.runner import main as run_recipe

        return run_recipe(args.recipe, args.options)
    elif args.target == "quant":
        _bench_quant(args)
    elif args.target == "ber":
        _bench_ber(args)
    elif args.target == "fused":
        _bench_fused(args)
    else:
        _bench_train_step(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
