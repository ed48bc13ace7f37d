"""``Tier``: a machine that runs part of a model (device, edge server, cloud), speed and power."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

__all__ = ["Tier"]


def _check(name: str, value: float | None, *, positive: bool, optional: bool = False) -> None:
    if value is None and optional:
        return
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        accepted = "a finite number > 0" if positive else "a finite number >= 0"
        raise ValueError(
            f"{name} must be {accepted}{' or None' if optional else ''}; got {value!r}"
        )


@dataclass(frozen=True)
class Tier:
    """A machine in the split: how fast it computes and what it draws.

    Compute time of ``flops`` (with ``measured_s`` the same work timed on this machine):

    * ``time_scale`` given and a measured time available: ``measured_s * time_scale`` (the tier
      is ``1 / time_scale`` times as fast as this machine: layer-by-layer costs carry over);
    * else ``flops / flops_per_s`` (effective, not peak, FLOP/s).

    Power (for the device's energy): ``power_w`` while computing, ``tx_power_w`` while
    transmitting, ``idle_power_w`` while waiting for the other tiers.

    >>> Tier("device", 1e9, 2.0).compute_s(5e8)
    0.5
    >>> Tier("edge", time_scale=0.25).compute_s(5e8, measured_s=0.2)
    0.05
    """

    name: str
    flops_per_s: float | None = None
    power_w: float = 0.0
    tx_power_w: float = 0.0
    idle_power_w: float = 0.0
    time_scale: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string; got {self.name!r}")
        _check(f"{self.name}: flops_per_s", self.flops_per_s, positive=True, optional=True)
        _check(f"{self.name}: time_scale", self.time_scale, positive=True, optional=True)
        for field in ("power_w", "tx_power_w", "idle_power_w"):
            _check(f"{self.name}: {field}", getattr(self, field), positive=False)
        if self.flops_per_s is None and self.time_scale is None:
            raise ValueError(
                f"tier {self.name!r} needs flops_per_s (FLOP/s) or time_scale (a factor on "
                "times measured on this machine); got neither"
            )

    def compute_s(
        self, flops: float | np.ndarray, measured_s: float | np.ndarray | None = None
    ) -> float | np.ndarray:
        """Seconds this tier takes for ``flops`` (or ``measured_s`` here, see above)."""
        if self.time_scale is not None and measured_s is not None:
            return measured_s * self.time_scale
        if self.flops_per_s is None:
            raise ValueError(
                f"tier {self.name!r} has only time_scale, which needs measured times: "
                "profile the model with measure=True or give flops_per_s"
            )
        return flops / self.flops_per_s
