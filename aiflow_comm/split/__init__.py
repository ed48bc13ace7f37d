"""Cutting a model in two: split points, head and tail, and the model that joins them."""

from aiflow_comm.split.cut import split_model
from aiflow_comm.split.link import SplitLink
from aiflow_comm.split.model import SplitModel
from aiflow_comm.split.points import CrossingTensor, SplitPoint, list_split_points
from aiflow_comm.split.trace import UntraceableModelError, trace_model

__all__ = [
    "CrossingTensor",
    "SplitLink",
    "SplitModel",
    "SplitPoint",
    "UntraceableModelError",
    "list_split_points",
    "split_model",
    "trace_model",
]
