"""Channel-aware split-point search: profiles, tiers, link cost models, plans, Pareto fronts."""

from aiflow_comm.search.accuracy import AccuracyTable, measure_accuracy
from aiflow_comm.search.link import LinkModel, LinkState, lognormal_snr_states
from aiflow_comm.search.mcs import NR_CQI_TABLE, BlerCurve, McsTable
from aiflow_comm.search.pareto import pareto_front
from aiflow_comm.search.payload import Codec, payload_bits
from aiflow_comm.search.planner import search_plans
from aiflow_comm.search.plans import Plan
from aiflow_comm.search.profiling import INPUT_CUT, CutProfile, ModelProfile, profile_model
from aiflow_comm.search.reference import exhaustive_search
from aiflow_comm.search.result import SearchResult
from aiflow_comm.search.tiers import Tier
from aiflow_comm.search.validate import ValidationReport, validate_plan_choice

__all__ = [
    "INPUT_CUT",
    "NR_CQI_TABLE",
    "AccuracyTable",
    "BlerCurve",
    "Codec",
    "CutProfile",
    "LinkModel",
    "LinkState",
    "McsTable",
    "ModelProfile",
    "Plan",
    "SearchResult",
    "Tier",
    "ValidationReport",
    "exhaustive_search",
    "lognormal_snr_states",
    "measure_accuracy",
    "pareto_front",
    "payload_bits",
    "profile_model",
    "search_plans",
    "validate_plan_choice",
]
