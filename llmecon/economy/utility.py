"""Calibrated worker utility (docs/design.md §2).

Default, quasi-linear isoelastic (annual USD):
``u = c − ψ · 52 · l^(1+1/ε) / (1+1/ε)``.
Optional CRRA in consumption (income effects): ``u = c^(1−η)/(1−η)`` (``log c`` at
η = 1) minus the same disutility of work.

Calibration: ``ψ_i = s_i (1 − τ_sq(z_i⁰)) / (h_i⁰)^(1/ε)`` (times ``c_i⁰^(−η)`` under
CRRA), so that under the status-quo schedule the rational choice is exactly the
persona's usual hours and hours respond to the net-of-tax wage with elasticity ε.

Uncalibrated (``labour_cost = c``, the ``llm-economist-2025`` preset): every worker's
disutility is ``c · l^(1+1/ε)``, i.e. ``ψ_i = c (1+1/ε) / 52`` for all ``i``. With
``c = 0.0005`` and ``ε = 0.4`` this is *LLM Economist*'s ``u = z̃ − 0.0005 · l^3.5``
(Karten et al. 2025, ``Worker.c``, ``Worker.delta``), where most workers choose the
hour cap.
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
        labour_cost: ``c`` of an uncalibrated disutility ``c · l^(1+1/ε)`` (annual USD,
            weekly hours) shared by every worker; ``None`` (default) calibrates each
            worker's ``ψ_i`` to its census hours.
    """

    elasticity: float = 0.4
    max_weekly_hours: float = 80.0
    crra: float | None = None
    rebate_share: float = 1.0
    labour_cost: float | None = None

    def __post_init__(self) -> None:
        if not (self.elasticity > 0 and np.isfinite(self.elasticity)):
            raise ValueError(f"elasticity must be positive, got {self.elasticity}")
        if not self.max_weekly_hours > 0:
            raise ValueError(f"max_weekly_hours must be positive, got {self.max_weekly_hours}")
        if self.crra is not None and not self.crra > 0:
            raise ValueError(f"crra (η) must be positive, got {self.crra}")
        if not 0.0 <= self.rebate_share <= 1.0:
            raise ValueError(f"rebate_share must lie in [0, 1], got {self.rebate_share}")
        if self.labour_cost is not None and not (
            self.labour_cost > 0 and np.isfinite(self.labour_cost)
        ):
            raise ValueError(f"labour_cost must be positive, got {self.labour_cost}")


#: CRRA utility scores consumption below this (USD a year) as this: a worker who
#: consumes nothing (every dollar taxed away, nothing rebated) has utility −∞ at η ≥ 1,
#: here a finite −1e9 at η = 2 (``log 1e-9`` ≈ −20.7 at η = 1) that makes the schedule's
#: welfare the worst there is. A run's summary says when a year hit it
#: (``zero_consumption_years``, docs/economy.md).
CONSUMPTION_FLOOR_USD = 1e-9


def consumption_utility(consumption: FloatArray, crra: float | None) -> FloatArray:
    """``c`` (quasi-linear) or CRRA ``c^(1−η)/(1−η)`` / ``log c``, of consumption at least
    :data:`CONSUMPTION_FLOOR_USD`."""
    if crra is None:
        return consumption
    c = np.maximum(consumption, CONSUMPTION_FLOOR_USD)
    if crra == 1.0:
        return np.log(c)
    return c ** (1.0 - crra) / (1.0 - crra)


def marginal_consumption_utility(consumption: FloatArray, crra: float | None) -> FloatArray:
    if crra is None:
        return np.ones_like(consumption)
    return np.maximum(consumption, CONSUMPTION_FLOOR_USD) ** (-crra)


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
    """The disutility weight ``ψ_i`` that makes ``h_i⁰`` optimal under the status quo
    (or, with ``config.labour_cost``, the same uncalibrated ``ψ`` for every worker)."""
    if config.labour_cost is not None:
        k = 1.0 + 1.0 / config.elasticity
        return np.full(np.shape(hourly_wage), config.labour_cost * k / WEEKS_PER_YEAR)
    psi = hourly_wage * (1.0 - status_quo_marginal_rate) / usual_hours ** (1.0 / config.elasticity)
    if config.crra is not None:
        if status_quo_consumption is None:
            raise ValueError("CRRA calibration needs the status-quo consumption")
        psi = psi * marginal_consumption_utility(status_quo_consumption, config.crra)
    return psi
