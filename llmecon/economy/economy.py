"""The economy: a calibrated population facing a tax schedule (DESIGN.md §2).

Pure numpy, deterministic, no I/O. :class:`Economy` turns a schedule and chosen hours
into incomes, taxes, the lump-sum rebate, consumption, utility and per-year metrics,
and computes rational best responses (also for batches of schedules, for the oracle).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from llmecon.economy.best_response import best_response_hours
from llmecon.economy.population import Population
from llmecon.economy.schedule import (
    US_FEDERAL_2025_EDGES,
    US_FEDERAL_2025_RATES,
    TaxSchedule,
    cumulative_tax_at_edges,
)
from llmecon.economy.utility import WEEKS_PER_YEAR, UtilityConfig, calibrate_psi, utility
from llmecon.economy.welfare import (
    SWF_NAMES,
    equality,
    gini,
    inverse_income_weights,
    social_welfare,
)

FloatArray = NDArray[np.float64]

#: The schedule the utility is calibrated to (the real US federal 2025 schedule).
CALIBRATION_SCHEDULE = TaxSchedule(US_FEDERAL_2025_EDGES, US_FEDERAL_2025_RATES)

_CRRA_FIXED_POINT_STEPS = 50


@dataclass(frozen=True)
class Outcome:
    """What one year under one schedule produced, per worker (annual USD)."""

    schedule: TaxSchedule
    weekly_hours: FloatArray
    income_usd: FloatArray
    tax_usd: FloatArray
    rebate_usd: float
    consumption_usd: FloatArray
    utility: FloatArray


@dataclass(frozen=True)
class YearMetrics:
    """Aggregate outcomes of one year. ``swf`` is the run's objective; all four SWFs
    are always reported."""

    swf: float
    utilitarian: float
    inverse_income: float
    rawlsian: float
    equality_times_productivity: float
    revenue_usd: float
    rebate_usd: float
    mean_weekly_hours: float
    mean_income_usd: float
    output_usd: float
    gini_income: float
    gini_consumption: float
    equality: float
    effective_tax_rate: float
    mean_marginal_rate: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


class Economy:
    """A calibrated population plus preferences and an objective.

    Args:
        population: wages and usual hours of the workers.
        utility: shared preferences (ε, hour cap, CRRA, rebate share).
        swf: the planner's objective, one of :data:`~llmecon.economy.welfare.SWF_NAMES`.
    """

    def __init__(
        self,
        population: Population,
        utility: UtilityConfig | None = None,
        swf: str = "inverse_income",
    ) -> None:
        if swf not in SWF_NAMES:
            raise ValueError(
                f"unknown social welfare function {swf!r}: use one of {', '.join(SWF_NAMES)}"
            )
        self.population = population
        self.utility_config = utility or UtilityConfig()
        self.swf = swf
        s = population.hourly_wage_usd
        h0 = population.usual_weekly_hours
        if np.any(h0 > self.utility_config.max_weekly_hours):
            raise ValueError(
                f"usual hours above max_weekly_hours={self.utility_config.max_weekly_hours:g}"
            )
        z0 = WEEKS_PER_YEAR * s * h0
        t0 = CALIBRATION_SCHEDULE.tax(z0)
        self._status_quo_rebate = self.utility_config.rebate_share * float(t0.mean())
        c0 = z0 - t0 + self._status_quo_rebate
        self.psi: FloatArray = calibrate_psi(
            s, h0, CALIBRATION_SCHEDULE.marginal_rate(z0), self.utility_config, c0
        )
        self.weights: FloatArray = inverse_income_weights(s)

    @property
    def size(self) -> int:
        return self.population.size

    def rational_hours(self, schedule: TaxSchedule, rebate_usd: float | None = None) -> FloatArray:
        """Best-response hours. Under CRRA the rebate matters; with ``rebate_usd=None``
        it is solved as the within-year equilibrium (rebate = this year's revenue)."""
        s = self.population.hourly_wage_usd
        cfg = self.utility_config
        if cfg.crra is None or rebate_usd is not None:
            return best_response_hours(
                s, self.psi, schedule.edges, schedule.rates, cfg, rebate_usd or 0.0
            )
        rebate = self._status_quo_rebate
        hours = best_response_hours(s, self.psi, schedule.edges, schedule.rates, cfg, rebate)
        for _ in range(_CRRA_FIXED_POINT_STEPS):
            new_rebate = cfg.rebate_share * float(schedule.tax(WEEKS_PER_YEAR * s * hours).mean())
            if abs(new_rebate - rebate) <= 1e-9 * max(1.0, abs(rebate)):
                break
            rebate = new_rebate
            hours = best_response_hours(s, self.psi, schedule.edges, schedule.rates, cfg, rebate)
        return hours

    def outcome(self, schedule: TaxSchedule, weekly_hours: ArrayLike) -> Outcome:
        """Incomes, taxes, rebate, consumption and utility for chosen hours."""
        hours = np.asarray(weekly_hours, dtype=float)
        if hours.shape != (self.size,):
            raise ValueError(f"need hours for {self.size} workers, got shape {hours.shape}")
        if np.any(hours < 0) or np.any(hours > self.utility_config.max_weekly_hours):
            raise ValueError("hours must lie in [0, max_weekly_hours]")
        income = WEEKS_PER_YEAR * self.population.hourly_wage_usd * hours
        tax = schedule.tax(income)
        rebate = self.utility_config.rebate_share * float(tax.mean())
        consumption = income - tax + rebate
        u = utility(consumption, hours, self.psi, self.utility_config)
        return Outcome(schedule, hours, income, tax, rebate, consumption, u)

    def metrics(self, outcome: Outcome, swf: str | None = None) -> YearMetrics:
        """Aggregate metrics; ``swf`` overrides the objective (for rescoring)."""
        u, c, z = outcome.utility, outcome.consumption_usd, outcome.income_usd
        all_swf = {name: float(social_welfare(name, u, c, z, self.weights)) for name in SWF_NAMES}
        total_income = float(z.sum())
        revenue = float(outcome.tax_usd.sum())
        return YearMetrics(
            swf=all_swf[swf or self.swf],
            revenue_usd=revenue,
            rebate_usd=outcome.rebate_usd,
            mean_weekly_hours=float(outcome.weekly_hours.mean()),
            mean_income_usd=float(z.mean()),
            output_usd=total_income,
            gini_income=float(gini(z)),
            gini_consumption=float(gini(c)),
            equality=float(equality(c)),
            effective_tax_rate=revenue / total_income if total_income > 0 else 0.0,
            mean_marginal_rate=float(outcome.schedule.marginal_rate(z).mean()),
            **all_swf,
        )

    def evaluate(self, schedule: TaxSchedule) -> tuple[Outcome, YearMetrics]:
        """Outcome and metrics with every worker at the rational best response."""
        out = self.outcome(schedule, self.rational_hours(schedule))
        return out, self.metrics(out)

    def welfare_of_rates(
        self, edges: ArrayLike, rates: ArrayLike, swf: str | None = None
    ) -> FloatArray:
        """Objective for a batch of rate vectors ``(S, B)`` at rational responses.

        The fast path used by the oracle (thousands of schedules per second for 1 000
        workers). Under CRRA the rebate is the status-quo rebate in the response and
        the realised one in the welfare (one step of the within-year fixed point).
        """
        e = np.asarray(edges, dtype=float)
        r = np.atleast_2d(np.asarray(rates, dtype=float))
        s = self.population.hourly_wage_usd
        hours = best_response_hours(
            s, self.psi, e, r, self.utility_config, self._status_quo_rebate
        )  # (S, N)
        z = WEEKS_PER_YEAR * s[None, :] * hours
        idx = np.searchsorted(e, z, side="right") - 1
        cum = cumulative_tax_at_edges(e, r)
        tax = np.take_along_axis(cum, idx, axis=1) + np.take_along_axis(r, idx, axis=1) * (
            z - e[idx]
        )
        rebate = self.utility_config.rebate_share * tax.mean(axis=1, keepdims=True)
        c = z - tax + rebate
        u = utility(c, hours, self.psi[None, :], self.utility_config)
        return social_welfare(swf or self.swf, u, c, z, self.weights)
