"""Build the messages agents send, from the templates in ``prompts/``.

Every message text is a rendered template (no prompt text in code). Each builder
returns the messages and the ``{template name: sha256}`` of the templates it used, which
go into the call's log event. Messages are ordered static-first: the system message is
identical for every call of a role in a run, and the part shared by all workers in a
year (schedule, rebate) comes before the per-worker part, so providers with prefix
caching (OpenAI, Anthropic, llama.cpp) reuse it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from llmecon.economy import Economy, TaxSchedule
from llmecon.economy.economy import CALIBRATION_SCHEDULE
from llmecon.economy.utility import WEEKS_PER_YEAR, calibrate_psi, consumption_utility
from llmecon.economy.welfare import get_swf
from llmecon.models import ChatMessage
from llmecon.planners import PlannerContext, YearRecord
from llmecon.prompts import PromptLibrary

FloatArray = NDArray[np.float64]

#: Hours shown in the rational worker's outcome table (those up to the hour cap).
RATIONAL_TABLE_HOURS = (0, 10, 20, 30, 35, 40, 45, 50, 60, 70, 80, 90, 100, 120, 140, 168)


@dataclass(frozen=True)
class Prompt:
    """Messages for one call plus the templates that produced them."""

    messages: list[ChatMessage]
    templates: dict[str, str] = field(default_factory=dict)


def bracket_rows(schedule: TaxSchedule) -> list[dict[str, Any]]:
    """``[{range: "$11,925 to $48,475", rate: 0.12}, …]`` for templates."""
    rows = []
    for b, (lo, rate) in enumerate(zip(schedule.edges, schedule.rates, strict=True)):
        if b + 1 < schedule.n_brackets:
            text = f"${lo:,.0f} to ${schedule.edges[b + 1]:,.0f}"
        else:
            text = f"${lo:,.0f} and above"
        rows.append({"range": text, "rate": rate})
    return rows


def _render(library: PromptLibrary, name: str, used: dict[str, str], **ctx: Any) -> str:
    rendered = library.render(name, **ctx)
    used[name] = rendered.sha256
    return rendered.text


class HistoryView:
    """Every worker's recent years, with taxes computed once per year for all workers."""

    def __init__(self, history: Sequence[YearRecord], limit: int = 3) -> None:
        self.records = list(history)[-limit:] if limit > 0 else []
        self.taxes = [rec.schedule.tax(rec.income_usd) for rec in self.records]

    def rows(self, index: int) -> list[dict[str, float]]:
        """Worker ``index``'s last years: hours, income, tax."""
        return [
            {
                "year": rec.year,
                "hours": float(rec.weekly_hours[index]),
                "income": float(rec.income_usd[index]),
                "tax": float(tax[index]),
            }
            for rec, tax in zip(self.records, self.taxes, strict=True)
        ]


def worker_prompt(
    library: PromptLibrary,
    *,
    style: str,
    persona_text: str,
    index: int,
    economy: Economy,
    year: int,
    schedule: TaxSchedule,
    last_rebate_usd: float,
    history: HistoryView,
    step_feedback: StepFeedback | None = None,
) -> Prompt:
    """The system + user messages of worker ``index`` for one decision; from the second
    decision step of a year on, ``step_feedback`` is what the previous step produced."""
    used: dict[str, str] = {}
    max_hours = int(economy.utility_config.max_weekly_hours)
    system = _render(
        library,
        "worker_system.j2",
        used,
        max_hours=max_hours,
        rebate_share=economy.utility_config.rebate_share,
    )
    ctx: dict[str, Any] = {
        "year": year,
        "brackets": bracket_rows(schedule),
        "last_rebate": last_rebate_usd,
        "persona_text": persona_text.strip(),
        "history": history.rows(index),
        "max_hours": max_hours,
        "step_feedback": step_feedback.row(index, style) if step_feedback else None,
    }
    if style == "rational":
        ctx.update(_rational_context(economy, index, schedule, last_rebate_usd))
        user = _render(library, "worker_decision_rational.j2", used, **ctx)
    else:
        user = _render(library, "worker_decision.j2", used, **ctx)
    return Prompt(
        [ChatMessage(role="system", content=system), ChatMessage(role="user", content=user)],
        used,
    )


def satisfaction_prompt(
    library: PromptLibrary,
    *,
    persona_text: str,
    economy: Economy,
    index: int,
    year: int,
    schedule: TaxSchedule,
    weekly_hours: float,
    rebate_usd: float,
) -> Prompt:
    """Is worker ``index`` satisfied with the tax policy (``satisfaction.j2``), having
    worked ``weekly_hours`` this step (LLM Economist's bounded scenario)."""
    income = WEEKS_PER_YEAR * float(economy.population.hourly_wage_usd[index]) * weekly_hours
    tax = float(schedule.tax(np.array([income]))[0])
    used: dict[str, str] = {}
    text = _render(
        library,
        "satisfaction.j2",
        used,
        year=year,
        brackets=bracket_rows(schedule),
        persona_text=persona_text.strip(),
        hours=weekly_hours,
        income=income,
        tax=tax,
        rebate=rebate_usd,
        net=income - tax + rebate_usd,
    )
    return Prompt([ChatMessage(role="user", content=text)], used)


def status_quo_consumption(economy: Economy) -> FloatArray:
    """Each worker's consumption at census hours under the calibration schedule, with
    its rebate (USD): the reference ``c₀`` of the rational prompt's value under CRRA.

    For a calibrated CRRA economy it is read back from the calibration itself
    (``ψ_i = ψ_i^quasi-linear · c₀^(−η)``), so it is exactly the ``c₀`` the economy used
    (with its survey weights, if any)."""
    cfg = economy.utility_config
    pop = economy.population
    wage = pop.hourly_wage_usd
    h0 = np.asarray(pop.usual_weekly_hours, dtype=float)
    z0 = WEEKS_PER_YEAR * wage * h0
    if cfg.crra is not None and cfg.labour_cost is None:
        linear = replace(cfg, crra=None)
        psi_linear = calibrate_psi(wage, h0, CALIBRATION_SCHEDULE.marginal_rate(z0), linear)
        return np.asarray((psi_linear / economy.psi) ** (1.0 / cfg.crra), dtype=float)
    t0 = CALIBRATION_SCHEDULE.tax(z0)
    rebate = cfg.rebate_share * float(
        np.average(t0, weights=getattr(economy, "survey_weight", None))
    )
    return np.asarray(z0 - t0 + rebate, dtype=float)


def rational_values(
    economy: Economy, index: int, weekly_hours: FloatArray, net_usd: FloatArray
) -> tuple[FloatArray, float, float | None]:
    """The value a rational-style prompt shows for (hours, income after tax and rebate):
    the utility in force, in dollars. Quasi-linear: ``net − ψ·52·l^k/k`` exactly. CRRA:
    ``(u(net) − u(c₀)) / u'(c₀) − (ψ / u'(c₀))·52·l^k/k``, a positive affine transform
    of the worker's utility (same ranking of every option), ``c₀`` its status-quo
    consumption. Returns the values, the ψ the prompt states and ``c₀`` (``None``
    quasi-linear)."""
    cfg = economy.utility_config
    psi = float(economy.psi[index])
    k = 1.0 + 1.0 / cfg.elasticity
    cost = WEEKS_PER_YEAR * np.asarray(weekly_hours, dtype=float) ** k / k
    net = np.asarray(net_usd, dtype=float)
    if cfg.crra is None:
        return net - psi * cost, psi, None
    c0 = float(status_quo_consumption(economy)[index])
    mu0 = c0 ** (-cfg.crra)
    gain = consumption_utility(net, cfg.crra) - consumption_utility(np.array([c0]), cfg.crra)
    return gain / mu0 - (psi / mu0) * cost, psi / mu0, c0


def _number(value: float) -> str:
    """Four significant digits, never rounded to zero (a ψ of 3.4e-05 stays visible)."""
    return f"{value:.4g}"


def _rational_context(
    economy: Economy, index: int, schedule: TaxSchedule, rebate: float
) -> dict[str, Any]:
    cfg = economy.utility_config
    wage = float(economy.population.hourly_wage_usd[index])
    k = 1.0 + 1.0 / cfg.elasticity
    shown = [h for h in RATIONAL_TABLE_HOURS if h <= cfg.max_weekly_hours]
    if shown[-1] < cfg.max_weekly_hours:
        shown.append(int(cfg.max_weekly_hours))
    hours = np.array(shown, dtype=float)
    income = WEEKS_PER_YEAR * wage * hours
    tax = schedule.tax(income)
    net = income - tax + rebate
    value, psi, c0 = rational_values(economy, index, hours, net)
    table = [
        {"hours": int(h), "income": float(i), "tax": float(t), "net": float(n), "utility": float(v)}
        for h, i, t, n, v in zip(hours, income, tax, net, value, strict=True)
    ]
    return {
        "wage": wage,
        "psi": psi,
        "psi_text": _number(psi),
        "elasticity_term": k,
        "crra": cfg.crra,
        "crra_text": None if cfg.crra is None else _number(cfg.crra),
        "one_minus_crra_text": None if cfg.crra is None else _number(1.0 - cfg.crra),
        "c0": c0,
        "table": table,
    }


@dataclass(frozen=True)
class StepFeedback:
    """What the previous decision step of the year produced for every worker (LLM
    Economist's within-year feedback): hours, income, tax, the rebate those hours fund
    and, for the rational style, the value of :func:`rational_values`."""

    economy: Economy
    weekly_hours: FloatArray
    income_usd: FloatArray
    tax_usd: FloatArray
    rebate_usd: float
    #: The step before (from the third step of a year): its outcome, to tell a rational-
    #: style worker whether its last change of hours raised or lowered its value.
    before: StepFeedback | None = None

    @classmethod
    def of(
        cls,
        economy: Economy,
        schedule: TaxSchedule,
        weekly_hours: FloatArray,
        before: StepFeedback | None = None,
    ) -> StepFeedback:
        out = economy.outcome(schedule, weekly_hours)
        return cls(
            economy,
            out.weekly_hours,
            out.income_usd,
            out.tax_usd,
            float(out.rebate_usd),
            None if before is None else replace(before, before=None),
        )

    def row(self, index: int, style: str) -> dict[str, Any]:
        """The template's ``step_feedback``: the previous step's numbers and, in the
        ``rational`` style with an earlier step, ``change``: ``{"from", "to",
        "effect"}`` with effect ``raised``/``lowered``/``did not change`` (the value),
        or ``None`` when the hours were not changed."""
        row = self._numbers(index, style)
        row["change"] = None
        if style == "rational" and self.before is not None:
            earlier = self.before._numbers(index, style)
            if round(earlier["hours"]) != round(row["hours"]):
                diff = row["value"] - earlier["value"]
                tol = 1e-9 * max(1.0, abs(earlier["value"]))
                effect = "raised" if diff > tol else "lowered" if diff < -tol else "did not change"
                row["change"] = {"from": earlier["hours"], "to": row["hours"], "effect": effect}
        return row

    def _numbers(self, index: int, style: str) -> dict[str, Any]:
        income, tax = float(self.income_usd[index]), float(self.tax_usd[index])
        row: dict[str, Any] = {
            "hours": float(self.weekly_hours[index]),
            "income": income,
            "tax": tax,
            "rebate": self.rebate_usd,
            "net": income - tax + self.rebate_usd,
            "value": None,
        }
        if style == "rational":
            value, _, _ = rational_values(
                self.economy,
                index,
                np.array([row["hours"]]),
                np.array([row["net"]]),
            )
            row["value"] = float(value[0])
        return row


@dataclass(frozen=True)
class GridMoves:
    """LLM Economist's planner moves (``planner_moves: grid:<step>,<max>``): each year
    the planner answers one change per bracket from ``{−max, …, −step, 0, step, …, max}``
    (whole points) and every rate stays on the ``step``-point grid."""

    step_pct: int
    max_pct: int

    def __post_init__(self) -> None:
        if self.step_pct < 1 or self.max_pct < self.step_pct or self.max_pct % self.step_pct:
            raise ValueError(
                f"grid moves need 1 ≤ step ≤ max and max a multiple of step "
                f"(got step {self.step_pct}, max {self.max_pct})"
            )

    @property
    def deltas(self) -> list[int]:
        """The allowed changes in points, ascending."""
        return list(range(-self.max_pct, self.max_pct + 1, self.step_pct))

    def snap(self, pct: Sequence[int] | np.ndarray) -> np.ndarray:
        """Rates in percent rounded to the grid (ties up)."""
        arr = np.asarray(pct, dtype=float)
        return np.floor(arr / self.step_pct + 0.5) * self.step_pct

    def bounds_pct(
        self, current: Sequence[int], lo_pct: int, hi_pct: int
    ) -> tuple[list[int], list[int]]:
        """Per-bracket reachable range this year: the grid point ± max, within the bounds."""
        base = self.snap(current)
        lowest = [int(max(lo_pct, b - self.max_pct)) for b in base]
        highest = [int(min(hi_pct, b + self.max_pct)) for b in base]
        return lowest, highest


def parse_planner_moves(text: str) -> GridMoves | None:
    """``"free"`` → ``None`` (whole-percent rates within the trust region);
    ``"grid:<step>,<max>"`` → :class:`GridMoves`. Raises ``ValueError`` otherwise."""
    value = text.strip().lower()
    if value == "free":
        return None
    if value.startswith("grid:"):
        parts = value[len("grid:") :].split(",")
        if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
            return GridMoves(int(parts[0]), int(parts[1]))
    raise ValueError(
        f"planner moves {text!r}: use 'free' or 'grid:<step>,<max>' in whole points "
        "(LLM Economist: grid:10,20)"
    )


@dataclass(frozen=True)
class PlannerPromptSettings:
    """What the LLM planner is shown.

    Attributes:
        history_len: most recent years shown as demonstrations.
        best_len: best-so-far years shown in addition (if not already recent).
        trust_region: largest change of any rate from one year to the next (fraction).
        hints: add per-bracket effect estimates computed from the history.
        moves: ``None`` (answer whole-percent rates within the trust region) or
            :class:`GridMoves` (answer a change per bracket from the grid's set; the
            trust region is then the grid's ``max``).
        uncertainty: show each year's welfare with its noise interval, the change
            against the previous year and where the workers' incomes fall (workers
            and income share per bracket); off: the bare outcomes (an ablation).
        explore: add a note that early years are for trying changes (LLM Economist's
            exploration instruction).
        horizon: how many tax years the run has (``None``: not told). The query says
            "year N of M" and, in the last year, that it is the last: a planner can
            then enact its best schedule instead of trying one more change.
    """

    history_len: int = 8
    best_len: int = 3
    trust_region: float = 0.10
    hints: bool = False
    moves: GridMoves | None = None
    uncertainty: bool = True
    explore: bool = False
    horizon: int | None = None


@dataclass(frozen=True)
class Leader:
    """An elected leader the LLM planner acts as (``candidate_source: leaders``,
    ``docs/voting.md``): the persona ``agent`` with its second-person ``text``, elected
    by the workers in the round held in ``year`` (0-based, as in the log)."""

    agent: str
    text: str
    year: int


def pct_list(rates: Sequence[float]) -> list[int]:
    return [round(100 * r) for r in rates]


_COUNT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight")


def count_words(n: int) -> str:
    """``2 -> "two"``: counts in prompt instructions are spelt out, so that no digit in
    a format instruction can be copied as an answer (a rate, an hour count)."""
    return _COUNT_WORDS[n] if 0 <= n < len(_COUNT_WORDS) else str(n)


def shown_years(history: Sequence[YearRecord], settings: PlannerPromptSettings) -> list[YearRecord]:
    """The years the planner's demonstrations show: the ``history_len`` most recent,
    plus the ``best_len`` best-so-far years not already among them, in year order."""
    recent = list(history)[-settings.history_len :] if settings.history_len > 0 else []
    shown = {r.year for r in recent}
    ranked = sorted(history, key=lambda r: r.metrics.swf, reverse=True)
    best = [r for r in ranked[: settings.best_len] if r.year not in shown]
    return sorted(best + recent, key=lambda r: r.year)


def shown_swf(rec: YearRecord) -> float:
    """A year's welfare as the demonstrations print it (one decimal): what a planner
    reading the prompt can compute with."""
    return round(rec.metrics.swf, 1)


def welfare_noise_sd(years: Sequence[YearRecord]) -> float | None:
    """The year-to-year noise of the welfare, estimated from ``years`` that enacted the
    same rates (pooled standard deviation of the welfare around each repeated schedule's
    mean); ``None`` before any schedule was enacted twice. The demonstrations' interval
    and the scripted planner's confidence bounds both use it."""
    by_rates: dict[tuple[int, ...], list[float]] = {}
    for rec in years:
        by_rates.setdefault(tuple(pct_list(rec.schedule.rates)), []).append(shown_swf(rec))
    repeats = [np.array(v) for v in by_rates.values() if len(v) > 1]
    dof = sum(v.size - 1 for v in repeats)
    if not dof:
        return None
    return float(np.sqrt(sum(float(np.sum((v - v.mean()) ** 2)) for v in repeats) / dof))


def bracket_shares(rec: YearRecord) -> tuple[list[int], list[int]]:
    """Workers whose income falls in each bracket, and each bracket's share (whole
    percent) of total income earned by them: where the tax base of each rate sits."""
    edges = np.asarray(rec.schedule.edges, dtype=float)
    income = np.asarray(rec.income_usd, dtype=float)
    which = np.clip(np.searchsorted(edges, income, side="right") - 1, 0, edges.size - 1)
    counts = np.bincount(which, minlength=edges.size)
    totals = np.bincount(which, weights=income, minlength=edges.size)
    total = float(totals.sum())
    shares = 100.0 * totals / total if total > 0 else np.zeros(edges.size)
    return [int(c) for c in counts], [round(float(x)) for x in shares]


def rate_change_text(before: Sequence[int], after: Sequence[int]) -> str:
    """``"bracket 3 +5, bracket 4 -2"`` (points), or ``"rates unchanged"``."""
    pairs = enumerate(zip(before, after, strict=True))
    moves = [f"bracket {b + 1} {a - p:+d}" for b, (p, a) in pairs if a != p]
    return ", ".join(moves) if moves else "rates unchanged"


def demonstrations(
    history: Sequence[YearRecord], settings: PlannerPromptSettings, n_agents: int
) -> list[dict[str, Any]]:
    """Recent years, then the best-so-far years not already shown, in year order. With
    ``settings.uncertainty`` each also carries the welfare's noise interval, the mean
    over every shown year with the same rates, the change against the previous year
    and the workers and income share per bracket."""
    best_year = max(history, key=lambda r: r.metrics.swf).year if history else None
    years = shown_years(history, settings)
    # the noise estimate uses every year, shown or not: a repeat that scrolled out of
    # the demonstrations still measured the noise
    sd = welfare_noise_sd(history) if settings.uncertainty else None
    by_year = {r.year: r for r in history}
    same: dict[tuple[int, ...], list[float]] = {}
    for rec in years:
        same.setdefault(tuple(pct_list(rec.schedule.rates)), []).append(shown_swf(rec))
    demos = []
    for rec in years:
        tags = []
        if rec.year == best_year:
            tags.append("best so far")
        if rec.source != "planner":
            tags.append(f"set by {rec.source}")
        rates = pct_list(rec.schedule.rates)
        demo: dict[str, Any] = {
            "year": rec.year,
            "tag": ", ".join(tags),
            "rates": rates,
            "swf": f"{rec.metrics.swf:,.1f}",
            "revenue": rec.metrics.revenue_usd / max(n_agents, 1),
            "hours": f"{rec.metrics.mean_weekly_hours:.1f}",
            "gini": f"{rec.metrics.gini_income:.3f}",
            "vote": rec.notes.get("vote_summary", ""),
        }
        if settings.uncertainty:
            repeats = same[tuple(rates)]
            previous = by_year.get(rec.year - 1)
            counts, shares = bracket_shares(rec)
            demo.update(
                {
                    "interval": f"{2 * sd:,.1f}" if sd is not None else None,
                    "mean": f"{np.mean(repeats):,.1f}" if len(repeats) > 1 else None,
                    "mean_interval": (
                        f"{2 * sd / np.sqrt(len(repeats)):,.1f}" if sd is not None else None
                    ),
                    "n_same": len(repeats),
                    "change": (
                        None
                        if previous is None
                        else {
                            "rates": rate_change_text(pct_list(previous.schedule.rates), rates),
                            "swf": f"{rec.metrics.swf - previous.metrics.swf:+,.1f}",
                        }
                    ),
                    "workers": "/".join(str(c) for c in counts),
                    "income_share": "/".join(str(x) for x in shares),
                }
            )
        demos.append(demo)
    return demos


def effect_hints(history: Sequence[YearRecord], ridge: float = 1e-4) -> list[dict[str, Any]]:
    """Per-bracket d(SWF)/d(rate point) from a ridge regression over past years.

    Uses the deviations of each year's rates and SWF from their means; empty when the
    history has fewer than three years or no rate variation.
    """
    if len(history) < 3:
        return []
    x = np.array([100 * r.schedule.rates_array for r in history])
    y = np.array([r.metrics.swf for r in history])
    x = x - x.mean(axis=0)
    y = y - y.mean()
    if not np.any(x):
        return []
    gram = x.T @ x + ridge * np.trace(x.T @ x) * np.eye(x.shape[1]) / max(x.shape[1], 1)
    slope = np.linalg.solve(gram + 1e-12 * np.eye(x.shape[1]), x.T @ y)
    return [
        {"bracket": b + 1, "slope": float(s), "years": len(history)} for b, s in enumerate(slope)
    ]


@dataclass(frozen=True)
class PlannerFrame:
    """What every planner prompt shares: the rendered context (system message) and
    demonstrations, and this year's current rates, allowed ranges and best year."""

    system: str
    demonstrations: str
    current: list[int]
    lowest: list[int]
    highest: list[int]
    best_year: int
    best_swf: str


def planner_frame(
    library: PromptLibrary,
    ctx: PlannerContext,
    history: Sequence[YearRecord],
    settings: PlannerPromptSettings,
    used: dict[str, str],
    leader: Leader | None = None,
) -> PlannerFrame:
    """Render ``planner_context.j2`` and ``planner_demonstrations.j2`` (recorded in
    ``used``); with no history the status quo is the current schedule. ``leader``: the
    elected leader the planner acts as (rendered only when given)."""
    schedule = history[-1].schedule if history else ctx.status_quo()
    lo_pct, hi_pct = round(100 * ctx.min_rate), round(100 * ctx.max_rate)
    moves = settings.moves
    trust_pct = moves.max_pct if moves else round(100 * settings.trust_region)
    system = _render(
        library,
        "planner_context.j2",
        used,
        n_agents=ctx.economy.size,
        brackets=bracket_rows(schedule),
        objective=get_swf(ctx.economy.swf).objective,
        min_pct=lo_pct,
        max_pct=hi_pct,
        trust_pct=trust_pct,
        n_brackets=ctx.n_brackets,
        rebate_share=ctx.economy.utility_config.rebate_share,
        moves={"step": moves.step_pct, "max": moves.max_pct} if moves else None,
        leader={"text": leader.text.strip(), "year": leader.year} if leader else None,
    )
    demos = _render(
        library,
        "planner_demonstrations.j2",
        used,
        demos=demonstrations(history, settings, ctx.economy.size),
        uncertainty=settings.uncertainty,
    )
    current = pct_list(schedule.rates)
    if moves:
        lowest, highest = moves.bounds_pct(current, lo_pct, hi_pct)
    else:
        lowest, highest = trust_bounds_pct(current, lo_pct, hi_pct, trust_pct)
    best = max(history, key=lambda r: r.metrics.swf) if history else None
    return PlannerFrame(
        system,
        demos,
        current,
        lowest,
        highest,
        best.year if best else 0,
        f"{best.metrics.swf:,.1f}" if best else "n/a",
    )


def planner_prompt(
    library: PromptLibrary,
    *,
    ctx: PlannerContext,
    history: Sequence[YearRecord],
    settings: PlannerPromptSettings,
    year: int,
    leader: Leader | None = None,
) -> Prompt:
    """Context (system) + demonstrations, optional hints and query (user); ``leader``:
    the elected leader the planner acts as (``candidate_source: leaders``)."""
    used: dict[str, str] = {}
    frame = planner_frame(library, ctx, history, settings, used, leader)
    parts = [frame.demonstrations]
    if settings.hints:
        hints = effect_hints(history)
        if hints:
            parts.append(_render(library, "planner_hints.j2", used, hints=hints))
    if settings.explore:
        parts.append(_render(library, "planner_explore.j2", used))
    parts.append(
        _render(
            library,
            "planner_query_delta.j2" if settings.moves else "planner_query.j2",
            used,
            year=year,
            horizon=settings.horizon,
            current=frame.current,
            best_year=frame.best_year,
            best_swf=frame.best_swf,
            lowest=frame.lowest,
            highest=frame.highest,
            n_brackets=ctx.n_brackets,
        )
    )
    return Prompt(
        [
            ChatMessage(role="system", content=frame.system),
            ChatMessage(role="user", content="\n".join(parts)),
        ],
        used,
    )


def trust_bounds_pct(
    current: Sequence[int], lo_pct: int, hi_pct: int, trust_pct: int
) -> tuple[list[int], list[int]]:
    """Per-bracket allowed range this year: the bounds intersected with the trust region."""
    lowest = [max(lo_pct, c - trust_pct) for c in current]
    highest = [min(hi_pct, c + trust_pct) for c in current]
    return lowest, highest
