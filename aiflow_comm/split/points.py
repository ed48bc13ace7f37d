"""Candidate cut points of a model and the tensors that cross each one."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import TensorMetadata
from torch.nn.parameter import UninitializedTensorMixin

from aiflow_comm.split.aliasing import StorageProp, shares_written_memory
from aiflow_comm.split.fidelity import check_trace
from aiflow_comm.split.graph import GraphCut, graph_cuts
from aiflow_comm.split.trace import (
    buffer_state,
    is_plain_sequential,
    restore_buffers,
    sequential_steps,
    trace_model,
)

__all__ = ["CrossingTensor", "SplitPoint", "list_split_points"]

ExampleInput = torch.Tensor | tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class CrossingTensor:
    """One tensor that crosses a cut, as measured on the example input (batch included).

    Attributes:
        name: the label of the value: a module path, an fx node name or an input's name.
        shape: its shape, batch dimension first.
        dtype: its dtype.

    >>> CrossingTensor("fc1", (8, 16), torch.float16).nbytes
    256
    """

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def numel(self) -> int:
        """Elements, batch included: the product of ``shape``."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """``numel * element size``: the raw size, before any codec."""
        return self.numel * self.dtype.itemsize


@dataclass(frozen=True)
class SplitPoint:
    """A place to cut a model: the head runs up to and including ``name``, the tail the rest.

    Attributes:
        name: the cut's name, accepted by :func:`~aiflow_comm.split.split_model` as ``at``.
        index: its position in :func:`list_split_points` (execution order).
        tensors: the tensors that cross, in the order the head returns them.

    >>> point = SplitPoint("relu", 1, (CrossingTensor("relu", (2, 3), torch.float32),))
    >>> point.nbytes
    24
    """

    name: str
    index: int
    tensors: tuple[CrossingTensor, ...]

    @property
    def nbytes(self) -> int:
        """Total bytes crossing, for the example input's batch."""
        return sum(t.nbytes for t in self.tensors)


def list_split_points(
    model: nn.Module,
    example_input: ExampleInput,
    *,
    leaf_modules: Iterable[type[nn.Module]] | None = None,
) -> list[SplitPoint]:
    """The candidate cuts of ``model``, in execution order, with what crosses each one.

    * A plain ``nn.Sequential`` is cut after each child but the last, named by the child's name
      (``"0"``, ``"1"``... or its ``OrderedDict`` key); its output crosses (a tuple output: one
      :class:`CrossingTensor` per element, ``"name[i]"``). Children are never traced, nor are
      nested ``Sequential`` children cut inside.
    * Any other model is traced by torch.fx (:func:`~aiflow_comm.split.trace_model`) and cut
      after each compute node but the last. A cut is named by the module path
      (``"layer1.0.conv1"``) when that module is called once, else by the fx node name
      (``"relu_1"``, ``"add"``). Every value computed at or before the cut (inputs included)
      and used after it crosses: in a residual block both the branch and the skip.

    Cuts where a non-tensor crosses (an ``x.size(0)``, a tuple from a submodule) are left out;
    :func:`~aiflow_comm.split.split_model` still accepts their names.

    Args:
        model: the model; its training flags are restored after the shape run.
        example_input: a tensor, or a tuple of tensors for a model with several inputs. It is
            run once, in eval mode without gradients, to measure shapes (BatchNorm statistics
            are not updated, and buffers the model writes itself are restored).
        leaf_modules: submodule classes fx keeps whole (see
            :func:`~aiflow_comm.split.trace_model`); ignored for ``nn.Sequential``.

    Raises:
        UntraceableModelError: fx cannot trace ``model``; the message says how to cut by hand.

    >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> [(p.name, p.tensors[0].shape, p.nbytes) for p in list_split_points(model, torch.ones(5, 4))]
    [('0', (5, 3), 60), ('1', (5, 3), 60)]
    """
    inputs = example_inputs(example_input)
    materialize_lazy(model, inputs)
    if is_plain_sequential(model):
        return sequential_points(model, inputs)
    gm = trace_model(model, leaf_modules, num_inputs=len(inputs))
    check_trace(model, gm, inputs)
    return graph_points(gm, graph_cuts(gm), inputs)


def example_inputs(example_input: ExampleInput) -> tuple[torch.Tensor, ...]:
    """``example_input`` as a tuple of positional inputs: one tensor or a non-empty tuple of
    them; anything else raises ``TypeError`` (``ValueError`` for an empty tuple)."""
    if isinstance(example_input, torch.Tensor):
        return (example_input,)
    if isinstance(example_input, tuple | list):
        if not example_input:
            raise ValueError("example_input must hold at least one tensor; got an empty tuple")
        kinds = [type(value).__name__ for value in example_input]
        if all(isinstance(value, torch.Tensor) for value in example_input):
            return tuple(example_input)
        raise TypeError(
            f"example_input must be a tensor or a tuple of tensors; got a tuple of {kinds}"
        )
    raise TypeError(
        "example_input must be a tensor or a tuple of tensors (one per model input); "
        f"got {type(example_input).__name__}"
    )


def sequential_points(model: nn.Sequential, inputs: tuple[torch.Tensor, ...]) -> list[SplitPoint]:
    """Split points of a plain ``nn.Sequential``, one after each child but the last."""
    if len(inputs) != 1:
        raise ValueError(
            f"an nn.Sequential takes one input; example_input holds {len(inputs)} values"
        )
    children = sequential_steps(model)
    points: list[SplitPoint] = []
    value = inputs[0].clone()  # a model may write its input: the caller's stays as it is
    with evaluating(model):
        for name, child in children[:-1]:
            value = child(value)
            tensors = _runtime_tensors(name, value)
            if tensors is not None:
                points.append(SplitPoint(name, len(points), tensors))
    return points


def graph_points(
    gm: fx.GraphModule, cuts: list[GraphCut], inputs: tuple[torch.Tensor, ...]
) -> list[SplitPoint]:
    """Split points of a traced model: the cuts where only tensors cross, with their shapes,
    but for those a link would break (:func:`~aiflow_comm.split.aliasing.shares_written_memory`).
    """
    with evaluating(gm):
        StorageProp(gm).propagate(*(t.clone() for t in inputs))  # the caller's inputs untouched
    points: list[SplitPoint] = []
    for cut in cuts:
        metas = [n.meta.get("tensor_meta") for n in cut.crossing]
        if not metas or not all(isinstance(m, TensorMetadata) for m in metas):
            continue
        if shares_written_memory(gm, cut):
            continue
        tensors = tuple(
            CrossingTensor(name, tuple(m.shape), m.dtype)
            for name, m in zip(cut.crossing_names, metas, strict=True)
        )
        points.append(SplitPoint(cut.name, len(points), tensors))
    return points


def _runtime_tensors(name: str, value: object) -> tuple[CrossingTensor, ...] | None:
    if isinstance(value, torch.Tensor):
        return (CrossingTensor(name, tuple(value.shape), value.dtype),)
    if (
        isinstance(value, tuple | list)
        and value
        and all(isinstance(v, torch.Tensor) for v in value)
    ):
        return tuple(
            CrossingTensor(f"{name}[{i}]", tuple(v.shape), v.dtype) for i, v in enumerate(value)
        )
    return None


def materialize_lazy(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
    """Run ``model`` once on copies of ``inputs`` (:func:`evaluating`) if it holds lazy modules
    not yet called (``nn.LazyLinear``, ``nn.LazyBatchNorm2d``...): their parameters and buffers
    have no shape or value before, and neither tracing nor a shape run can read them."""
    tensors = itertools.chain(model.parameters(), model.buffers())
    if any(isinstance(t, UninitializedTensorMixin) for t in tensors):
        with evaluating(model):
            model(*(t.clone() for t in inputs))


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients inside; every module's training flag and every buffer that
    the model writes even in eval mode (a running average of its own) restored after."""
    modes = [(m, m.training) for m in model.modules()]
    buffers = buffer_state(model)
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, training in modes:
            m.training = training
        restore_buffers(buffers)
