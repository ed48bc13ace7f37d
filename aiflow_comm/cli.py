"""The ``aiflow-comm`` command: ``demo`` and ``bench quant``."""

from __future__ import annotations

import argparse
import json
import sys

import torch

import aiflow_comm

__all__ = ["build_parser", "main"]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiflow-comm", description=aiflow_comm.__doc__)
    parser.add_argument(
        "--version", action="version", version=f"aiflow-comm {aiflow_comm.__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="quantize real photos at 8/4/2 bits and print a table")
    demo.add_argument("--group-size", type=int, default=64)
    demo.add_argument("--json", action="store_true", help="print JSON instead of a table")

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
    return parser


def _demo(args: argparse.Namespace) -> None:
    from aiflow_comm.demo import format_demo_table, quantization_demo

    rows = quantization_demo(group_size=args.group_size)
    if args.json:
        print(json.dumps([vars(r) for r in rows], indent=2))
    else:
        print("Quantizing the scikit-image sample photos (astronaut, chelsea, coffee, rocket):")
        print(format_demo_table(rows))


def _bench_quant(args: argparse.Namespace) -> None:
    from aiflow_comm.bench.quant import bench_quant, format_table

    if args.size_mib <= 0 or args.repeats < 1 or args.group_size < 1:
        raise SystemExit(
            "aiflow-comm bench quant: --size-mib, --repeats and --group-size must be positive"
        )
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
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
        print(format_table(rows))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aiflow-comm`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        _demo(args)
    elif args.command == "bench":
        _bench_quant(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
