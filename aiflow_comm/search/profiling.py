"""Profiling a model's cuts: FLOPs of head and tail, crossing tensors, measured step times."""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import fx, nn
from torch.utils.flop_counter import FlopCounterMode

from aiflow_comm.split.graph import node_labels
from aiflow_comm.split.points import (
    CrossingTensor,
    ExampleInput,
    evaluating,
    example_inputs,
    list_split_points,
)
from aiflow_comm.split.trace import is_plain_sequential, sequential_steps, trace_model

__all__ = ["INPUT_CUT", "CutProfile", "ModelProfile", "model_steps", "profile_model"]

INPUT_CUT = "<input>"


@dataclass(frozen=True)
class CutProfile:
    """One candidate cut: what crosses it and the work on either side.

    Attributes:
        name: a name from :func:`~aiflow_comm.split.list_split_points`, or ``"<input>"`` for
            the cut before the first step (full offload: the input itself is sent).
        tensors: the crossing tensors (batch included).
        head_flops, tail_flops: FLOPs before and after the cut, counted by
            ``torch.utils.flop_counter`` (matmuls and convolutions; element-wise ops count 0)
            with PyTorch's fused attention fast path off (see :func:`attention_slow_path`).
        head_s, tail_s: measured seconds on this machine (sums of per-step medians), or
            ``None`` when the profile was not timed.
        step: the index of the head's last step (-1 for the input cut).
    """

    name: str
    tensors: tuple[CrossingTensor, ...]
    head_flops: int
    tail_flops: int
    head_s: float | None = None
    tail_s: float | None = None
    step: int = -1

    @property
    def raw_bytes(self) -> int:
        """Bytes crossing before any codec."""
        return sum(t.nbytes for t in self.tensors)


@dataclass(frozen=True)
class ModelProfile:
    """The cuts of a model in execution order, ``"<input>"`` first, with the model's totals.

    Attributes:
        cuts: the :class:`CutProfile` s; ``cuts[0]`` is the input cut.
        total_flops: FLOPs of the whole model on the example input.
        total_s: measured seconds of the whole model (sum of step medians), or ``None``.
    """

    cuts: tuple[CutProfile, ...]
    total_flops: int
    total_s: float | None = None

    @property
    def names(self) -> list[str]:
        """The cut names, ``"<input>"`` first."""
        return [c.name for c in self.cuts]

    @property
    def measured(self) -> bool:
        """Whether the profile holds measured times (``total_s`` is not ``None``)."""
        return self.total_s is not None

    def with_seconds(self, step_seconds: object) -> ModelProfile:
        """This profile with measured times from ``step_seconds``, one per model step."""
        seconds = np.asarray(step_seconds, dtype=np.float64)
        head = np.concatenate([[0.0], np.cumsum(seconds)])
        total = float(head[-1])
        cuts = tuple(
            dataclasses.replace(c, head_s=float(head[c.step + 1]),
                                tail_s=max(total - float(head[c.step + 1]), 0.0))
            for c in self.cuts
        )  # fmt: skip
        return ModelProfile(cuts, self.total_flops, total)

    def cut(self, name: str) -> CutProfile:
        """The cut called ``name``; ``KeyError`` lists the valid names."""
        for c in self.cuts:
            if c.name == name:
                return c
        raise KeyError(f"no cut named {name!r}; valid names: {self.names}")


def profile_model(
    model: nn.Module,
    example_input: ExampleInput,
    *,
    measure: bool = False,
    repeats: int = 5,
    num_threads: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
    leaf_modules: Iterable[type[nn.Module]] | None = None,
) -> ModelProfile:
    """Profile every cut of ``model`` from :func:`~aiflow_comm.split.list_split_points`.

    FLOPs are counted per step (a child of an ``nn.Sequential``, else an fx node) in one run of
    ``example_input`` (eval mode, no gradients; training flags restored; attention's fused
    fast path off, :func:`attention_slow_path`, so that its matmuls count). A cut's head FLOPs
    are the sum over the steps at or before it, in execution order, its tail FLOPs the rest.
    With ``measure=True`` each step is also timed with ``clock`` over ``repeats`` runs after
    one warm-up, and a side's time is the sum of its steps' medians. On a shared, loaded
    machine, time with ``num_threads=1`` (torch's intra-op threads, restored afterwards) and
    ``clock=time.process_time`` (CPU time: a run preempted by other processes does not count
    the time it waited; wall-clock medians of multi-millisecond runs can double there).

    Raises:
        ValueError: the model has no cut (a single step) or ``repeats < 1``.

    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> p = profile_model(model, torch.ones(1, 4))
    >>> [(c.name, c.head_flops, c.tail_flops, c.raw_bytes) for c in p.cuts]
    [('<input>', 0, 96, 16), ('0', 64, 32, 32), ('1', 64, 32, 32)]
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int; got {repeats!r}")
    inputs = example_inputs(example_input)
    points = list_split_points(model, inputs, leaf_modules=leaf_modules)
    if not points:
        raise ValueError(
            f"model has no cut point ({type(model).__name__} runs as a single step): "
            "nothing to search; give a model with at least two steps"
        )
    steps = model_steps(model, leaf_modules, num_inputs=len(inputs))
    with evaluating(model), threads(num_threads):
        flops = steps.flops(inputs)
        seconds = steps.seconds(inputs, repeats, clock) if measure else None
    total_flops = int(flops.sum())
    head_flops = np.cumsum(flops)

    input_tensors = tuple(
        CrossingTensor(f"input[{i}]" if len(inputs) > 1 else "input", tuple(x.shape), x.dtype)
        for i, x in enumerate(inputs)
    )
    cuts = [CutProfile(INPUT_CUT, input_tensors, 0, total_flops)]
    for point in points:
        k = steps.position(point.name)
        h = int(head_flops[k])
        cuts.append(CutProfile(point.name, point.tensors, h, total_flops - h, step=k))
    profile = ModelProfile(tuple(cuts), total_flops)
    return profile if seconds is None else profile.with_seconds(seconds)


def model_steps(
    model: nn.Module,
    leaf_modules: Iterable[type[nn.Module]] | None = None,
    *,
    num_inputs: int | None = None,
) -> Any:
    """The steps of ``model`` that :func:`profile_model` counts and times, for calls with
    ``num_inputs`` positional inputs (see :func:`~aiflow_comm.split.trace_model`).

    An object with ``flops(inputs)`` and ``seconds(inputs, repeats, clock)`` (arrays, one
    value per step; run them in eval mode without gradients) and ``position(cut_name)``.
    """
    if is_plain_sequential(model):
        return _SequentialSteps(model)
    return _GraphSteps(trace_model(model, leaf_modules, num_inputs=num_inputs))


class _SequentialSteps:
    """The children of a plain ``nn.Sequential`` as steps."""

    def __init__(self, model: nn.Sequential) -> None:
        steps = sequential_steps(model)
        self.names = [name for name, _ in steps]
        self.children = [child for _, child in steps]

    def position(self, name: str) -> int:
        return self.names.index(name)

    def flops(self, inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
        out = np.zeros(len(self.children))
        value = inputs[0]
        with attention_slow_path():
            for i, child in enumerate(self.children):
                with flop_counter() as counter:
                    value = child(value)
                out[i] = counter.get_total_flops()
        return out

    def seconds(
        self,
        inputs: tuple[torch.Tensor, ...],
        repeats: int,
        clock: Callable[[], float] = time.perf_counter,
    ) -> np.ndarray:
        runs = []
        for _ in range(repeats + 1):
            value, times = inputs[0], []
            for child in self.children:
                start = clock()
                value = child(value)
                times.append(clock() - start)
            runs.append(times)
        return np.array([statistics.median(col) for col in zip(*runs[1:], strict=True)])


class _GraphSteps:
    """The nodes of a traced model as steps (placeholders and attributes take no time)."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.nodes = list(gm.graph.nodes)
        self.labels = {label: i for i, label in enumerate(node_labels(gm.graph).values())}

    def position(self, name: str) -> int:
        return self.labels[name]

    def _run(self, inputs: tuple[torch.Tensor, ...], wrap: Any) -> np.ndarray:
        """Run the graph node by node; ``wrap`` measures each compute call (arguments are
        gathered outside it, so a node's number covers its operation only)."""
        out = np.zeros(len(self.nodes))
        env: dict[fx.Node, Any] = {}
        remaining = iter(inputs)
        for i, n in enumerate(self.nodes):
            if n.op == "placeholder":
                env[n] = next(remaining)
                continue
            if n.op == "get_attr":
                env[n] = _attribute(self.gm, n.target)
                continue
            if n.op == "output":
                break
            args = fx.node.map_arg(n.args, env.__getitem__)
            kwargs = fx.node.map_arg(n.kwargs, env.__getitem__)
            if n.op == "call_module":
                fn = self.gm.get_submodule(n.target)
            elif n.op == "call_method":
                fn, args = getattr(args[0], n.target), args[1:]
            else:
                fn = n.target
            env[n], out[i] = wrap(lambda fn=fn, args=args, kwargs=kwargs: fn(*args, **kwargs))
        return out

    def flops(self, inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
        def counted(step: Any) -> tuple[Any, float]:
            with flop_counter() as counter:
                value = step()
            return value, counter.get_total_flops()

        with attention_slow_path():
            return self._run(inputs, counted)

    def seconds(
        self,
        inputs: tuple[torch.Tensor, ...],
        repeats: int,
        clock: Callable[[], float] = time.perf_counter,
    ) -> np.ndarray:
        def timed(step: Any) -> tuple[Any, float]:
            start = clock()
            value = step()
            return value, clock() - start

        runs = [self._run(inputs, timed) for _ in range(repeats + 1)]
        return np.median(np.stack(runs[1:]), axis=0)


def _attribute(module: nn.Module, target: str) -> Any:
    value: Any = module
    for part in target.split("."):
        value = getattr(value, part)
    return value


def flop_counter() -> FlopCounterMode:
    """A ``FlopCounterMode`` that also counts scaled dot-product attention and LSTM layers on
    the CPU, two fused kernels torch's counter has no formula for (they would count 0).

    ``F.scaled_dot_product_attention`` (which ``nn.MultiheadAttention`` calls with
    ``need_weights=False``, as ``nn.TransformerEncoderLayer`` does) runs
    ``aten._scaled_dot_product_flash_attention_for_cpu``: its two matmuls (``q k^T`` and the
    weights times ``v``) get the count torch gives the other fused attention kernels,
    ``2 * batch * heads * s_q * s_k * (d_qk + d_v)`` (a causal mask not discounted).
    ``nn.LSTM`` runs ``aten.mkldnn_rnn_layer`` once per layer and direction: its gate matmuls
    count ``2 * steps * batch * 4 * hidden * (in + hidden)`` (``nn.GRU``, ``nn.RNN`` and an LSTM
    with ``proj_size`` run ordinary matmuls, which torch counts).
    """
    mapping = {
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _attention_flops,
        torch.ops.aten.mkldnn_rnn_layer: _rnn_layer_flops,
    }
    return FlopCounterMode(display=False, custom_mapping=mapping)


def _attention_flops(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
    """FLOPs of ``softmax(q k^T) v`` from the shapes ``(..., s, d)`` of ``q``, ``k``, ``v``."""
    *lead, s_q, d_qk = query
    s_k, d_v = key[-2], value[-1]
    return 2 * math.prod(lead) * s_q * s_k * (d_qk + d_v)


def _rnn_layer_flops(inputs: Any, input_weight: Any, hidden_weight: Any, *args: Any,
                     **kwargs: Any) -> int:  # fmt: skip
    """FLOPs of one recurrent layer's gate matmuls from the shapes of its input ``(..., in)``
    and weights ``(gates * hidden, in)``, ``(gates * hidden, hidden)``: every step of every
    sequence multiplies its input and its previous hidden state."""
    steps = math.prod(inputs[:-1])
    return 2 * steps * input_weight[0] * (input_weight[1] + hidden_weight[1])


@contextmanager
def attention_slow_path() -> Iterator[None]:
    """PyTorch's attention fast path off inside, the previous setting restored after.

    In eval mode without gradients ``nn.MultiheadAttention`` and the ``nn.Transformer*Layer``
    s run fused native kernels that ``FlopCounterMode`` has no formula for: their FLOPs would
    count as 0. The slow path computes the same outputs with ordinary matmuls for the
    projections, and its attention (``F.scaled_dot_product_attention``) counts through
    :func:`flop_counter`.
    """
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


@contextmanager
def threads(num_threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(num_threads)`` inside, restored after (``None``: unchanged)."""
    if num_threads is None:
        yield
        return
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive int or None; got {num_threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
