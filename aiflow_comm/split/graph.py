"""Cuts of a torch.fx graph: where a graph can be cut, what crosses, head and tail graphs."""

from __future__ import annotations

import operator
from collections import Counter
from dataclasses import dataclass

import torch
from torch import fx, nn

__all__ = [
    "COMPUTE_OPS",
    "GraphCut",
    "cut_graph_module",
    "follow_model_attributes",
    "graph_cuts",
    "node_labels",
    "parameter_values",
    "writes_in_place",
]

COMPUTE_OPS = ("call_module", "call_function", "call_method")

_IN_PLACE_OPERATORS = frozenset({
    operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.ifloordiv,
    operator.imod, operator.ipow, operator.imatmul, operator.iand, operator.ior, operator.ixor,
    operator.ilshift, operator.irshift, operator.setitem,
})  # fmt: skip


@dataclass(frozen=True, eq=False)
class GraphCut:
    """A cut after ``node``: ``crossing`` are the values the head hands to the tail.

    ``crossing`` holds every placeholder or compute node at or before ``node`` (graph order)
    that a node after it uses, in graph order; ``crossing_names`` their labels. Parameters and
    buffers (``get_attr`` nodes) never cross: the tail reads them itself, and computes again
    what is computed from them alone (:func:`parameter_values`).
    """

    name: str
    node: fx.Node
    crossing: tuple[fx.Node, ...]
    crossing_names: tuple[str, ...]


def node_labels(graph: fx.Graph) -> dict[fx.Node, str]:
    """A unique label per node: the module path for a module called once, else the node name.

    A ``call_module`` node whose target (``"layer1.0.conv1"``) is called only once in the graph
    is labelled by that target; every other node by its fx name (``"relu_1"``, ``"add"``).

    >>> import torch
    >>> class Net(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc, self.act = torch.nn.Linear(2, 2), torch.nn.ReLU()
    ...     def forward(self, x):
    ...         return self.act(self.fc(self.act(x)))
    >>> list(node_labels(fx.symbolic_trace(Net()).graph).values())
    ['x', 'act', 'fc', 'act_1', 'output']
    """
    calls = Counter(n.target for n in graph.nodes if n.op == "call_module")
    by_name = {n.name: n for n in graph.nodes}
    labels = {}
    for n in graph.nodes:
        unique = n.op == "call_module" and calls[n.target] == 1
        labels[n] = n.target if unique and by_name.get(n.target, n) is n else n.name
    return labels


def parameter_values(graph: fx.Graph) -> set[fx.Node]:
    """The compute nodes whose value depends on parameters and buffers alone, never on the
    inputs (``self.log_t.exp()``): the tail computes them again rather than receive them, for a
    link could not send them (they have no batch dimension) and the edge holds the same
    parameters. Not those that draw random numbers or write in place, which would then run twice,
    nor those linked to memory the graph writes in place (a parameter or buffer updated, or such
    a value clamped in place: computed again, they would miss the write or see it too early).

    >>> class Scale(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.log_t = torch.nn.Parameter(torch.zeros(()))
    ...     def forward(self, x):
    ...         return x * self.log_t.exp()
    >>> sorted(n.name for n in parameter_values(fx.symbolic_trace(Scale()).graph))
    ['exp']
    """
    found: set[fx.Node] = set()
    for n in graph.nodes:
        inputs = n.all_input_nodes
        if (
            n.op in COMPUTE_OPS
            and inputs
            and all(m.op == "get_attr" or m in found for m in inputs)
            and not _random_or_in_place(n)
        ):
            found.add(n)
    owner = graph.owning_module
    written = [m for n in graph.nodes if writes_in_place(owner, n) for m in n.all_input_nodes]
    return found - _linked(written, found | {n for n in graph.nodes if n.op == "get_attr"})


def _linked(start: list[fx.Node], among: set[fx.Node]) -> set[fx.Node]:
    """The nodes of ``among`` joined to one of ``start`` through nodes of ``among`` (as input or
    user): a value computed from another may be a view of it, and share its memory."""
    linked: set[fx.Node] = set()
    stack = [n for n in start if n in among]
    while stack:
        n = stack.pop()
        if n not in linked:
            linked.add(n)
            stack.extend(m for m in (*n.all_input_nodes, *n.users) if m in among)
    return linked


def _random_or_in_place(n: fx.Node) -> bool:
    """Whether ``n`` may draw random numbers (dropout, ``rand*``, a module of either), write
    in place (a method or function whose name ends in ``_``, or ``inplace=True``) or update a
    module's state (:func:`_pure_module`)."""
    if n.op == "call_module":  # a graph without its module: the module is unknown
        owner = n.graph.owning_module
        return owner is None or not _pure_module(owner.get_submodule(n.target))
    name = n.target if isinstance(n.target, str) else getattr(n.target, "__name__", "")
    random = any(word in name for word in ("rand", "dropout", "bernoulli", "normal", "poisson"))
    return random or name.endswith("_") or n.kwargs.get("inplace", False) is True


def _pure_module(module: nn.Module) -> bool:
    """Whether ``module`` computes a function of its input and parameters in training as in
    evaluation: made of ``torch.nn``'s modules only, none of them dropout or ``RReLU`` (random),
    nor with a ``dropout`` rate (RNNs, attention), nor a norm tracking running statistics, an
    embedding renormalizing its weight (``max_norm``) or one built with ``inplace=True`` (they
    write)."""
    return all(_pure_part(part) for part in module.modules())


def _pure_part(module: nn.Module) -> bool:
    if not type(module).__module__.startswith("torch.nn.modules."):
        return False
    if isinstance(module, _RANDOM_MODULES) or getattr(module, "inplace", False) is True:
        return False
    if getattr(module, "track_running_stats", False) or getattr(module, "max_norm", None):
        return False
    rate = getattr(module, "dropout", 0)
    return not (isinstance(rate, int | float) and rate > 0)


_RANDOM_MODULES = (nn.modules.dropout._DropoutNd, nn.RReLU)


def writes_in_place(gm: fx.GraphModule | None, node: fx.Node) -> bool:
    """Whether ``node`` may write one of its inputs: an ``x.op_()`` method, an ``x += y`` or
    ``x[i] = y`` operator, a call with ``inplace=True`` or an ``out=`` tensor, a module built
    with ``inplace=True``, or a leaf module from outside ``torch`` or compiled by TorchScript
    (opaque: it may write). A module of a graph without its ``gm`` may write.

    >>> gm = fx.symbolic_trace(torch.nn.Sequential(torch.nn.ReLU(inplace=True), torch.nn.ReLU()))
    >>> [writes_in_place(gm, n) for n in gm.graph.nodes]
    [False, True, False, False]
    """
    if node.kwargs.get("inplace") is True or node.kwargs.get("out") is not None:
        return True
    if node.op == "call_method":
        return node.target.endswith("_") and not node.target.endswith("__")
    if node.op == "call_function":
        name = getattr(node.target, "__name__", "")
        return node.target in _IN_PLACE_OPERATORS or (name.endswith("_") and name[:1] != "_")
    if node.op == "call_module":
        if gm is None:
            return True
        module = gm.get_submodule(node.target)
        scripted = isinstance(module, torch.jit.ScriptModule)
        opaque = scripted or not type(module).__module__.startswith("torch.")
        return opaque or getattr(module, "inplace", False) is True
    return False


def graph_cuts(gm: fx.GraphModule) -> list[GraphCut]:
    """Every cut of ``gm``: after each compute node but the last, in graph (execution) order.

    >>> import torch
    >>> gm = fx.symbolic_trace(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()))
    >>> [(cut.name, cut.crossing_names) for cut in graph_cuts(gm)]
    [('0', ('0',))]
    """
    nodes = list(gm.graph.nodes)
    position = {n: i for i, n in enumerate(nodes)}
    last_use = {n: max((position[u] for u in n.users), default=-1) for n in nodes}
    labels = node_labels(gm.graph)
    compute = [n for n in nodes if n.op in COMPUTE_OPS]
    final = compute[-1] if compute else None
    recomputed = parameter_values(gm.graph)
    live: dict[fx.Node, None] = {}  # defined so far and used later, in graph order
    cuts = []
    for i, n in enumerate(nodes):
        if n.op in ("placeholder", *COMPUTE_OPS) and last_use[n] > i and n not in recomputed:
            live[n] = None
        for done in [m for m in live if last_use[m] <= i]:
            del live[done]
        if n.op in COMPUTE_OPS and n is not final:
            crossing = tuple(live)
            cuts.append(GraphCut(labels[n], n, crossing, tuple(labels[m] for m in crossing)))
    return cuts


def cut_graph_module(gm: fx.GraphModule, cut: GraphCut) -> tuple[fx.GraphModule, fx.GraphModule]:
    """``(head, tail)`` GraphModules with ``tail(head(*inputs))`` equal to ``gm(*inputs)``.

    The head takes ``gm``'s inputs and runs every node up to ``cut.node``; it returns the one
    crossing value, or a tuple of them when several cross. The tail takes that value (the
    tuple as one argument) and runs the rest. Both share ``gm``'s submodules, parameters and
    buffers (nothing is copied).

    >>> import torch
    >>> gm = fx.symbolic_trace(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()))
    >>> head, tail = cut_graph_module(gm, graph_cuts(gm)[0])
    >>> x = torch.randn(3, 2)
    >>> torch.equal(tail(head(x)), gm(x))
    True
    """
    nodes = list(gm.graph.nodes)
    stop = nodes.index(cut.node)
    owner = gm.__class__.__name__

    head_graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for n in nodes[: stop + 1]:
        env[n] = head_graph.node_copy(n, env.__getitem__)
    outputs = tuple(env[n] for n in cut.crossing)
    head_graph.output(outputs[0] if len(outputs) == 1 else outputs)

    tail_graph = fx.Graph()
    features = tail_graph.placeholder("features")
    if len(cut.crossing) == 1:
        env = {cut.crossing[0]: features}
    else:
        env = {
            n: tail_graph.call_function(operator.getitem, (features, i))
            for i, n in enumerate(cut.crossing)
        }
    after = set(nodes[stop + 1 :])
    # What the tail reads of the head's side without receiving it: parameters and buffers, and
    # values computed from them alone (computed again), back from their users after the cut.
    own = parameter_values(gm.graph)
    needed: set[fx.Node] = set()
    for n in reversed(nodes[: stop + 1]):
        if (n.op == "get_attr" or n in own) and not (after | needed).isdisjoint(n.users):
            needed.add(n)
    for n in nodes:
        if n in after or n in needed:
            env[n] = tail_graph.node_copy(n, env.__getitem__)
    return (
        fx.GraphModule(gm, head_graph, f"{owner}Head"),
        fx.GraphModule(gm, tail_graph, f"{owner}Tail"),
    )


def follow_model_attributes(gm: fx.GraphModule, model: nn.Module) -> None:
    """Keep the parameters and buffers ``gm``'s graph fetches (``get_attr``) shared with
    ``model``: at every call, a tensor replaced on either side (``model.to()`` or ``gm.to()``
    replace buffers; an assignment) is handed to the other. A GraphModule holds such tensors
    itself, so without this one side would keep the old one.

    >>> import torch
    >>> class Scaled(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.register_buffer("scale", torch.tensor(2.0))
    ...     def forward(self, x):
    ...         return x * self.scale
    >>> model = Scaled()
    >>> gm = fx.symbolic_trace(model)
    >>> follow_model_attributes(gm, model)
    >>> model.scale = torch.tensor(3.0)
    >>> gm(torch.ones(1))
    tensor([3.])
    """
    # [the model's module that owns the tensor, gm's copy of that module, the name, the tensor
    # both held when last in step]
    links = []
    for node in gm.graph.nodes:
        if node.op == "get_attr":
            path, _, name = node.target.rpartition(".")
            holder = gm.get_submodule(path)
            links.append([model.get_submodule(path), holder, name, _attribute(holder, name)])
    if links:
        gm.register_forward_pre_hook(_FollowAttributes(links))


class _FollowAttributes:
    """The forward pre-hook of :func:`follow_model_attributes`. A class, not a closure, so that
    the module it hooks pickles (``torch.save``); it pickles without its links, which are the
    original model's: a GraphModule drops its forward hooks when loaded or deep-copied."""

    def __init__(self, links: list[list]) -> None:
        self.links = links

    def __call__(self, module: nn.Module, args: object) -> None:
        for link in self.links:
            owner, holder, name, last = link
            held, live = _attribute(holder, name), _attribute(owner, name)
            if held is not last:  # replaced on this side (split.to(), an assignment): share it
                if live is not held:
                    setattr(owner, name, held)
                link[3] = held
            elif live is not last:  # replaced on the model's side (model.to(), an assignment)
                setattr(holder, name, live)
                link[3] = live

    def __reduce__(self) -> tuple[type, tuple[list]]:
        return _FollowAttributes, ([],)


def _attribute(module: nn.Module, name: str) -> object:
    """``getattr(module, name)``, reading the parameter and buffer dicts first (a hook runs this
    for every fetched tensor at every call: ``Module.__getattr__`` costs several times more;
    a TorchScript module's are not dicts)."""
    if isinstance(module, torch.jit.ScriptModule):
        return getattr(module, name)
    found = module._parameters.get(name)
    if found is None:
        found = module._buffers.get(name)
    return getattr(module, name) if found is None else found
