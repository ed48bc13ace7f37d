"""Tracing a model into a torch.fx graph, with chosen submodule types kept whole (leaves)."""

from __future__ import annotations

import ast
import enum
import functools
import inspect
import re
import textwrap
import warnings
from collections.abc import Callable, Iterable

import torch
from torch import fx, nn
from torch.nn.parameter import UninitializedBuffer

__all__ = ["UntraceableModelError", "is_plain_sequential", "sequential_steps", "trace_model"]


class UntraceableModelError(ValueError):
    """torch.fx could not trace a model, so its cut points cannot be found automatically.

    The message carries the fx error and the ways to name cut points by hand.
    """


# Grad-mode and autocast switches: fx runs them while tracing but does not record them.
_UNRECORDED_CONTEXTS = frozenset(
    {"no_grad", "enable_grad", "set_grad_enabled", "inference_mode", "autocast"}
)


@functools.cache
def uses_unrecorded_context(cls: type[nn.Module]) -> bool:
    """Whether ``cls.forward``'s code (not its comments or strings) names a grad-mode or
    autocast switch (``with torch.no_grad():``, a decorator, a call): a graph traced through it
    would run that code without it."""
    if cls.__module__.startswith("torch."):
        return False
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls.forward)))
    except (OSError, TypeError, SyntaxError):
        return False
    for node in ast.walk(tree):
        name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
        if isinstance(node, ast.Name | ast.Attribute) and name in _UNRECORDED_CONTEXTS:
            return True
    return False


class _LeafTracer(fx.Tracer):
    """fx tracer that also keeps whole (one ``call_module`` node) the instances of
    ``leaf_types``, the submodules whose ``forward`` uses ``torch.no_grad``, ``autocast``
    and the like, which a traced graph would drop, and TorchScript modules (``torch.jit.script``
    or ``trace``), whose compiled code fx cannot see into. Buffers are read through the graph
    like parameters: a value computed from one (``self.log_scale.exp()``) is computed at every
    call, not frozen into the graph as a constant; with ``proxy_buffers=False`` (for code that
    branches on a buffer) they are read as the values they hold while tracing."""

    def __init__(self, leaf_types: tuple[type[nn.Module], ...], proxy_buffers: bool = True) -> None:
        super().__init__()
        self.leaf_types = leaf_types
        self.proxy_buffer_attributes = proxy_buffers
        self.constant_inputs: dict[str, object] = {}

    def create_args_for_root(
        self, root_fn: Callable[..., object], is_module: bool, concrete_args: object = None
    ) -> tuple[Callable[..., object], list[object]]:
        """fx's inputs for ``root_fn``, but ``forward`` reads each of ``constant_inputs`` (by
        argument name) as its value, with no input in the graph: ``if mask is None:`` takes the
        branch a call without ``mask`` takes, the graph records where a value is used, and
        ``*dims`` or a loop over it runs in Python (a proxy cannot be iterated; fx's
        ``concrete_args`` would leave an input checked against the value, and flatten a
        container into inputs of its own)."""
        root_fn, args = super().create_args_for_root(root_fn, is_module, concrete_args)
        values = []
        for arg in args:
            name = arg.node.target if isinstance(arg, fx.Proxy) else None
            if name in self.constant_inputs:  # a placeholder's target is its argument's name
                self._erase_with_unused_inputs(arg.node)
                arg = self.constant_inputs[name]
            values.append(arg)
        return root_fn, values

    def _erase_with_unused_inputs(self, node: fx.Node) -> None:
        """Erase ``node``, then the nodes only it used: fx builds a namedtuple default in nodes
        of its own, which the placeholder takes as its default."""
        doomed = [node]
        while doomed:
            node = doomed.pop()
            if not node.users:
                inputs = node.all_input_nodes
                self.graph.erase_node(node)
                doomed.extend(inputs)

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return (
            isinstance(m, self.leaf_types)
            or super().is_leaf_module(m, module_qualified_name)
            or isinstance(m, torch.jit.ScriptModule)
            or uses_unrecorded_context(type(m))
        )


_FIXABLE_DEFAULTS = (
    type(None), bool, int, float, str, torch.Tensor, torch.dtype, torch.device, torch.layout,
    torch.memory_format, enum.Enum,
)  # fmt: skip


def _fixed_defaults(model: nn.Module, num_inputs: int | None) -> dict[str, object]:
    """The arguments of ``model.forward`` to trace at their default: those after the first
    ``num_inputs`` (when ``None``: after the required ones, and after the first in any case)
    whose default is None, a bool, a number, a string, a tensor, a torch dtype, device, layout
    or memory format, an enum member, or a tuple, list or dict of None, bools, numbers and
    strings. ``if mask is None:`` then takes the branch a call without ``mask`` takes (traced as
    an input, ``mask`` would never be None)."""
    try:
        parameters = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return {}
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.POSITIONAL_ONLY)
    positional = [p for p in parameters if p.kind in kinds]
    name = type(model).__name__
    if num_inputs is not None:
        required = [p.name for p in positional if p.default is inspect.Parameter.empty]
        varargs = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
        if num_inputs < len(required) or (num_inputs > len(positional) and not varargs):
            counts = sorted({len(required), len(positional)})
            raise ValueError(
                f"example_input holds {num_inputs} value(s); {name}.forward takes "
                f"{' to '.join(map(str, counts))} positional input(s) "
                f"({', '.join(p.name for p in positional)})"
            )
    # Without an example: the required inputs, and at least the first (forward(x=None)).
    first = max(1, sum(p.default is inspect.Parameter.empty for p in positional))
    first = first if num_inputs is None else num_inputs
    fixed = {}
    for i, p in enumerate(parameters):
        skip = p in positional and i < first
        has_default = p.default is not inspect.Parameter.empty
        if (
            not skip
            and has_default
            and (isinstance(p.default, _FIXABLE_DEFAULTS) or _constant_container(p.default))
        ):
            fixed[p.name] = p.default
    return fixed


def _constant_container(value: object) -> bool:
    """Whether ``value`` is a tuple, list or dict (string keys) of None, bools, numbers and
    strings, nested or not: a constant default (a tensor's items are not)."""

    def plain(v: object) -> bool:
        if isinstance(v, tuple | list):
            return all(plain(item) for item in v)
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(item) for k, item in v.items())
        return isinstance(v, type(None) | bool | int | float | str)

    return isinstance(value, tuple | list | dict) and plain(value)


def _drop_tensor_defaults(graph: fx.Graph) -> None:
    """Remove the tensor defaults of the graph's inputs: fx records such a default as a constant
    that its generated code cannot name (``NameError`` when the graph is compiled). An input
    given in the example is given at every call."""
    for node in list(graph.nodes):
        defaults = node.all_input_nodes if node.op == "placeholder" else []
        if defaults:
            node.args = ()
            for default in defaults:
                if not default.users:
                    graph.erase_node(default)


# A buffer as it was before tracing: its module, name, tensor, version counter and value.
_BufferState = list[tuple[nn.Module, str, str, torch.Tensor, int, torch.Tensor]]


def buffer_state(model: nn.Module) -> _BufferState:
    """``model``'s buffers, to be put back by :func:`restore_buffers` (after tracing, or a run
    that must leave the model as it was)."""
    return [
        (module, prefix, key, b, b._version, b.detach().clone())
        for prefix, module in model.named_modules()
        for key, b in module._buffers.items()
        # An inference tensor has no version; a lazy module's buffer has no value before the
        # module's first call, which makes it.
        if b is not None and not isinstance(b, UninitializedBuffer) and not b.is_inference()
    ]


def restore_buffers(state: _BufferState) -> list[str]:
    """Put back the buffers that were replaced (tracing ``self.count += 1`` assigns fx's proxy
    of the sum; a run assigns the sum) or written in place; their names."""
    changed = []
    for module, prefix, key, tensor, version, value in state:
        replaced, written = getattr(module, key, None) is not tensor, tensor._version != version
        if replaced:
            module._buffers[key] = tensor
        if written:
            with torch.no_grad():
                tensor.copy_(value)
        if replaced or written:
            changed.append(f"{prefix}.{key}" if prefix else key)
    return changed


def _trace(tracer: fx.Tracer, model: nn.Module, fixed: dict[str, object]) -> fx.Graph:
    """``model``'s graph with the ``fixed`` inputs at their value, which ``forward`` reads as
    they are (:attr:`_LeafTracer.constant_inputs`): the graph takes the other inputs only."""
    tracer.constant_inputs = fixed
    return tracer.trace(model)


def is_plain_sequential(model: nn.Module) -> bool:
    """Whether ``model`` is an ``nn.Sequential`` that runs its children in order.

    A subclass that overrides ``forward`` is not: it is cut through its fx graph instead.

    >>> is_plain_sequential(nn.Sequential(nn.ReLU())), is_plain_sequential(nn.ReLU())
    (True, False)
    """
    return isinstance(model, nn.Sequential) and type(model).forward is nn.Sequential.forward


def sequential_steps(model: nn.Sequential) -> list[tuple[str, nn.Module]]:
    """The ``(name, child)`` steps a plain ``nn.Sequential`` runs, in order: a module placed twice
    counts twice (``named_children()`` skips a module it has already returned).

    >>> relu = nn.ReLU()
    >>> [name for name, _ in sequential_steps(nn.Sequential(nn.Linear(2, 2), relu, relu))]
    ['0', '1', '2']
    """
    return list(model._modules.items())


def check_leaf_modules(
    leaf_modules: Iterable[type[nn.Module]] | type[nn.Module] | None,
) -> tuple[type[nn.Module], ...]:
    """``leaf_modules`` as a tuple of ``nn.Module`` subclasses (a single class is accepted)."""
    if leaf_modules is None:
        return ()
    if isinstance(leaf_modules, type):
        leaf_modules = (leaf_modules,)
    if isinstance(leaf_modules, str):  # iterating it would name its first character
        raise TypeError(
            "leaf_modules must be an iterable of nn.Module subclasses (the classes themselves, "
            f"e.g. [nn.MultiheadAttention]) or None; got the string {leaf_modules!r}"
        )
    try:
        types = tuple(leaf_modules)
    except TypeError:
        raise TypeError(
            f"leaf_modules must be an iterable of nn.Module subclasses or None; "
            f"got {leaf_modules!r}"
        ) from None
    for t in types:
        if not (isinstance(t, type) and issubclass(t, nn.Module)):
            raise TypeError(
                f"leaf_modules must hold nn.Module subclasses (classes, not instances); got {t!r}"
            )
    return types


def trace_model(
    model: nn.Module,
    leaf_modules: Iterable[type[nn.Module]] | None = None,
    *,
    num_inputs: int | None = None,
) -> fx.GraphModule:
    """``model`` traced by torch.fx, its submodules shared (not copied) with ``model``.

    Submodules from ``torch.nn`` (except ``nn.Sequential``) and instances of the classes in
    ``leaf_modules`` stay whole: one ``call_module`` node each, never cut inside. Make a
    submodule with data-dependent Python control flow (``if x.sum() > 0:``) a leaf so the rest
    of the model can be traced. Shapes are not specialized: the graph holds for any input size
    the model's code accepts. Code that reads ``self.training`` is traced in the current mode.

    fx records tensor operations only, so two things are done for it: a submodule whose
    ``forward`` uses ``torch.no_grad``, ``torch.autocast`` (or ``enable_grad``,
    ``set_grad_enabled``, ``inference_mode``) stays whole, as a leaf; and the arguments after
    the first ``num_inputs`` (when None: after the required ones, and after the first in any
    case) are traced at their default value (None, a bool, a number, a string, a tensor, a torch
    dtype or device, an enum member, or a tuple, list or dict of None, bools, numbers and
    strings, which the code may unpack or loop over), so that
    ``if mask is None:`` takes the branch the model takes without them; the graph then takes the
    first inputs only. A model whose own ``forward`` uses such a context manager is traced
    with a warning: the graph runs that code outside it. A model whose traced code assigns a
    buffer (``self.count += 1``) or writes one that fx does not see (through ``model.buffers()``:
    the write runs once, while tracing) is refused, its buffers restored, and so is one that
    computes from parameters fx does not see (``model.parameters()``, a TorchScript module's):
    the graph would freeze the result as a constant. Other Python effects
    fx cannot see (``v += 1`` on a view of a tensor used later) are caught by comparing the graph
    with the model on an example input (:func:`~aiflow_comm.split.list_split_points` and
    ``split_model(..., example_input)`` do).

    Raises:
        UntraceableModelError: fx failed, or the code it traced assigned or wrote a buffer or
            froze a parameter (above); the message says why and how to cut by hand.
        ValueError: ``num_inputs`` does not fit ``model.forward``'s positional arguments.
        TypeError: ``model`` is not an ``nn.Module``, or is a ``torch.compile`` wrapper.

    >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    >>> [node.op for node in trace_model(model).graph.nodes]
    ['placeholder', 'call_module', 'call_module', 'output']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
    if isinstance(getattr(model, "_orig_mod", None), nn.Module):
        raise TypeError(
            "model is a torch.compile wrapper; split the original module (model._orig_mod) and "
            "compile the head and tail instead"
        )
    tracer = _LeafTracer(check_leaf_modules(leaf_modules))
    name = type(model).__name__
    fixed = _fixed_defaults(model, num_inputs)
    if uses_unrecorded_context(type(model)):
        warnings.warn(
            f"{name}.forward uses torch.no_grad, autocast or another grad-mode context, which "
            "torch.fx does not record: the split runs that code without it (gradients may "
            "reach frozen layers, precision may differ). Move that code into a submodule, "
            "which is then kept whole.",
            UserWarning,
            stacklevel=2,
        )
    buffers = buffer_state(model)
    try:
        try:
            graph = _trace(tracer, model, fixed)
        except fx.proxy.TraceError:
            # Code that branches or loops on a buffer (`if not self.initialized:`) cannot take
            # it as a graph input: trace it again with buffers read as the values they hold.
            restore_buffers(buffers)
            tracer = _LeafTracer(check_leaf_modules(leaf_modules), proxy_buffers=False)
            graph = _trace(tracer, model, fixed)
    except Exception as error:
        raise UntraceableModelError(
            f"torch.fx cannot trace {name}: {type(error).__name__}: {error}. "
            "Name the cut points by hand instead: make the submodule that fx cannot trace "
            "(data-dependent control flow such as `if x.sum() > 0:`, calls outside torch) "
            "opaque with leaf_modules=[ItsClass], so it runs whole on one side of the cut; "
            "or restructure the model as an nn.Sequential, whose children are the cut points "
            "(split_model(model, at='<child name>')) and need no tracing."
        ) from error
    finally:
        written = restore_buffers(buffers)
    if written:
        raise UntraceableModelError(
            f"{name} assigns or writes buffer(s) {', '.join(written)} in a way torch.fx does not "
            "record (`self.count += 1` assigns the sum: write `self.count.add_(1)`; a write "
            "through model.buffers() runs once, while tracing). Make the submodule that does "
            "this opaque with leaf_modules=[ItsClass], or cut a plain nn.Sequential by its "
            "children."
        )
    frozen = [
        n.target
        for n in graph.nodes
        if n.op == "get_attr"
        and re.fullmatch(r"_tensor_constant\d+", n.target)
        and getattr(getattr(tracer.root, n.target, None), "requires_grad", False)
    ]
    if frozen:
        raise UntraceableModelError(
            f"{name} computes a tensor from parameters that torch.fx does not see (read through "
            "model.parameters() or from a TorchScript module): the graph would hold it as a "
            f"constant ({', '.join(frozen)}) that training never changes. Read parameters as "
            "attributes (self.fc.weight), or make the submodule that does this opaque with "
            "leaf_modules=[ItsClass]."
        )
    _drop_tensor_defaults(graph)
    graph.lint()
    clashes = sorted(
        {n.target.partition(".")[0] for n in graph.nodes if n.op in ("call_module", "get_attr")}
        & _GRAPH_MODULE_NAMES
    )
    if clashes:
        raise UntraceableModelError(
            f"torch.fx cannot hold {name}'s graph: the name(s) {clashes} of its submodules or "
            "tensors are torch.fx.GraphModule's own attributes, which the graph would read "
            "instead. Rename them, or cut a plain nn.Sequential by its children."
        )
    return fx.GraphModule(tracer.root, graph, name)


# What a GraphModule holds itself (recompile, code, meta, ...): a top-level submodule, parameter
# or buffer of one of these names cannot be copied into it, or is shadowed there.
_GRAPH_MODULE_NAMES = frozenset(dir(fx.GraphModule)) | frozenset(
    vars(fx.GraphModule(nn.Module(), fx.Graph()))
)
