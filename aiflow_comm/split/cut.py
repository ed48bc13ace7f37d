"""``split_model``: cut a model at a named point into a head and a tail."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence

from torch import nn

from aiflow_comm.split.aliasing import shares_written_memory
from aiflow_comm.split.fidelity import check_trace
from aiflow_comm.split.graph import (
    COMPUTE_OPS,
    cut_graph_module,
    follow_model_attributes,
    graph_cuts,
    node_labels,
)
from aiflow_comm.split.model import SplitModel
from aiflow_comm.split.points import (
    ExampleInput,
    SplitPoint,
    example_inputs,
    graph_points,
    materialize_lazy,
    sequential_points,
)
from aiflow_comm.split.trace import is_plain_sequential, sequential_steps, trace_model

__all__ = ["split_model"]


def split_model(
    model: nn.Module,
    at: str | SplitPoint,
    example_input: ExampleInput | None = None,
    *,
    leaf_modules: Iterable[type[nn.Module]] | None = None,
) -> SplitModel:
    """``model`` cut after ``at``: a :class:`SplitModel` whose ``tail(head(x))`` is ``model(x)``.

    * A plain ``nn.Sequential``: ``head`` holds the children up to and including ``at``,
      ``tail`` the rest (``nn.Sequential`` s of the same child modules).
    * Any other model: ``head`` and ``tail`` are ``torch.fx.GraphModule`` s built from the
      model's fx graph (see :func:`list_split_points` for the names). When several values cross
      the cut, ``head`` returns them as a tuple (in execution order) and ``tail`` takes that
      tuple as its one argument. Each side can be exported alone with ``torch.export``.

    Submodules, parameters and buffers are shared with ``model``, never copied: training the
    split model trains ``model``, and a parameter or buffer that ``model.to()`` or an assignment
    replaces is read anew by the next call. Code that reads ``self.training`` outside leaf
    modules is frozen in the mode the model has now. Arguments of ``forward`` after the example's
    inputs (all that have a default, without an example) are traced at their default value
    (see :func:`~aiflow_comm.split.trace_model`): give them in ``example_input`` to keep them.

    Args:
        model: the model to cut.
        at: a cut name from :func:`list_split_points`, or the :class:`SplitPoint` itself.
        example_input: optional; when given, the traced graph is checked against the model on
            it (:class:`UntraceableModelError` if they differ), ``.point`` reports the cut's
            crossing tensors, and a cut whose crossing tensors share memory that the tail
            writes in place is refused (a link would break it). The cut itself needs only the
            graph.
        leaf_modules: submodule classes fx keeps whole (see
            :func:`~aiflow_comm.split.trace_model`); ignored for ``nn.Sequential``.

    Raises:
        ValueError: ``at`` names no cut (the message lists valid names), is a
            :class:`SplitPoint` whose tensors are not those crossing the cut as traced here
            (listed with other inputs: pass the same ``example_input``), or the cut shares
            written memory across the link (above).
        UntraceableModelError: fx cannot trace ``model``; the message says how to cut by hand.

    >>> import torch
    >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).eval()
    >>> split = split_model(model, at="1")
    >>> x = torch.randn(5, 4)
    >>> torch.equal(split.tail(split.head(x)), model(x)), len(split.tail)
    (True, 1)
    """
    if isinstance(at, SplitPoint):
        name, point = at.name, at
    elif isinstance(at, str):
        name, point = at, None
    else:
        raise TypeError(f"at must be a cut name (str) or a SplitPoint; got {type(at).__name__}")
    inputs = None if example_input is None else example_inputs(example_input)
    if inputs is not None:
        materialize_lazy(model, inputs)

    if is_plain_sequential(model):
        children = sequential_steps(model)
        names = [child for child, _ in children]
        _check_name(name, names[:-1], names[-1:])
        k = names.index(name) + 1
        head = nn.Sequential(OrderedDict(children[:k]))
        tail = nn.Sequential(OrderedDict(children[k:]))
        if point is None and inputs is not None:
            point = _find(sequential_points(model, inputs), name)
        return SplitModel(head, None, tail, point=point)

    gm = trace_model(model, leaf_modules, num_inputs=None if inputs is None else len(inputs))
    if inputs is not None:
        check_trace(model, gm, inputs)
    cuts = graph_cuts(gm)
    compute = [label for n, label in node_labels(gm.graph).items() if n.op in COMPUTE_OPS]
    _check_name(name, [cut.name for cut in cuts], compute[-1:])
    cut = next(cut for cut in cuts if cut.name == name)
    if point is not None and tuple(t.name for t in point.tensors) != cut.crossing_names:
        raise ValueError(
            f"at is the SplitPoint {name!r} listed with other inputs: "
            f"{[t.name for t in point.tensors]} cross it, {list(cut.crossing_names)} cross "
            "this trace's cut; pass the example_input it was listed with"
        )
    head, tail = cut_graph_module(gm, cut)
    follow_model_attributes(head, model)
    follow_model_attributes(tail, model)
    if inputs is not None:
        found = _find(graph_points(gm, cuts, inputs), name)
        if shares_written_memory(gm, cut):
            raise ValueError(
                f"at={name!r}: tensors crossing this cut ({', '.join(cut.crossing_names)}) share "
                "memory that the tail writes in place; sent, they are separate copies and the "
                "split would differ from the model. Cut elsewhere (list_split_points leaves "
                "this cut out)"
            )
        point = point or found
    return SplitModel(head, None, tail, point=point)


def _find(points: list[SplitPoint], name: str) -> SplitPoint | None:
    return next((p for p in points if p.name == name), None)


def _check_name(name: str, valid: Sequence[str], last: Sequence[str]) -> None:
    if name in valid:
        return
    if len(valid) > 8:
        shown = ", ".join([*map(repr, valid[:5]), "...", *map(repr, valid[-2:])])
    else:
        shown = ", ".join(map(repr, valid)) or "none"
    if name in last:
        why = f"at={name!r} is the model's last step: the tail would be empty"
    else:
        why = f"at must name a cut point of the model; got {name!r}"
    raise ValueError(
        f"{why}. Valid names ({len(valid)}): {shown}; "
        "list_split_points(model, example_input) lists them with their shapes"
    )
