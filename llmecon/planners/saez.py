"""Saez (2001) optimal bracket rates, at equilibrium incomes or with an estimated ε.

The planner raises bracket ``b``'s rate ``τ_b`` (lower edge ``m_b``, upper edge
``m_{b+1}``, ``∞`` for the top bracket) by ``dτ`` and weighs the effects, in
*welfare-dollars*: social marginal welfare weights ``g_i = ∂W/∂c_i`` are normalised to
mean 1, so a dollar spread equally over all workers is worth 1.

* Mechanical: worker ``i`` pays ``dτ · a_i`` more, ``a_i = clip(z_i − m_b, 0,
  m_{b+1} − m_b)`` (USD, the income taxed in the bracket), a welfare loss of
  ``g_i · a_i · dτ``; the revenue is worth ``κ`` welfare-dollars per dollar. Here
  ``κ = ρ``, the ``rebate_share``: a share ``ρ`` is rebated lump-sum to everyone (worth
  ``ρ · ḡ = ρ``) and the rest funds things this model does not value (worth
  ``(1 − ρ) · 0``; a public good worth ``v`` consumption-dollars per dollar, spread
  equally, would give ``κ = ρ + (1 − ρ) · v``).
* Behavioural: each *responder* (income strictly inside the bracket, hours strictly
  between 0 and the cap: workers bunching at a kink or at the cap do not move at the
  margin) earns ``ε · z_i · dτ / (1 − τ_b)`` less, which loses ``τ_b`` of revenue per
  dollar (worth ``κ``). For a non-welfarist SWF (equality × productivity, which values
  output directly and leisure not at all) each lost dollar also costs ``δ``
  (:func:`~llmecon.economy.welfare.output_welfare_weight`) plus the responder's own
  consumption ``(1 − τ_b)`` at weight ``g_i``; for welfarist SWFs these vanish
  (envelope theorem: the responder was indifferent at the margin), ``δ = g'_i = 0``.

Setting the sum to zero:

``τ_b = (M − H₁) / (M + H₂)``, with ``M = Σ_i a_i (κ − g_i)``,
``H₁ = ε Σ_responders z_i (δ + g'_i)``, ``H₂ = ε Σ_responders z_i (κ − g'_i)``

(all in welfare-USD; ``ε`` the elasticity of income to the net-of-tax rate, ``g'_i = g_i``
for equality × productivity, else 0). For a welfarist SWF this is
``τ_b / (1 − τ_b) = Σ_i a_i (κ − g_i) / (κ ε Σ_responders z_i)``; for a bracket of
infinitesimal width at ``z`` it is Saez's ``τ / (1 − τ) = (1 − G/κ) / (α ε)``, ``G`` the
mean weight above ``z`` and ``α = z f(z) / (1 − F(z))``, i.e. at ``κ = 1`` the familiar
``τ = (1 − G) / (1 − G + α ε)``. The sums are computed exactly on the workers' incomes
(no density estimate, no Pareto tail); with survey weights ``w_i`` every sum is weighted
(``Σ_i w_i a_i (κ − g_i)``, ...) and ``g`` has mean 1 over people. A bracket nobody
reaches copies the rate below;
a non-positive numerator gives the lowest allowed rate (the planner would rather
subsidise work there), a non-positive denominator with a positive numerator the highest.
With ``ρ = 0`` revenue is worth nothing and every rate is the lowest.

- ``saez`` evaluates this on the *equilibrium* incomes of the economy with the true ε,
  iterating schedule → rational incomes → schedule to a (damped) fixed point, and
  reports whether it converged (``last_detail``; a :class:`SaezConvergenceWarning`
  when it did not). A few workers switching between responding and bunching can make
  the iteration cycle; it then enacts the mean of the last iterates.
- The weights are those of the economy's own SWF, for all four SWFs
  (:func:`~llmecon.economy.welfare.marginal_welfare_weights`).
- ``saez-empirical`` uses the incomes and hours observed last year and an ε estimated
  from the year-to-year responses in the history (so it works with LLM workers).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from llmecon._warn import warn
from llmecon.economy import Economy, Outcome, TaxSchedule
from llmecon.economy.welfare import marginal_welfare_weights, output_welfare_weight
from llmecon.planners.base import (
    PlannerContext,
    PlannerError,
    YearRecord,
    first_year_note,
    register_planner,
)

FloatArray = NDArray[np.float64]

#: Incomes within this many USD of a bracket edge are bunching at the kink.
_KINK_USD = 0.01
#: Iterates averaged when the fixed point cycles instead of converging.
_CYCLE_AVERAGE = 20


class SaezConvergenceWarning(RuntimeWarning):
    """The Saez fixed point stopped before its rates settled."""


@dataclass(frozen=True)
class SaezWeights:
    """What the Saez formula needs to know about the planner's objective.

    Attributes:
        weights: social marginal welfare weights ``g_i = ∂W/∂c_i`` (normalised to mean
            1 by the formula).
        revenue_value: ``κ``, welfare-dollars per dollar of revenue (the rebate share).
        output_value: ``δ``, welfare-dollars per dollar of income that the SWF values
            directly, beyond consumption (``None`` for welfarist SWFs).
        survey_weight: how many people each worker stands for (``None``: one each);
            the formula's sums run over people.
    """

    weights: FloatArray
    revenue_value: float = 1.0
    output_value: float | None = None
    survey_weight: FloatArray | None = None


def saez_bracket_rates(
    income_usd: FloatArray,
    weights: FloatArray | SaezWeights,
    edges: Sequence[float],
    elasticity: float,
    *,
    responds: NDArray[np.bool_] | None = None,
    min_rate: float = 0.0,
    max_rate: float = 1.0,
) -> FloatArray:
    """Saez rates for each bracket given incomes and social marginal welfare weights.

    ``weights`` is either the weights alone (a welfarist SWF with all revenue rebated,
    ``κ = 1``) or a :class:`SaezWeights` with ``κ`` and ``δ``; ``responds`` marks the
    workers whose hours can move at the margin (default: all with positive income).
    See the module docstring for the formula.
    """
    spec = weights if isinstance(weights, SaezWeights) else SaezWeights(np.asarray(weights))
    kappa, delta = spec.revenue_value, spec.output_value
    z = np.asarray(income_usd, dtype=float)
    g = np.asarray(spec.weights, dtype=float)
    sw = spec.survey_weight
    if sw is None:
        g = g / g.mean() if g.mean() > 0 else np.ones(z.size)
        people = np.ones(z.size)
    else:
        people = np.asarray(sw, dtype=float)
        g_mean = float(g @ people / people.sum())
        g = g / g_mean if g_mean > 0 else np.ones(z.size)
    e = np.asarray(edges, dtype=float)
    moving = (z > 0) if responds is None else (np.asarray(responds, dtype=bool) & (z > 0))
    if delta is not None and not np.isfinite(delta):  # only output counts: never tax it
        return np.full(e.size, min_rate)
    own = np.zeros(z.size) if delta is None else g  # g'_i: responders' own consumption
    rates = np.empty(e.size)
    for b in range(e.size):
        upper = e[b + 1] if b + 1 < e.size else np.inf
        taxed = np.clip(z - e[b], 0.0, upper - e[b])
        if sw is not None:
            taxed = taxed * people  # every sum below runs over people
        if not np.any(taxed > 0):  # nobody reaches the bracket
            rates[b] = rates[b - 1] if b > 0 else min_rate
            continue
        inside = moving & (z > e[b] + _KINK_USD) & (z < upper - _KINK_USD)
        zr = z[inside] if sw is None else z[inside] * people[inside]
        mechanical = float(taxed @ (kappa - g))
        h1 = elasticity * float(zr @ ((delta or 0.0) + own[inside]))
        h2 = elasticity * float(zr @ (kappa - own[inside]))
        num, den = mechanical - h1, mechanical + h2
        if den > 0:
            rates[b] = num / den
        else:
            rates[b] = max_rate if num > 0 else min_rate
    return np.clip(rates, min_rate, max_rate)


#: A fixed point that does not converge but cycles within this much (a fraction: one
#: percentage point) in every bracket is not flagged: the mean of the cycle is Saez's
#: rates to within it, as a discrete population allows (the log's schedule detail keeps
#: ``saez_converged`` false and the ``saez_cycle_width``).
CYCLE_TOLERANCE = 0.01


@dataclass(frozen=True)
class SaezResult:
    """The Saez fixed point.

    Attributes:
        rates: the enacted rates: the fixed point, or the mean of the last
            :data:`_CYCLE_AVERAGE` iterates when the iteration did not converge.
        iterations: damped steps taken.
        converged: whether the largest rate change fell below the tolerance.
        last_change: the largest rate change of the last step (fraction).
        cycle_width: when it did not converge, the widest range of one bracket's rate
            over the averaged iterates (fraction; 0 when it converged).
    """

    rates: FloatArray
    iterations: int
    converged: bool
    last_change: float
    cycle_width: float = 0.0

    @property
    def settled(self) -> bool:
        """Converged, or cycling within :data:`CYCLE_TOLERANCE` in every bracket: its
        mean is then Saez's rates to within that (a few workers switching between
        brackets or the hour cap, at 1 000 workers a cycle of under half a point)."""
        return self.converged or self.cycle_width < CYCLE_TOLERANCE

    def detail(self) -> dict[str, Any]:
        """For the planner's ``last_detail`` (logged with the schedule)."""
        return {
            "saez_converged": self.converged,
            "saez_iterations": self.iterations,
            "saez_last_change": self.last_change,
            "saez_cycle_width": self.cycle_width,
        }


def solve_saez(
    economy: Economy,
    edges: Sequence[float],
    *,
    min_rate: float = 0.0,
    max_rate: float = 1.0,
    damping: float = 0.5,
    tol: float = 1e-5,
    max_iter: int = 200,
) -> SaezResult:
    """Iterate schedule → rational (equilibrium) incomes → Saez rates to a fixed point.

    Converged when no rate moves by ``tol`` or more in a step. Otherwise (typically a
    cycle: a few workers switch between responding and bunching at a kink or the hour
    cap) the mean of the last iterates is returned, flagged ``converged=False``.
    """
    sched = TaxSchedule.status_quo(tuple(edges))
    rates = np.clip(sched.rates_array, min_rate, max_rate)
    eps = economy.utility_config.elasticity
    cap = economy.utility_config.max_weekly_hours
    change = np.inf
    recent: list[FloatArray] = []
    for it in range(1, max_iter + 1):
        current = sched.with_rates(rates)
        hours = economy.rational_hours(current)
        out = economy.outcome(current, hours)
        target = saez_bracket_rates(
            out.income_usd,
            saez_weights(economy, out),
            edges,
            eps,
            responds=(hours > 0) & (hours < cap),
            min_rate=min_rate,
            max_rate=max_rate,
        )
        new = (1 - damping) * rates + damping * target
        change = float(np.max(np.abs(new - rates)))
        rates = new
        if change < tol:
            return SaezResult(rates, it, True, change)
        recent = [*recent[-(_CYCLE_AVERAGE - 1) :], rates]
    width = float(np.max(np.ptp(np.asarray(recent), axis=0)))
    return SaezResult(np.mean(recent, axis=0), max_iter, False, change, width)


def saez_weights(economy: Economy, out: Outcome) -> SaezWeights:
    """Marginal welfare weights of the economy's own SWF at an outcome, with ``κ`` (the
    rebate share) and ``δ`` (the SWF's direct value of output, ``None`` if welfarist)."""
    args = (
        out.consumption_usd,
        out.income_usd,
        out.utility,
        economy.weights,
        economy.utility_config.crra,
        economy.survey_weight,
    )
    return SaezWeights(
        marginal_welfare_weights(economy.swf, *args),
        economy.utility_config.rebate_share,
        output_welfare_weight(economy.swf, *args),
        economy.survey_weight,
    )


def estimate_elasticity(
    history: Sequence[YearRecord], *, window: int = 10, min_variation: float = 1e-6
) -> float | None:
    """ε from observed responses: OLS through the origin of Δlog z on Δlog(1 − τ).

    For each worker and each pair of consecutive years, ``x`` is the change in the
    log net-of-tax rate at last year's income (the mechanical change, which the worker's
    own response does not move) and ``y`` the change in log income. ``None`` when the
    history has too little tax variation to identify ε.
    """
    recent = list(history)[-(window + 1) :]
    xs, ys = [], []
    for prev, cur in itertools.pairwise(recent):
        z0, z1 = prev.income_usd, cur.income_usd
        ok = (z0 > 0) & (z1 > 0)
        net0 = 1.0 - prev.schedule.marginal_rate(z0[ok])
        net1 = 1.0 - cur.schedule.marginal_rate(z0[ok])
        valid = (net0 > 0) & (net1 > 0)
        xs.append(np.log(net1[valid]) - np.log(net0[valid]))
        ys.append(np.log(z1[ok][valid]) - np.log(z0[ok][valid]))
    if not xs:
        return None
    x, y = np.concatenate(xs), np.concatenate(ys)
    sxx = float(x @ x)
    if x.size == 0 or sxx / x.size < min_variation:
        return None
    return float(np.clip((x @ y) / sxx, 0.05, 3.0))


class SaezPlanner:
    """The Saez schedule at the economy's equilibrium (computed once).

    ``last_detail`` says whether the fixed point converged (logged with the schedule);
    when it did not, the mean of the last iterates is enacted and a
    :class:`SaezConvergenceWarning` is issued.
    """

    name = "saez"

    def __init__(self, ctx: PlannerContext) -> None:
        self._ctx = ctx
        self._schedule: TaxSchedule | None = None
        self.result: SaezResult | None = None
        self.last_detail: dict[str, Any] = {}

    @property
    def iterations(self) -> int:
        return self.result.iterations if self.result is not None else 0

    @property
    def run_warning(self) -> str | None:
        """One line when the fixed point did not converge (the run summary's
        ``planner_warning``), else ``None``."""
        if self.result is None or self.result.settled:
            return None
        return (
            f"saez: the fixed point did not converge in {self.result.iterations} iterations "
            f"(its last {_CYCLE_AVERAGE} iterates span up to "
            f"{100 * self.result.cycle_width:.1f} points in a bracket): the schedule is "
            "their mean, not Saez's rates"
        )

    def propose(self, history: Sequence[YearRecord]) -> TaxSchedule:
        if self._schedule is None:
            self.result = solve_saez(
                self._ctx.economy,
                self._ctx.edges,
                min_rate=self._ctx.min_rate,
                max_rate=self._ctx.max_rate,
            )
            self.last_detail = self.result.detail()
            if not self.result.settled:
                warn(
                    f"saez: the fixed point did not converge in {self.result.iterations} "
                    f"iterations (its last {_CYCLE_AVERAGE} iterates span up to "
                    f"{100 * self.result.cycle_width:.1f} points in a bracket); enacting "
                    "their mean",
                    SaezConvergenceWarning,
                )
            self._schedule = self._ctx.schedule(self.result.rates)
        return self._schedule


class EmpiricalSaezPlanner:
    """Saez on last year's observed incomes with an elasticity estimated from history.

    Year 0 enacts the status quo (there is nothing to learn from yet); until the
    history identifies ε it uses ``prior_elasticity`` (default 0.4, the literature's
    usual hours elasticity, not read from the economy). The weights are the economy's
    SWF's at last year's outcome, with its rebate share.
    """

    name = "saez-empirical"

    def __init__(self, ctx: PlannerContext, prior_elasticity: float = 0.4) -> None:
        self._ctx = ctx
        self.prior_elasticity = prior_elasticity
        self.elasticity_estimates: list[float | None] = []
        self.last_detail: dict[str, Any] = {}

    def propose(self, history: Sequence[YearRecord]) -> TaxSchedule:
        if not history:
            self.last_detail = first_year_note("the status quo")
            return self._ctx.status_quo()
        last = history[-1]
        estimate = estimate_elasticity(history)
        self.elasticity_estimates.append(estimate)
        eps = estimate if estimate is not None else self.prior_elasticity
        self.last_detail = {"elasticity": eps, "elasticity_estimated": estimate is not None}
        economy = self._ctx.economy
        weights = saez_weights(economy, economy.outcome(last.schedule, last.weekly_hours))
        hours = np.asarray(last.weekly_hours, dtype=float)
        rates = saez_bracket_rates(
            last.income_usd,
            weights,
            self._ctx.edges,
            eps,
            responds=(hours > 0) & (hours < economy.utility_config.max_weekly_hours),
            min_rate=self._ctx.min_rate,
            max_rate=self._ctx.max_rate,
        )
        return self._ctx.schedule(rates)


def _require_weights(ctx: PlannerContext, name: str) -> None:
    """Refuse, before the run starts, an SWF whose marginal welfare weights (what Saez's
    formula needs) are not defined: each year's proposal would fail."""
    from llmecon.economy.welfare import get_swf

    if get_swf(ctx.economy.swf).marginal_weights is None:
        raise PlannerError(
            f"{name} needs the SWF's marginal welfare weights, and the SWF "
            f"{ctx.economy.swf!r} defines none: choose another --swf or planner"
        )


@register_planner("saez", "Saez bracket formula at the equilibrium incomes (fixed point)")
def _saez(ctx: PlannerContext, arg: str | None) -> SaezPlanner:
    _require_weights(ctx, "saez")
    return SaezPlanner(ctx)


@register_planner(
    "saez-empirical",
    "Saez formula with ε estimated from observed responses (saez-empirical:<prior ε>)",
)
def _saez_empirical(ctx: PlannerContext, arg: str | None) -> EmpiricalSaezPlanner:
    _require_weights(ctx, "saez-empirical")
    if arg is None:
        return EmpiricalSaezPlanner(ctx)
    try:
        prior = float(arg)
    except ValueError:
        raise PlannerError(f"saez-empirical takes a prior elasticity, got {arg!r}") from None
    if not prior > 0 or prior == float("inf"):  # Saez's formula divides by it
        raise PlannerError(f"saez-empirical:<ε> takes a prior elasticity ε > 0, got {arg!r}")
    return EmpiricalSaezPlanner(ctx, prior)
