"""The economy: a calibrated population facing a tax schedule (docs/design.md §2).

Pure numpy, deterministic, no I/O. :class:`Economy` turns a schedule and chosen hours
into incomes, taxes, the lump-sum rebate, consumption, utility and per-year metrics,
and computes rational best responses (also for batches of schedules, for the oracle).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

import numpy as np
from numpy.typing import ArrayLike, NDArray

from llmecon.economy.best_response import best_response_hours
from llmecon.economy.equilibrium import (
    RebateEquilibrium,
    WarmStart,
    solve_rebate_equilibrium,
)
from llmecon.economy.population import Population
from llmecon.economy.schedule import (
    US_FEDERAL_2025_EDGES,
    US_FEDERAL_2025_RATES,
    TaxSchedule,
    tax_of_rates,
)
from llmecon.economy.utility import WEEKS_PER_YEAR, UtilityConfig, calibrate_psi, utility
from llmecon.economy.welfare import (
    SWFError,
    equality,
    get_swf,
    gini,
    inverse_income_weights,
    social_welfare,
    swf_names,
    weighted_mean,
)

FloatArray = NDArray[np.float64]

#: The schedule the utility is calibrated to (the real US federal 2025 schedule).
CALIBRATION_SCHEDULE = TaxSchedule(US_FEDERAL_2025_EDGES, US_FEDERAL_2025_RATES)

#: Schedules whose equilibrium an economy remembers (a run asks for the same one when
#: rational workers choose hours and again when the year is settled).
_EQUILIBRIUM_CACHE_SIZE = 16


@dataclass(frozen=True)
class Equilibrium:
    """Rational hours at the within-year equilibrium of one schedule.

    Attributes:
        weekly_hours: each worker's best response to the schedule and ``rebate_usd``.
        rebate_usd: the lump sum (USD per worker) the hours respond to.
        realised_rebate_usd: the rebate those hours actually fund.
        residual_usd: realised − anticipated rebate; 0 at an exact equilibrium (always
            0 under quasi-linear utility, where hours ignore the rebate).
        converged: whether the rebate fixed point met its tolerance (see
            :mod:`llmecon.economy.equilibrium`).
    """

    weekly_hours: FloatArray
    rebate_usd: float
    realised_rebate_usd: float
    residual_usd: float
    converged: bool


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
    rebate_converged: bool | None = None
    rebate_residual_usd: float | None = None


@dataclass(frozen=True)
class YearMetrics:
    """Aggregate outcomes of one year. ``swf`` is the run's objective; ``welfare`` holds
    every registered SWF (:func:`~llmecon.economy.welfare.swf_names`) by name, also
    readable as an attribute (``metrics.rawlsian``) and flattened by :meth:`to_dict`.

    Under CRRA utility, ``rebate_converged`` (1.0 or 0.0) and ``rebate_residual_usd``
    report the within-year rebate fixed point of the year's schedule (rational hours ↔
    the rebate they fund, :meth:`Economy.equilibrium`); under quasi-linear utility there
    is no fixed point to solve and both are ``None`` (left out of :meth:`to_dict`).
    """

    swf: float
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
    rebate_converged: float | None = None
    rebate_residual_usd: float | None = None
    welfare: Mapping[str, float] = field(default_factory=dict)

    def __getattr__(self, name: str) -> float:
        # Only called when normal lookup fails: a registered SWF's value by name.
        if name != "welfare" and not name.startswith("__"):
            try:
                return self.welfare[name]
            except KeyError:
                pass
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def to_dict(self) -> dict[str, float]:
        """Every metric by name (``swf``, each SWF of ``welfare``, then the others, in
        the order of :meth:`names`); unset optional ones are left out."""
        values = {k: v for k, v in asdict(self).items() if k != "welfare"}
        return {
            "swf": self.swf,
            **self.welfare,
            **{k: v for k, v in values.items() if v is not None and k != "swf"},
        }

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Names of the per-year metrics, as :meth:`to_dict` orders them: ``swf``, every
        registered SWF, then the other fields (read when called, so SWFs registered
        later count)."""
        other = [f.name for f in fields(cls) if f.name not in ("swf", "welfare")]
        return ("swf", *swf_names(), *other)


@dataclass(frozen=True)
class RatesScore:
    """A batch of rate vectors scored at their within-year equilibria
    (:meth:`Economy.score_rates`)."""

    welfare: FloatArray
    """``(S,)`` the SWF of each schedule."""
    equilibrium: RebateEquilibrium
    """The equilibria the scores rest on (convergence, rebates, warm starts)."""


class Economy:
    """A calibrated population plus preferences and an objective.

    Args:
        population: wages and usual hours of the workers.
        utility: shared preferences (ε, hour cap, CRRA, rebate share).
        swf: the planner's objective, a registered SWF
            (:func:`~llmecon.economy.welfare.swf_names`).

    Revenue: the share ``ρ = utility.rebate_share`` is rebated as an equal lump sum; the
    rest funds things this model does not value (it leaves the economy), so with
    ``ρ < 1`` a dollar of revenue is worth ``ρ`` dollars of rebate to the planner.

    Survey weights (``population.weight``, mean 1): every aggregate counts worker ``i``
    ``w_i`` times: revenue ``Σ w_i T_i``, the rebate ``ρ · Σ w_i T_i / Σ w_i`` per
    person, means, Gini, the SWFs (:attr:`survey_weight` goes into
    :class:`~llmecon.economy.welfare.WelfareInputs`). With equal weights
    :attr:`survey_weight` is ``None`` and every number is the unweighted one.
    """

    def __init__(
        self,
        population: Population,
        utility: UtilityConfig | None = None,
        swf: str = "inverse_income",
    ) -> None:
        get_swf(swf)  # unknown names fail here, listing the registered ones
        self.population = population
        self.utility_config = utility or UtilityConfig()
        self.swf = swf
        #: Survey weights (mean 1), or ``None`` when every worker counts once.
        self.survey_weight: FloatArray | None = population.survey_weight
        s = population.hourly_wage_usd
        h0 = population.usual_weekly_hours
        cap = self.utility_config.max_weekly_hours
        if np.any(h0 > cap):
            over = int(np.count_nonzero(h0 > cap))
            raise ValueError(
                f"usual hours above max_weekly_hours={cap:g}: {over} of {h0.size} workers "
                f"usually work more, up to {float(np.max(h0)):g} hours (the cap must be at "
                "least that)"
            )
        z0 = WEEKS_PER_YEAR * s * h0
        t0 = CALIBRATION_SCHEDULE.tax(z0)
        self._status_quo_rebate = self.rebate_of(t0)
        c0 = z0 - t0 + self._status_quo_rebate
        #: Each worker's consumption at census hours under the calibration schedule,
        #: with its rebate (USD): the ``c₀`` of the CRRA calibration (and of the rational
        #: worker prompt's value under CRRA).
        self.status_quo_consumption_usd: FloatArray = c0
        self.psi: FloatArray = calibrate_psi(
            s, h0, CALIBRATION_SCHEDULE.marginal_rate(z0), self.utility_config, c0
        )
        self.weights: FloatArray = inverse_income_weights(s, self.survey_weight)
        self._equilibria: dict[tuple[tuple[float, ...], tuple[float, ...]], Equilibrium] = {}

    @property
    def size(self) -> int:
        return self.population.size

    @property
    def status_quo_rebate_usd(self) -> float:
        """The rebate (USD per person) the status quo pays at the census hours."""
        return self._status_quo_rebate

    def rebate_of(self, tax: FloatArray) -> float:
        """The lump sum (USD per person) that taxes ``tax`` (one per worker) fund: the
        rebate share of the (survey-weighted) mean tax."""
        return self.utility_config.rebate_share * self._mean(np.asarray(tax, dtype=float))

    def _mean(self, values: FloatArray) -> float:
        """Mean over people (survey-weighted when the population is weighted)."""
        if self.survey_weight is None:
            return float(values.mean())
        return float(weighted_mean(values, self.survey_weight))

    def _total(self, values: FloatArray) -> float:
        """Total over people (``Σ w_i x_i``; weights have mean 1, so "per N workers")."""
        if self.survey_weight is None:
            return float(values.sum())
        return float(values @ self.survey_weight)

    def rational_hours(self, schedule: TaxSchedule, rebate_usd: float | None = None) -> FloatArray:
        """Best-response hours. Under CRRA the rebate matters; with ``rebate_usd=None``
        it is the within-year equilibrium (:meth:`equilibrium`)."""
        cfg = self.utility_config
        if cfg.crra is None or rebate_usd is not None:
            return best_response_hours(
                self.population.hourly_wage_usd,
                self.psi,
                schedule.edges,
                schedule.rates,
                cfg,
                rebate_usd or 0.0,
            )
        return self.equilibrium(schedule).weekly_hours.copy()

    def equilibrium(self, schedule: TaxSchedule) -> Equilibrium:
        """Rational hours that best-respond to the schedule *and* to the rebate they
        fund (the within-year fixed point; see :mod:`llmecon.economy.equilibrium`)."""
        key = (schedule.edges, schedule.rates)
        cached = self._equilibria.get(key)
        if cached is not None:
            return cached
        batch = self.equilibrium_of_rates(schedule.edges_array, schedule.rates_array[None, :])
        hours = batch.weekly_hours[0]
        hours.setflags(write=False)
        found = Equilibrium(
            hours,
            float(batch.rebate_usd[0]),
            float(batch.realised_rebate_usd[0]),
            float(batch.residual_usd[0]),
            bool(batch.converged[0]),
        )
        if len(self._equilibria) >= _EQUILIBRIUM_CACHE_SIZE:
            self._equilibria.pop(next(iter(self._equilibria)))
        self._equilibria[key] = found
        return found

    def equilibrium_of_rates(
        self, edges: ArrayLike, rates: ArrayLike, warm: WarmStart | None = None
    ) -> RebateEquilibrium:
        """Within-year equilibria of a batch of rate vectors ``(S, B)`` on ``edges``.

        Every schedule starts from the status-quo rebate, so a schedule's equilibrium is
        the same alone (:meth:`equilibrium`) or inside any batch. ``warm`` (a nearby
        schedule's solution, :meth:`RebateEquilibrium.warm_start`) starts them there
        instead: the same converged equilibria to the solver's tolerance, in fewer steps.
        """
        return solve_rebate_equilibrium(
            self.population.hourly_wage_usd,
            self.psi,
            edges,
            rates,
            self.utility_config,
            self._status_quo_rebate,
            self.survey_weight,
            warm,
        )

    def outcome(self, schedule: TaxSchedule, weekly_hours: ArrayLike) -> Outcome:
        """Incomes, taxes, rebate, consumption and utility for chosen hours.

        The rebate is always the one the hours fund. Under CRRA the outcome also carries
        whether the schedule's within-year equilibrium converged (and its residual).
        """
        hours = np.asarray(weekly_hours, dtype=float)
        if hours.shape != (self.size,):
            raise ValueError(f"need hours for {self.size} workers, got shape {hours.shape}")
        if np.any(hours < 0) or np.any(hours > self.utility_config.max_weekly_hours):
            raise ValueError("hours must lie in [0, max_weekly_hours]")
        income = WEEKS_PER_YEAR * self.population.hourly_wage_usd * hours
        tax = schedule.tax(income)
        rebate = self.rebate_of(tax)
        consumption = income - tax + rebate
        u = utility(consumption, hours, self.psi, self.utility_config)
        if self.utility_config.crra is None:
            return Outcome(schedule, hours, income, tax, rebate, consumption, u)
        eq = self.equilibrium(schedule)
        return Outcome(
            schedule, hours, income, tax, rebate, consumption, u, eq.converged, eq.residual_usd
        )

    def metrics(self, outcome: Outcome, swf: str | None = None) -> YearMetrics:
        """Aggregate metrics; ``swf`` overrides the objective (for rescoring)."""
        u, c, z = outcome.utility, outcome.consumption_usd, outcome.income_usd
        sw = self.survey_weight
        objective = swf or self.swf
        all_swf: dict[str, float] = {}
        for name in swf_names():
            try:
                all_swf[name] = float(social_welfare(name, u, c, z, self.weights, sw))
            except SWFError as exc:  # another plug-in's bug stops no run that does not use it
                if name == objective:
                    raise
                _left_out(name, str(exc))
        total_income = self._total(z)
        revenue = self._total(outcome.tax_usd)
        return YearMetrics(
            swf=all_swf[objective],
            revenue_usd=revenue,
            rebate_usd=outcome.rebate_usd,
            mean_weekly_hours=self._mean(outcome.weekly_hours),
            mean_income_usd=self._mean(z),
            output_usd=total_income,
            gini_income=float(gini(z, sw)),
            gini_consumption=float(gini(c, sw)),
            equality=float(equality(c, sw)),
            effective_tax_rate=revenue / total_income if total_income > 0 else 0.0,
            mean_marginal_rate=self._mean(outcome.schedule.marginal_rate(z)),
            rebate_converged=(
                None if outcome.rebate_converged is None else float(outcome.rebate_converged)
            ),
            rebate_residual_usd=outcome.rebate_residual_usd,
            welfare=all_swf,
        )

    def evaluate(self, schedule: TaxSchedule) -> tuple[Outcome, YearMetrics]:
        """Outcome and metrics with every worker at the rational best response (under
        CRRA, at the within-year equilibrium)."""
        out = self.outcome(schedule, self.rational_hours(schedule))
        return out, self.metrics(out)

    def welfare_of_rates(
        self, edges: ArrayLike, rates: ArrayLike, swf: str | None = None
    ) -> FloatArray:
        """Objective for a batch of rate vectors ``(S, B)`` at rational responses.

        The fast path used by the oracle (thousands of schedules per second for 1 000
        quasi-linear workers). Each schedule is scored at its within-year equilibrium,
        exactly as :meth:`evaluate` would settle it: hours best-respond to the schedule
        and to the rebate they fund, and consumption includes that same rebate.
        """
        return self.welfare_and_convergence_of_rates(edges, rates, swf)[0]

    def welfare_and_convergence_of_rates(
        self, edges: ArrayLike, rates: ArrayLike, swf: str | None = None
    ) -> tuple[FloatArray, NDArray[np.bool_]]:
        """:meth:`welfare_of_rates` and, per schedule, whether its within-year rebate
        fixed point converged (always true under quasi-linear utility)."""
        scored = self.score_rates(edges, rates, swf)
        return scored.welfare, scored.equilibrium.converged

    def score_rates(
        self,
        edges: ArrayLike,
        rates: ArrayLike,
        swf: str | None = None,
        warm: WarmStart | None = None,
    ) -> RatesScore:
        """:meth:`welfare_of_rates` with the equilibria behind it; ``warm`` starts their
        solve from a nearby schedule's (:meth:`equilibrium_of_rates`)."""
        e = np.asarray(edges, dtype=float)
        r = np.atleast_2d(np.asarray(rates, dtype=float))
        s = self.population.hourly_wage_usd
        eq = self.equilibrium_of_rates(e, r, warm)
        hours = eq.weekly_hours  # (S, N)
        z = WEEKS_PER_YEAR * s[None, :] * hours
        tax = tax_of_rates(e, r, z)
        sw = self.survey_weight
        if sw is None:
            rebate = self.utility_config.rebate_share * tax.mean(axis=1, keepdims=True)
        else:
            rebate = self.utility_config.rebate_share * (tax @ sw / sw.sum())[:, None]
        c = z - tax + rebate
        u = utility(c, hours, self.psi[None, :], self.utility_config)
        return RatesScore(social_welfare(swf or self.swf, u, c, z, self.weights, sw), eq)


#: Plug-in SWFs already said to be left out of the metrics (once a process each).
_SAID_LEFT_OUT: set[str] = set()


def _left_out(name: str, problem: str) -> None:
    """Warn once that the plug-in SWF ``name`` failed and is left out of the metrics."""
    if name in _SAID_LEFT_OUT:
        return
    _SAID_LEFT_OUT.add(name)
    from llmecon._plugins import PluginWarning
    from llmecon._warn import warn

    warn(f"{problem}; it is left out of the per-year metrics", PluginWarning)
