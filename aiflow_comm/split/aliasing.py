"""Cuts a real link would break: crossing tensors that share memory the tail writes in place.

In the model, a view and its base are one memory: an in-place op on one shows in the other. Once
the head's outputs are sent, the tail holds separate copies, and such a write no longer reaches
the copy of the other tensor, so the split differs from the model. Which tensors share memory is
known only by running the model (:class:`StorageProp`, on the example input).
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx
from torch.fx.passes.shape_prop import ShapeProp

from aiflow_comm.split.graph import GraphCut

__all__ = ["StorageProp", "shares_written_memory", "writes_in_place"]

_IN_PLACE_OPERATORS = frozenset({
    operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.ifloordiv,
    operator.imod, operator.ipow, operator.imatmul, operator.iand, operator.ior, operator.ixor,
    operator.ilshift, operator.irshift, operator.setitem,
})  # fmt: skip


class StorageProp(ShapeProp):
    """:class:`ShapeProp` that also records, as ``node.meta["storage"]``, the address of the
    memory each tensor value lives in (views share their base's)."""

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if isinstance(result, torch.Tensor) and result.layout == torch.strided:
            n.meta["storage"] = result.untyped_storage().data_ptr()
        return result


def writes_in_place(gm: fx.GraphModule, node: fx.Node) -> bool:
    """Whether ``node`` may write one of its inputs: an ``x.op_()`` method, an ``x += y`` or
    ``x[i] = y`` operator, a call with ``inplace=True`` or an ``out=`` tensor, a module built
    with ``inplace=True``, or a leaf module from outside ``torch`` or compiled by TorchScript
    (opaque: it may write).

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
        module = gm.get_submodule(node.target)
        scripted = isinstance(module, torch.jit.ScriptModule)
        opaque = scripted or not type(module).__module__.startswith("torch.")
        return opaque or getattr(module, "inplace", False) is True
    return False


def shares_written_memory(gm: fx.GraphModule, cut: GraphCut) -> bool:
    """Whether two tensors crossing ``cut`` share memory and a node after the cut writes in
    place (``gm`` run by :class:`StorageProp` first)."""
    storages = [n.meta.get("storage") for n in cut.crossing]
    shared = [address for address in storages if address]
    if len(set(shared)) == len(shared):
        return False
    nodes = list(gm.graph.nodes)
    return any(writes_in_place(gm, n) for n in nodes[nodes.index(cut.node) + 1 :])
