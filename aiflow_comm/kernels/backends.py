"""Which quantization backends are usable here, and the function each one runs."""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Callable
from types import ModuleType

import torch

from aiflow_comm.kernels.reference import dequantize_reference, quantize_reference

__all__ = [
    "BACKENDS",
    "available_backends",
    "backend_resolver",
    "kernels_of",
    "optional_module",
    "resolve_backend",
]

BACKENDS = ("torch", "cpp", "triton", "cuda")
_FASTEST_FIRST = {"cpu": ("cpp", "torch"), "cuda": ("cuda", "triton", "torch")}


def _load_native() -> ModuleType | None:
    try:
        return importlib.import_module("aiflow_comm._C")
    except ImportError as error:
        warnings.warn(
            f"aiflow_comm._C is not built ({error}); the cpp and cuda backends are unavailable. "
            "Reinstall with a C++ compiler and torch present: pip install --no-build-isolation .",
            RuntimeWarning,
            stacklevel=2,
        )
        return None


def optional_module(name: str) -> ModuleType | None:
    """The module ``name``, or ``None`` where it cannot be imported (its backend is then unusable).

    Example:
        >>> optional_module("no_such_module") is None
        True
    """
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# Probed once at import, so that code traced by torch.compile only reads constants.
_NATIVE = _load_native()
_TRITON = optional_module("aiflow_comm.kernels.triton_quant")
_TRITON_ON_CPU = os.environ.get("TRITON_INTERPRET") == "1" and _TRITON is not None
_NATIVE_CUDA = _NATIVE is not None and bool(getattr(_NATIVE, "with_cuda", False))


def available_backends(device: str | torch.device = "cpu") -> list[str]:
    """The backends that can run on ``device`` here, fastest first.

    ``torch`` (the reference) is always usable; ``cpp`` needs the built extension; ``cuda`` needs
    the extension built with CUDA and a CUDA device; ``triton`` needs triton and a CUDA device, or
    ``TRITON_INTERPRET=1`` (set before import) to run on the CPU through Triton's interpreter.

    Example:
        >>> "torch" in available_backends("cpu")
        True
    """
    kind = torch.device(device).type
    if kind not in _FASTEST_FIRST:
        raise ValueError(f"device must be a cpu or cuda device; got {device!r}")
    usable = {"torch"}
    if kind == "cpu":
        if _NATIVE is not None:
            usable.add("cpp")
        if _TRITON_ON_CPU:
            usable.add("triton")
    elif torch.cuda.is_available():
        if _NATIVE_CUDA:
            usable.add("cuda")
        if _TRITON is not None:
            usable.add("triton")
    ordered = [name for name in _FASTEST_FIRST[kind] if name in usable]
    return ordered + sorted(usable - set(ordered))


def backend_resolver(
    names: tuple[str, ...],
    usable_on: Callable[[str], list[str]],
    unusable: Callable[[str], str],
) -> Callable[[str, torch.device], str]:
    """The rule both op families resolve by, as ``resolve(backend, device)``: ``ValueError`` for
    a name outside ``names``; else the first of ``usable_on(device.type)`` for ``"auto"``,
    ``backend`` if it is one of them, and a ``ValueError`` saying why otherwise
    (``unusable(device.type)`` follows the name). Cached per name and device type: it runs on
    every call of the ops.

    Example:
        >>> resolve = backend_resolver(("torch", "cpp"), lambda t: ["cpp", "torch"], str)
        >>> resolve("auto", torch.device("cpu"))
        'cpp'
    """

    # A plain dict, not functools.cache: torch.compile traces into a cache wrapper with a
    # warning ("silent incorrectness is a potential risk") on every compiled call site.
    resolved: dict[tuple[str, str], str] = {}

    def on_type(backend: str, device_type: str) -> str:
        if backend not in (*names, "auto"):
            raise ValueError(f"backend must be 'auto' or one of {names}; got {backend!r}")
        usable = usable_on(device_type)
        if backend == "auto":
            return usable[0]
        if backend not in usable:
            raise ValueError(f"backend {backend!r} {unusable(device_type)}; usable here: {usable}")
        return backend

    def resolve(backend: str, device: torch.device) -> str:
        if not isinstance(backend, str):  # before the cache: it may not even hash
            raise ValueError(f"backend must be 'auto' or one of {names}; got {backend!r}")
        key = (backend, device.type)
        if key not in resolved:
            resolved[key] = on_type(*key)
        return resolved[key]

    return resolve


_RESOLVE = backend_resolver(
    BACKENDS, available_backends, lambda device_type: f"is not usable for tensors on {device_type}"
)


def resolve_backend(backend: str, device: torch.device) -> str:
    """``backend`` itself if usable on ``device``, the fastest usable one for ``"auto"``."""
    return _RESOLVE(backend, device)


QuantizeFn = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
DequantizeFn = Callable[..., torch.Tensor]


def kernels_of(backend: str) -> tuple[QuantizeFn, DequantizeFn]:
    """The ``(quantize, dequantize)`` pair of a resolved backend, with the reference's signature."""
    if backend == "torch":
        return quantize_reference, dequantize_reference
    if backend == "triton":
        return _TRITON.quantize_triton, _TRITON.dequantize_triton
    if backend == "cpp":
        return _NATIVE.quantize_cpu, _NATIVE.dequantize_cpu
    return _NATIVE.quantize_cuda, _NATIVE.dequantize_cuda
