"""Calibrated worker utility (docs/design.md §2).

Default, quasi-linear isoelastic (annual USD):
``u = c − ψ · 52 · l^(1+1/ε) / (1+1/ε)``.
Optional CRRA in consumption (income effects): ``u = c^(1−η)/(1−η)`` (``log c`` at
η = 1) minus the same disutility of work.

Calibration: ``ψ_i = s_i (1 − τ_sq(z_i⁰)) / (h_i⁰)^(1/ε)`` (times ``c_i⁰^(−η)`` under
CRRA), so that under the status-quo schedule the rational choice is exactly the
persona's usual hours and hours respond to the net-of-tax wage with elasticity ε.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

WEEKS_PER_YEAR = 52.0


@dataclass(frozen=True)
class UtilityConfig:
    """Preferences shared by all workers.

    Attributes:
        elasticity: ε, the (Frisch) elasticity of hours to the net-of-tax wage.
        max_weekly_hours: ``l_max``, the upper bound of weekly hours.
        crra: η for CRRA consumption utility; ``None`` (default) is quasi-linear.
        rebate_share: share of revenue returned as an equal lump sum.
    """

    elasticity: float = 0.4
    max_weekly_hours: float = 80.0
    crra: float | None = None
    rebate_share: float = 1.0

    def __post_init__(self) -> None:
        if not (self.elasticity > 0 and np.isfinite(self.elasticity)):
            raise ValueError(f"elasticity must be positive, got {self.elasticity}")
        if not self.max_weekly_hours > 0:
            raise ValueError(f"max_weekly_hours must be positive, got {self.max_weekly_hours}")
        if self.crra is not None and not self.crra > 0:
            raise ValueError(f"crra (η) must be positive, got {self.crra}")
        if not 0.0 <= self.rebate_share <= 1.0:
            raise ValueError(f"rebate_share must lie in [0, 1], got {self.rebate_share}")


def consumption_utility(consumption: FloatArray, crra: float | None) -> FloatArray:
    """``c`` (quasi-linear) or CRRA ``c^(1−η)/(1−η)`` / ``log c``."""
    if crra is None:
        return consumption
    c = np.maximum(consumption, 1e-9)
    if crra == 1.0:
        return np.log(c)
    return c ** (1.0 - crra) / (1.0 - crra)


def marginal_consumption_utility(consumption: FloatArray, crra: float | None) -> FloatArray:
    if crra is None:
        return np.ones_like(consumption)
    return np.maximum(consumption, 1e-9) ** (-crra)


def labour_disutility(weekly_hours: FloatArray, psi: FloatArray, elasticity: float) -> FloatArray:
    """Annual disutility ``ψ · 52 · l^(1+1/ε)/(1+1/ε)``."""
    k = 1.0 + 1.0 / elasticity
    return psi * WEEKS_PER_YEAR * weekly_hours**k / k


def utility(
    consumption: FloatArray,
    weekly_hours: FloatArray,
    psi: FloatArray,
    config: UtilityConfig,
) -> FloatArray:
    """Each worker's utility for given consumption and hours."""
    return consumption_utility(consumption, config.crra) - labour_disutility(
        weekly_hours, psi, config.elasticity
    )


def calibrate_psi(
    hourly_wage: FloatArray,
    usual_hours: FloatArray,
    status_quo_marginal_rate: FloatArray,
    config: UtilityConfig,
    status_quo_consumption: FloatArray | None = None,
) -> FloatArray:
    """The disutility weight ``ψ_i`` that makes ``h_i⁰`` optimal under the status quo."""
    psi = hourly_wage * (1.0 - status_quo_marginal_rate) / usual_hours ** (1.0 / config.elasticity)
    if config.crra is not None:
        if status_quo_consumption is None:
            raise ValueError("CRRA calibration needs the status-quo consumption")
        psi = psi * marginal_consumption_utility(status_quo_consumption, config.crra)
    return psi
