"""The command line shared by every recipe: options, JSON and PNG outputs, table or JSON print."""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import torch

from aiflow_comm.recipes import RECIPES

__all__ = [
    "build_parser",
    "check_positive",
    "main",
    "recipe_module",
    "torch_threads",
    "tqdm_disable",
]


def recipe_module(name: str) -> ModuleType:
    """The module implementing recipe ``name`` (one of :data:`RECIPES`)."""
    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPES}; got {name!r}")
    return importlib.import_module(f"aiflow_comm.recipes.{name}")


def build_parser(name: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The recipe's own options plus the common ones (``--json``, ``--out``, ``--seed``...)."""
    module = recipe_module(name)
    parser = argparse.ArgumentParser(prog=prog or f"aiflow-comm train {name}",
                                     description=module.__doc__)  # fmt: skip
    module.add_arguments(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--out", default="results", help=f"folder for {name}.json and {name}.png (default results)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    parser.add_argument(
        "--progress", choices=("auto", "on", "off"), default="auto",
        help="progress bars (auto: on a terminal)",
    )  # fmt: skip
    return parser


def main(name: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run recipe ``name`` with command-line ``argv``; write its JSON and PNG; print it."""
    args = build_parser(name, prog).parse_args(argv)
    module = recipe_module(name)
    try:
        device = torch.device(args.device)
    except RuntimeError as error:
        raise SystemExit(f"{name}: --device {args.device!r}: {error}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"{name}: --device {args.device}: CUDA is not available here")
    try:
        result = module.run(args)
    except ValueError as error:
        raise SystemExit(f"{name}: {error}") from error
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    if not args.no_plot:
        module.plot(result, out / f"{name}.png")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(module.format_table(result))
        print(f"wrote {out / f'{name}.json'}" + ("" if args.no_plot else f" and {name}.png"))
    return 0


def check_positive(args: argparse.Namespace, *names: str) -> None:
    """Raise ``ValueError`` naming the option (``--batch-size``) of the first of ``names`` < 1.

    >>> check_positive(argparse.Namespace(steps=0), "steps")
    Traceback (most recent call last):
    ...
    ValueError: --steps must be >= 1; got 0
    """
    for name in names:
        value = getattr(args, name)
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1; got {value}")


def tqdm_disable(args: argparse.Namespace) -> bool | None:
    """tqdm's ``disable`` value for ``--progress``: ``None`` lets tqdm decide (a terminal)."""
    return {"auto": None, "on": False, "off": True}[args.progress]


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """``torch.set_num_threads(count)`` for the block, the previous count restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
