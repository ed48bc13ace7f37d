"""The ``aiflow-comm search`` command's work: load a model, build tiers and links, report."""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aiflow_comm.search.accuracy import AccuracyTable
from aiflow_comm.search.link import LinkModel
from aiflow_comm.search.models import BUILTIN_MODELS
from aiflow_comm.search.payload import Codec
from aiflow_comm.search.planner import search_plans
from aiflow_comm.search.profiling import profile_model
from aiflow_comm.search.result import SearchResult
from aiflow_comm.search.tiers import Tier

__all__ = ["format_search", "load_model", "parse_shape", "run_search", "search_json"]


def load_model(spec: str) -> nn.Module:
    """A built-in model name (``small-cnn``, ``small-resnet``, ``deep-mlp``) or
    ``module:callable``, a callable (no arguments) returning an ``nn.Module``. The module may
    lie in the working directory, as with ``python -m`` (looked up after the installed
    packages). ``ValueError`` naming ``--model`` when it cannot be loaded or built, its cause
    chained.

    >>> type(load_model("torch.nn:Identity")).__name__
    'Identity'
    """
    if spec in BUILTIN_MODELS:
        return BUILTIN_MODELS[spec]()
    if ":" not in spec:
        raise ValueError(
            f"--model must be one of {sorted(BUILTIN_MODELS)} or module:callable; got {spec!r}"
        )
    module_name, _, attr = spec.partition(":")
    with _working_directory_importable():
        try:
            target: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                target = getattr(target, part)
        except Exception as error:  # the user's module: ImportError, or whatever it raises
            raise ValueError(f"--model {spec!r}: cannot load it ({_describe(error)})") from error
        if not callable(target):
            raise ValueError(f"--model {spec!r} is not callable")
        try:
            model = target()
        except Exception as error:
            raise ValueError(f"--model {spec!r}: calling it raised {_describe(error)}") from error
    if not isinstance(model, nn.Module):
        raise ValueError(f"--model {spec!r} returned {type(model).__name__}, not an nn.Module")
    return model


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


@contextmanager
def _working_directory_importable() -> Iterator[None]:
    """The working directory on ``sys.path`` (last) inside, unless it is there already."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        yield
    finally:
        if added:
            sys.path.remove(cwd)


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,3,32,32"`` -> ``(1, 3, 32, 32)``.

    >>> parse_shape("1,3,32,32")
    (1, 3, 32, 32)
    """
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--input-shape must be comma-separated integers; got {text!r}") from None
    if not shape or any(v < 1 for v in shape):
        raise ValueError(f"--input-shape must hold positive sizes; got {text!r}")
    return shape


_BACKHAUL_OPTIONS = {
    "bandwidth_hz": "--backhaul-bandwidth-hz",
    "snr_db": "--backhaul-snr-db",
    "propagation_s": "--backhaul-propagation-s",
}


def _check_unused_options(args: argparse.Namespace) -> None:
    """``ValueError`` for an option that the others make meaningless (it was ignored)."""
    for tier in ("device", "edge", "cloud"):
        if getattr(args, f"{tier}_scale") is not None and not args.measure:
            raise ValueError(f"--{tier}-scale scales the times --measure takes: add --measure")
    if args.cloud_scale is not None and args.cloud_flops is None:
        raise ValueError("--cloud-scale needs a cloud tier: add --cloud-flops")


def _tier(name: str, flops: float, power: float, scale: float | None, **extra: float) -> Tier:
    return Tier(name, flops, power, time_scale=scale, **extra)


def _accuracy(path: str | None, cuts: list[str]) -> AccuracyTable | None:
    """``{"cut@bits": accuracy, ..., "lossless": accuracy}`` from a JSON file (``"conv2@4"`` or
    ``"conv2@4b"``), every cut one of ``cuts`` and every accuracy a number."""
    if path is None:
        return None
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as error:
        raise ValueError(f"--accuracy {path}: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"--accuracy {path}: not JSON ({error})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"--accuracy must hold a JSON object of 'cut@bits' keys; got {raw!r}")
    values = {}
    for key, value in raw.items():
        if key == "lossless":
            continue
        cut, sep, bits = key.rpartition("@")
        if not sep or not bits.removesuffix("b").isdigit():
            raise ValueError(f"--accuracy keys must be 'cut@bits' or 'lossless'; got {key!r}")
        if cut not in cuts:  # a misspelt cut would leave its plans without an accuracy
            raise ValueError(f"--accuracy key {key!r}: no cut {cut!r} in the model; its cuts: "
                             f"{', '.join(cuts)}")  # fmt: skip
        values[(cut, int(bits.removesuffix("b")))] = _number(key, value)
    lossless = raw.get("lossless")
    if lossless is not None:
        lossless = _number("lossless", lossless)
    return AccuracyTable(values, lossless=lossless)


def _number(key: str, value: object) -> float:
    """``value`` of ``--accuracy``'s ``key`` as a float, or ``ValueError`` naming both. Any
    finite number (a fraction, a percentage, a PSNR); JSON's ``NaN`` and ``Infinity`` are not."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"--accuracy values must be finite numbers; got {value!r} for {key!r}")
    return float(value)


def run_search(args: argparse.Namespace) -> SearchResult:
    """Profile the model and search with the command's options."""
    _check_unused_options(args)
    model = load_model(args.model)
    x = torch.randn(parse_shape(args.input_shape), generator=torch.Generator().manual_seed(0))
    try:
        profile = profile_model(
            model, x, measure=args.measure, num_threads=1 if args.measure else None
        )
    except ValueError:  # the library's own, saying what is wrong (UntraceableModelError, ...)
        raise
    except Exception as error:  # the model's own complaint about the input, of any type
        raise ValueError(
            f"--model {args.model} fails on a float32 input of shape {tuple(x.shape)} "
            f"(--input-shape): {str(error).splitlines()[0]}"
        ) from None
    device = _tier("device", args.device_flops, args.device_power, args.device_scale,
                   tx_power_w=args.tx_power, idle_power_w=args.idle_power)  # fmt: skip
    edge = _tier("edge", args.edge_flops, 0.0, args.edge_scale)  # energy is the device's
    link = LinkModel(
        args.bandwidth_hz, args.snr_db, args.fading, args.coherence, args.mcs,
        args.retransmissions, args.propagation_s, args.rician_k,
    )  # fmt: skip
    cloud = backhaul = None
    if args.cloud_flops is not None:
        cloud = _tier("cloud", args.cloud_flops, 0.0, args.cloud_scale)
        try:
            backhaul = LinkModel(args.backhaul_bandwidth_hz, args.backhaul_snr_db,
                                 propagation_s=args.backhaul_propagation_s)  # fmt: skip
        except ValueError as error:  # LinkModel's message starts with its argument's name
            option = _BACKHAUL_OPTIONS.get(str(error).split(" ", 1)[0], "--backhaul-*")
            raise ValueError(f"{option} (the edge -> cloud backhaul): {error}") from None
    codecs = [Codec(b, args.group_size) for b in dict.fromkeys(args.bits)]  # each once
    return search_plans(
        profile, device, edge, link, codecs, cloud=cloud, backhaul=backhaul,
        accuracy=_accuracy(args.accuracy, profile.names), min_accuracy=args.min_accuracy,
        max_failure_prob=args.max_failure_prob, objective=args.objective,
    )  # fmt: skip


def search_json(result: SearchResult) -> dict[str, Any]:
    """``plans`` (every plan in every state), ``best`` (one per state), ``policy``,
    ``pareto`` (plan indices, expected values) and ``expected``."""
    return {
        "plans": result.records(),
        "best": result.best_records(),
        "policy": result.policy(),
        "pareto": [int(i) for i in result.pareto()],
        "expected": result.expected(),
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{1e3 * value:9.3f}"


def _probability(value: float | None) -> str:
    return f"{'-' if value is None else f'{value:.3g}':>8}"


def format_search(result: SearchResult) -> str:
    """The best plan per SNR with its latency breakdown and the probability that its payload is
    lost (``loss``: without ``--max-failure-prob`` a plan that almost never delivers may be the
    fastest), then the expected values."""
    lines = [
        f"{len(result.plans)} plans x {result.snr_db.size} channel states",
        f"{'snr_db':>7}  {'plan':<28} {'payload_b':>10} {'device_ms':>9} {'tx_ms':>9} "
        f"{'edge_ms':>9} {'cloud_ms':>9} {'total_ms':>9} {'energy_mJ':>9} {'loss':>8}",
    ]
    for row in result.best_records():
        if row["plan"] is None:
            lines.append(f"{row['snr_db']:7.1f}  no feasible plan")
            continue
        cloud = (row["tx2_s"] or 0.0) + (row["cloud_s"] or 0.0)
        lines.append(
            f"{row['snr_db']:7.1f}  {row['plan']:<28} {row['payload_bits']:>10} "
            f"{_ms(row['device_s'])} {_ms(row['tx_s'])} {_ms(row['edge_s'])} {_ms(cloud)} "
            f"{_ms(row['latency_s'])} {_ms(row['energy_j'])} {_probability(row['failure_prob'])}"
        )
    expected = result.expected()
    policy, fixed = expected["policy"], expected["fixed"]
    lines.append(
        f"expected over the SNR states: adaptive policy {_ms(policy['latency_s']).strip()} ms, "
        + (f"best fixed plan {fixed['plan']} {_ms(fixed['latency_s']).strip()} ms" if fixed
           else "no plan feasible in every state")
    )  # fmt: skip
    front = result.pareto()
    # the front weighs accuracy too where the plans have one (SearchResult.pareto)
    axes = "latency, energy" + (", accuracy" if result.accuracy_known() else "")
    lines.append(f"Pareto front (expected {axes}): {len(front)} plans")
    return "\n".join(lines)
