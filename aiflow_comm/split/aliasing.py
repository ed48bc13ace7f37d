"""Cuts a real link would break: crossing tensors that share memory the tail writes in place.

In the model, a view and its base are one memory: an in-place op on one shows in the other. Once
the head's outputs are sent, the tail holds separate copies, and such a write no longer reaches
the copy of the other tensor, so the split differs from the model. Which tensors share memory is
known only by running the model (:class:`StorageProp`, on the example input).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx
from torch.fx.passes.shape_prop import ShapeProp

from aiflow_comm.split.graph import GraphCut, writes_in_place

__all__ = ["StorageProp", "shares_written_memory"]


class StorageProp(ShapeProp):
    """:class:`ShapeProp` that also records, as ``node.meta["storage"]``, which storage each
    tensor value lives in (views share their base's): the address of its storage object, which
    unlike the data's address also tells storages apart on the meta device (all at 0 there)."""

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if isinstance(result, torch.Tensor) and result.layout == torch.strided:
            n.meta["storage"] = result.untyped_storage()._cdata
        return result


def shares_written_memory(gm: fx.GraphModule, cut: GraphCut) -> bool:
    """Whether two tensors crossing ``cut`` share memory, or one shares a parameter's or
    buffer's (``self.var.mul_(0.5)`` returns the buffer: the tail would update its copy), and a
    node after the cut writes in place (``gm`` run by :class:`StorageProp` first)."""
    storages = [n.meta.get("storage") for n in cut.crossing]
    crossing = [storage for storage in storages if storage is not None]
    held = {n.meta.get("storage") for n in gm.graph.nodes if n.op == "get_attr"}
    if len(set(crossing)) == len(crossing) and held.isdisjoint(crossing):
        return False
    nodes = list(gm.graph.nodes)
    return any(writes_in_place(gm, n) for n in nodes[nodes.index(cut.node) + 1 :])
