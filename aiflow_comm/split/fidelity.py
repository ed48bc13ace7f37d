"""Whether a traced graph computes what its model computes, checked on an example input.

torch.fx records tensor operations; some Python effects leave no trace in the graph (``v += 1``
on a view: fx writes ``v = v + 1``, and the tensor the view belongs to never changes). Running the
graph and the model on the same input, with the same random numbers, catches them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import fx, nn

from aiflow_comm.split.trace import UntraceableModelError

__all__ = ["check_trace", "first_difference"]


def first_difference(want: Any, got: Any, path: str = "output") -> str | None:
    """Where ``got`` first differs from ``want`` (tensors within float tolerance, NaN equal to
    NaN; tuples, lists, dicts and dataclasses element by element), or None.

    >>> first_difference((torch.ones(2), 3), (torch.ones(2), 3)) is None
    True
    >>> first_difference({"y": torch.zeros(2)}, {"y": torch.ones(2)})
    "output['y']: values differ by up to 1"
    """
    if isinstance(want, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"{path}: a tensor in the model, a {type(got).__name__} in the graph"
        if want.dtype != got.dtype or want.shape != got.shape:
            return (
                f"{path}: {want.dtype} {tuple(want.shape)} in the model, "
                f"{got.dtype} {tuple(got.shape)} in the graph"
            )
        try:
            torch.testing.assert_close(got, want, equal_nan=True)
        except AssertionError:
            gap = (got.double() - want.double()).abs().nan_to_num(float("inf")).max().item()
            return f"{path}: values differ by up to {gap:.3g}"
        return None
    if isinstance(want, tuple | list):
        if type(got) is not type(want) or len(got) != len(want):
            return f"{path}: a {type(want).__name__} of {len(want)} in the model"
        pairs = enumerate(zip(want, got, strict=True))
        found = (first_difference(w, g, f"{path}[{i}]") for i, (w, g) in pairs)
        return next((f for f in found if f), None)
    if isinstance(want, dict):
        if not isinstance(got, dict) or got.keys() != want.keys():
            return f"{path}: a dict with keys {list(want)} in the model"
        found = (first_difference(w, got[k], f"{path}[{k!r}]") for k, w in want.items())
        return next((f for f in found if f), None)
    if dataclasses.is_dataclass(want) and not isinstance(want, type):
        if type(got) is not type(want):
            return f"{path}: a {type(want).__name__} in the model"
        found = (
            first_difference(getattr(want, f.name), getattr(got, f.name), f"{path}.{f.name}")
            for f in dataclasses.fields(want)
        )
        return next((f for f in found if f), None)
    return None


def _runs(
    model: nn.Module, runners: tuple[Any, ...], inputs: tuple[torch.Tensor, ...]
) -> list[Any]:
    """Each of ``runners`` on copies of ``inputs`` (a model may write its input), without
    gradients, from one torch random state, ``model``'s buffers restored after each."""
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    devices = sorted({t.device.index or 0 for t in inputs if t.is_cuda})
    outputs = []
    with torch.no_grad(), torch.random.fork_rng(devices=devices):
        seed = int(torch.randint(0, 2**31 - 1, ()))
        for run in runners:
            torch.manual_seed(seed)
            try:
                outputs.append(run(*(t.clone() for t in inputs)))
            finally:
                for buffer, saved in buffers:
                    buffer.copy_(saved)
    return outputs


def check_trace(model: nn.Module, gm: fx.GraphModule, inputs: tuple[torch.Tensor, ...]) -> None:
    """Raise :class:`UntraceableModelError` unless ``gm`` reproduces ``model`` on ``inputs``.

    Both run without gradients in the model's current modes, on copies of ``inputs``, from the
    same random state (dropout draws the same masks); buffers the runs update (BatchNorm
    statistics) are restored after. A model that does not repeat itself from that state (a
    channel drawing from its own generator) cannot be checked this way and passes.
    Where the model cannot run on ``inputs`` in its modes (``BatchNorm1d`` in training on one
    example), both run in eval mode instead, every training flag restored after.
    """
    modes = [(m, m.training) for m in model.modules()]
    try:
        try:
            want, got = _runs(model, (model, gm), inputs)
        except Exception:  # the same runs in eval mode tell whether the mode was the cause
            model.eval()
            (want,) = _runs(model, (model,), inputs)  # the model's own error, as it is
            try:
                (got,) = _runs(model, (gm,), inputs)
            except Exception as error:
                raise UntraceableModelError(
                    f"the torch.fx graph of {type(model).__name__} fails on example_input where "
                    f"the model runs ({type(error).__name__}: {error}). Make the submodule "
                    "whose code fx cannot follow opaque with leaf_modules=[ItsClass], or cut a "
                    "plain nn.Sequential by its children."
                ) from error
        difference = first_difference(want, got)
        if difference is not None:  # a model that does not repeat itself cannot be checked
            (again,) = _runs(model, (model,), inputs)
            if first_difference(want, again) is not None:
                return
    finally:
        for module, training in modes:
            module.training = training
    if difference is not None:
        raise UntraceableModelError(
            f"the torch.fx graph of {type(model).__name__} does not compute what the model "
            f"computes on example_input ({difference}), so no cut of it would either. fx records "
            "tensor operations only; likely causes: an augmented assignment to a view or to a "
            "tensor that has another name (`v = h[:, :4]; v += 1`: write `v.add_(1)`), a "
            "torch.autocast or no_grad block in the model's own forward, code that reads a "
            "global or non-tensor state at run time, or random numbers drawn outside torch. "
            "Make the submodule that does this opaque with "
            "leaf_modules=[ItsClass], or cut a plain nn.Sequential by its children."
        )
