"""The command line shared by every recipe: options, JSON and PNG outputs, table or JSON print."""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import torch

from aiflow_comm.bench.timing import resolve_device
from aiflow_comm.plotting import check_plot_path
from aiflow_comm.recipes import RECIPES

__all__ = [
    "MAX_SEED",
    "build_parser",
    "check_positive",
    "check_seed",
    "check_snr_values",
    "main",
    "recipe_module",
    "strict_json",
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


MAX_SEED = 2**62


def check_seed(command: str, seed: int) -> None:
    """Exit with a one-line message unless ``0 <= seed < MAX_SEED``: torch takes seeds below
    2**63, and a recipe adds offsets to its seed for each model and link it builds (a seed just
    under 2**63 failed after the training).

    Example:
        >>> check_seed("demo", 7)
    """
    if not 0 <= seed < MAX_SEED:
        raise SystemExit(f"{command}: --seed must be in [0, 2**62); got {seed}")


def main(name: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run recipe ``name`` with command-line ``argv``; write its JSON and PNG; print it.

    ``--seed``, ``--device`` and ``--out`` are checked before the run, for every recipe alike;
    the JSON (file and ``--json``) is strict: a NaN or infinite number (a diverged training's
    metrics) is written ``null``."""
    args = build_parser(name, prog).parse_args(argv)
    module = recipe_module(name)
    check_seed(name, args.seed)
    try:
        resolve_device(args.device)
    except ValueError as error:
        raise SystemExit(f"{name}: --{error}") from error  # "--device 'NAME' ..."
    out = Path(args.out)
    try:  # before training: a folder that cannot be written fails now, not after the run
        if out.exists() and not out.is_dir():
            raise NotADirectoryError("a file, not a folder")
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK | os.X_OK):
            raise PermissionError("not writable")
        if not args.no_plot:
            check_plot_path(out / f"{name}.png")
    except (OSError, ValueError) as error:
        raise SystemExit(f"{name}: --out {args.out!r}: {error}") from error
    try:
        result = module.run(args)
    except ValueError as error:
        raise SystemExit(f"{name}: {error}") from error
    text = strict_json(result, indent=2)
    try:
        (out / f"{name}.json").write_text(text + "\n")
        if not args.no_plot:
            module.plot(result, out / f"{name}.png")
    except OSError as error:
        raise SystemExit(f"{name}: --out {args.out!r}: {error}") from error
    if args.json:
        print(text)
    else:
        print(module.format_table(result))
        print(f"wrote {out / f'{name}.json'}" + ("" if args.no_plot else f" and {name}.png"))
    return 0


def check_snr_values(option: str, values: list[float]) -> None:
    """Raise ``ValueError`` naming ``option`` unless every SNR in ``values`` is one the channels
    take in float32: finite, and high enough that the noise variance ``10**(-snr_db/10)`` fits
    (about -383 dB). Checked with the options, before any model trains: the channels refused a
    -500 dB only once the first model met it, after the others had trained.

    >>> check_snr_values("--snr-db", [-10.0, 30.0])
    """
    from aiflow_comm.channel.conventions import snr_db_to_no

    symbols = torch.zeros(1, dtype=torch.complex64)
    try:
        for value in values:
            snr_db_to_no(float(value), symbols)
    except ValueError:
        raise ValueError(
            f"{option} values must be finite and above about -383 dB (the noise variance "
            f"10**(-snr_db/10) must fit float32); got {values}"
        ) from None


def strict_json(value: object, indent: int | None = None) -> str:
    """JSON text of ``value`` with every NaN or infinite float as ``null``: strict JSON, which
    any parser reads (``json.dumps`` writes ``NaN`` and ``Infinity``, which are not JSON).

    >>> strict_json({"psnr_db": float("inf"), "bits": 4})
    '{"psnr_db": null, "bits": 4}'
    """
    return json.dumps(_finite(value), indent=indent, allow_nan=False)


def _finite(value: object) -> object:
    """``value`` (a recipe's result) with every NaN or infinite float replaced by ``None``, so
    that its JSON is strict (``null``, never ``NaN``: a diverged training writes NaN metrics).

    >>> _finite({"sdr_db": float("nan"), "snr_db": [0.0, float("inf")]})
    {'sdr_db': None, 'snr_db': [0.0, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


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
