"""Tracing a model into a torch.fx graph, with chosen submodule types kept whole (leaves)."""

from __future__ import annotations

from collections.abc import Iterable

from torch import fx, nn

__all__ = ["UntraceableModelError", "is_plain_sequential", "sequential_steps", "trace_model"]


class UntraceableModelError(ValueError):
    """torch.fx could not trace a model, so its cut points cannot be found automatically.

    The message carries the fx error and the ways to name cut points by hand.
    """


class _LeafTracer(fx.Tracer):
    """fx tracer that also keeps instances of ``leaf_types`` whole (one ``call_module`` node)."""

    def __init__(self, leaf_types: tuple[type[nn.Module], ...]) -> None:
        super().__init__()
        self.leaf_types = leaf_types

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, self.leaf_types) or super().is_leaf_module(m, module_qualified_name)


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
    model: nn.Module, leaf_modules: Iterable[type[nn.Module]] | None = None
) -> fx.GraphModule:
    """``model`` traced by torch.fx, its submodules shared (not copied) with ``model``.

    Submodules from ``torch.nn`` (except ``nn.Sequential``) and instances of the classes in
    ``leaf_modules`` stay whole: one ``call_module`` node each, never cut inside. Make a
    submodule with data-dependent Python control flow (``if x.sum() > 0:``) a leaf so the rest
    of the model can be traced. Shapes are not specialized: the graph holds for any input size
    the model's code accepts. Code that reads ``self.training`` is traced in the current mode.

    Raises:
        UntraceableModelError: fx failed; the message says why and how to cut by hand.

    >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    >>> [node.op for node in trace_model(model).graph.nodes]
    ['placeholder', 'call_module', 'call_module', 'output']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
    tracer = _LeafTracer(check_leaf_modules(leaf_modules))
    name = type(model).__name__
    try:
        graph = tracer.trace(model)
    except Exception as error:
        raise UntraceableModelError(
            f"torch.fx cannot trace {name}: {type(error).__name__}: {error}. "
            "Name the cut points by hand instead: make the submodule that fx cannot trace "
            "(data-dependent control flow such as `if x.sum() > 0:`, calls outside torch) "
            "opaque with leaf_modules=[ItsClass], so it runs whole on one side of the cut; "
            "or restructure the model as an nn.Sequential, whose children are the cut points "
            "(split_model(model, at='<child name>')) and need no tracing."
        ) from error
    return fx.GraphModule(tracer.root, graph, name)
