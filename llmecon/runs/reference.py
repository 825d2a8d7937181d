"""Reference welfare for a run's economy: no tax, the status quo and the oracle, and
what those references assume about the run's workers.

The headline number of a run is the share of the welfare gain from no tax to the oracle
that it closes, ``gain_closed = (W − W_none) / (W_oracle − W_none)``
(:func:`llmecon.economy.gain_closed`): 0 for the free market, 1 for the oracle,
defined for negative SWFs (CRRA with η > 1), ``None`` ("n/a") when the two coincide.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from llmecon.agents.planner_prompts import welfare_noise
from llmecon.economy import Economy, TaxSchedule, gain_closed
from llmecon.economy.utility import CONSUMPTION_FLOOR_USD
from llmecon.planners import OracleResult, PlannerContext, YearRecord
from llmecon.planners.oracle import optimum

#: Worker indices (archetype mode: each archetype's representative).
IndexArray = NDArray[np.int64]

#: Above this many workers the oracle is skipped in run summaries (it scales linearly,
#: ~1 s per 1 000 quasi-linear workers on 2 cores, ~30 times that under CRRA);
#: `llmecon compare` still computes it on request.
ORACLE_MAX_AGENTS = 20_000

#: A run summary's ``reference_note`` when an interrupt (Ctrl-C, SIGTERM) came while the
#: run computed its references as it ended: they are left out of the summary.
REFERENCE_INTERRUPTED = "skipped: the run was interrupted while it computed them"
#: The ``run_completed`` error of such a run: it ends ``interrupted`` with every tax
#: year logged, and ``llmecon resume`` computes the references (and the gain closed).
REFERENCES_CUT = (
    "interrupted while it computed its references (every tax year ran): `llmecon resume` "
    "computes them"
)


#: The oracle is flagged as degenerate (``oracle_warning``) when its schedule leaves at
#: least this share of the workers (survey-weighted) at 0 hours who work with no tax:
#: an optimum reached by stopping work (an SWF weighting realised income rewards it),
#: not a tax system.
ORACLE_IDLE_SHARE = 0.25

#: ... or when the status quo closes less than this share of the no-tax → oracle gain
#: (while it differs from no tax): the oracle's SWF then dwarfs every ordinary
#: schedule's, and every other planner's gain closed reads about 0 %.
ORACLE_DWARFS_GAIN = 0.01


def reference_welfare(ctx: PlannerContext, oracle: OracleResult | None = None) -> dict[str, Any]:
    """SWF with no tax (every rate at the lowest allowed, as the ``none`` planner sets
    it; ``none_rate`` is that rate when it is not 0), under the status quo and, for
    economies up to :data:`ORACLE_MAX_AGENTS`, the oracle's (with its rates and whether
    its within-year equilibrium converged), and ``oracle_warning`` when the oracle is
    degenerate (:func:`oracle_warning`). ``oracle``: the optimum of ``ctx``'s problem
    when already found (the ``oracle`` planner's), so it is not searched again."""
    economy = ctx.economy
    _, status_quo = economy.evaluate(ctx.status_quo())
    no_tax_outcome, no_tax = economy.evaluate(no_tax_schedule(ctx))
    out: dict[str, Any] = {"status_quo_swf": status_quo.swf, "none_swf": no_tax.swf}
    if ctx.min_rate > 0:  # "no tax" is then a flat tax at the lowest rate allowed
        out["none_rate"] = ctx.min_rate
    if economy.size <= ORACLE_MAX_AGENTS:
        best = oracle if oracle is not None else optimum(ctx)
        out["oracle_swf"] = best.swf
        # in full: rounded, a rate on a knife edge (where a worker's best response
        # jumps) gave another SWF, and the replay of the run failed its check
        out["oracle_rates"] = [float(r) for r in best.rates]
        out["oracle_converged"] = best.converged
        oracle_outcome, _ = economy.evaluate(ctx.schedule(list(best.rates)))
        warning = oracle_warning(
            out, oracle_outcome.weekly_hours, no_tax_outcome.weekly_hours, economy.survey_weight
        )
        if warning is not None:
            out["oracle_warning"] = warning
    else:
        out["oracle_swf"] = None
        out["oracle_note"] = f"skipped: more than {ORACLE_MAX_AGENTS} agents"
    return out


def oracle_warning(
    reference: dict[str, Any],
    oracle_hours: Sequence[float] | np.ndarray,
    no_tax_hours: Sequence[float] | np.ndarray,
    survey_weight: np.ndarray | None = None,
) -> str | None:
    """Why the oracle of a :func:`reference_welfare` result makes the gain closed a poor
    headline, or ``None``: its schedule leaves at least :data:`ORACLE_IDLE_SHARE` of the
    workers at 0 hours (in whole hours) who work with no tax, or the status quo closes
    less than :data:`ORACLE_DWARFS_GAIN` of the no-tax → oracle gain."""
    idle = (np.round(np.asarray(oracle_hours, float)) == 0) & (
        np.round(np.asarray(no_tax_hours, float)) > 0
    )
    weight = np.ones(idle.size) if survey_weight is None else np.asarray(survey_weight, float)
    share = float(weight[idle].sum() / weight.sum()) if idle.size else 0.0
    status_quo = gain_closed(
        reference["status_quo_swf"], reference.get("none_swf"), reference.get("oracle_swf")
    )
    dwarfs = status_quo is not None and abs(status_quo) < ORACLE_DWARFS_GAIN
    dwarfs = dwarfs and reference["status_quo_swf"] != reference.get("none_swf")
    status_quo = status_quo or 0.0
    if share < ORACLE_IDLE_SHARE and not dwarfs:
        return None
    rates = ", ".join(f"{100 * r:.0f}" for r in reference.get("oracle_rates") or [])
    said = f"the oracle's schedule ({rates} %)"
    if share >= ORACLE_IDLE_SHARE:
        said += f" leaves {100 * share:.0f} % of the workers at 0 hours, who work with no tax"
        if dwarfs:
            said += ", and"
    if dwarfs:
        said += (
            f" has an SWF that dwarfs the status quo's (which closes {100 * status_quo:.1f} % "
            "of the no-tax → oracle gain): every other planner's gain closed reads about 0 %"
        )
    return said + "; the oracle is degenerate under this SWF: compare planners by their SWF"


def no_tax_schedule(ctx: PlannerContext) -> TaxSchedule:
    """The ``none`` reference's schedule: every rate at the lowest allowed."""
    return ctx.schedule([0.0] * ctx.n_brackets)


def headline(swf: float, reference: dict[str, Any]) -> dict[str, float | None]:
    """A final year's ``swf`` against a :func:`reference_welfare` result, as a run
    summary gives it: ``gain_closed`` (``None`` = n/a) and ``final_pct_of_status_quo``
    and ``final_pct_of_oracle`` (each absent when its reference is missing or not
    positive: a ratio to a negative welfare, as CRRA with η > 1 gives, inverts, so that
    a final year worse than the oracle scored over 100 %)."""
    out: dict[str, float | None] = {"gain_closed": gain_closed_of(swf, reference)}
    for key in ("status_quo_swf", "oracle_swf"):
        if (ref := positive_reference(reference.get(key))) is not None:
            out[f"final_pct_of_{key.removesuffix('_swf')}"] = 100.0 * swf / ref
    return out


def positive_reference(value: Any) -> float | None:
    """``value`` as a reference a welfare can be taken in percent of (``W / W_ref``), or
    ``None`` when it is missing or not a positive number: at 0 the ratio is undefined
    and below it inverts (docs/economy.md)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        return None
    return float(value)


def gain_closed_of(swf: float, reference: dict[str, Any]) -> float | None:
    """:func:`~llmecon.economy.gain_closed` of ``swf`` against a :func:`reference_welfare`
    result (``None`` when the oracle was skipped or the gap is nil)."""
    return gain_closed(swf, reference.get("none_swf"), reference.get("oracle_swf"))


def unconverged_years(records: Sequence[YearRecord]) -> dict[str, Any]:
    """The tax years whose within-year rebate equilibrium (CRRA utility) did not
    converge: ``unconverged_years`` (as the log counts, from 0) and the largest
    ``|rebate_residual_usd|`` among them; nothing when every year converged or the
    utility is quasi-linear (docs/economy.md)."""
    years = [r for r in records if r.metrics.rebate_converged == 0.0]
    if not years:
        return {}
    residuals = [abs(r.metrics.rebate_residual_usd or 0.0) for r in years]
    return {
        "unconverged_years": [r.year for r in years],
        "unconverged_residual_max_usd": max(residuals),
    }


def zero_consumption_years(records: Sequence[YearRecord], ctx: PlannerContext) -> dict[str, Any]:
    """Under CRRA utility with η ≥ 1, the tax years in which some worker consumed nothing
    (at most :data:`~llmecon.economy.utility.CONSUMPTION_FLOOR_USD`: every dollar taxed
    away, no rebate): ``zero_consumption_years`` (from 0) and the most such workers in
    one year. Their utility is −∞, scored at the floor, so the year's welfare only says
    the schedule is the worst there is."""
    crra = ctx.economy.utility_config.crra
    if crra is None or crra < 1 or not records:
        return {}
    years, most = [], 0
    for r in records:
        income = np.asarray(r.income_usd, dtype=float)
        consumption = income - r.schedule.tax(income) + r.metrics.rebate_usd
        if (n := int(np.count_nonzero(consumption <= CONSUMPTION_FLOOR_USD))) > 0:
            years.append(r.year)
            most = max(most, n)
    return {"zero_consumption_years": years, "zero_consumption_workers_max": most} if years else {}


def tax_years_text(years: Sequence[int], limit: int = 8) -> str:
    """``[0, 1, 5]`` (0-based, as the log) → ``"1, 2, 6"``: tax years as the progress
    lines and tables number them, shortened past ``limit``."""
    return ", ".join(str(y + 1) for y in years[:limit]) + (", …" if len(years) > limit else "")


def economy_notes(summary: dict[str, Any]) -> list[str]:
    """What the economy could not settle in a run's years (:func:`unconverged_years`,
    :func:`zero_consumption_years`), for the terminal and the report."""
    notes = []
    if years := summary.get("unconverged_years") or []:
        many = len(years) > 1
        notes.append(
            f"the rebate equilibrium of {len(years)} tax year{'s' if many else ''} "
            f"({tax_years_text(years)}) did not converge: the rebate the workers anticipate "
            "and the one their taxes pay differ by up to "
            f"${summary.get('unconverged_residual_max_usd', 0.0):,.2f} a year (a worker's "
            "jump between two hours; its welfare is that of the closer side, "
            "docs/economy.md)"
        )
    if years := summary.get("zero_consumption_years") or []:
        most = summary.get("zero_consumption_workers_max", 0)
        notes.append(
            f"in {len(years)} tax year{'s' if len(years) > 1 else ''} ({tax_years_text(years)}) "
            f"up to {most} worker{'s' if most > 1 else ''} consumed nothing (every dollar "
            "taxed away, nothing rebated): under CRRA utility their utility is −∞, scored "
            f"at a consumption of ${CONSUMPTION_FLOOR_USD:g}, so that year's SWF and gain "
            "closed say only that the schedule is the worst there is (docs/economy.md)"
        )
    return notes


#: A year in which at least this share of workers gave the same answer is flagged as
#: degenerate (an anchored or collapsed model, not a population responding to taxes).
DEGENERATE_SHARE = 0.9


#: Fewer answers than this in a tax year say nothing about anchoring: a model's
#: answers alike are flagged only among at least this many workers (with one worker
#: every year is "100 % alike"; two noisy workers often agree by chance).
MIN_ALIKE_ANSWERS = 10


#: A common answer counts as the model's (anchored, collapsed) only where at least this
#: much more of the workers gave it than the rational best responses would: under a
#: utility whose optimum is the hour cap for nearly everyone, rational workers answer
#: alike too. The run summary and the report's anchoring warning both use it.
ALIKE_MARGIN = 0.2


def identical_answer_share(weekly_hours: Sequence[float] | np.ndarray) -> float:
    """The share of workers whose hours equal the most common answer of the year."""
    return _modal(weekly_hours)[1]


def _modal(weekly_hours: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """The most common answer of the year and the share of workers who gave it."""
    hours = np.asarray(weekly_hours, dtype=float)
    if hours.size == 0:
        return 0.0, 0.0
    values, counts = np.unique(hours, return_counts=True)
    top = int(np.argmax(counts))
    return float(values[top]), float(counts[top] / hours.size)


def rational_share(
    economy: Economy, schedule: TaxSchedule, hours: float, among: IndexArray | None = None
) -> float:
    """The share of workers (those at indices ``among`` when given) whose rational best
    response to ``schedule``, in whole hours as a model answers, is ``hours``."""
    best = np.round(economy.rational_hours(schedule))
    if among is not None:
        best = best[among]
    return float(np.mean(best == round(hours))) if best.size else 0.0


def more_alike_than_rational(
    economy: Economy, record: YearRecord, among: IndexArray | None = None
) -> bool:
    """Whether the year's most common answer (of the workers at ``among`` when given) is
    given by at least :data:`ALIKE_MARGIN` more of them than the rational best
    responses give it."""
    hours = np.asarray(record.weekly_hours, dtype=float)
    modal, share = _modal(hours if among is None else hours[among])
    return rational_share(economy, record.schedule, modal, among) < share - ALIKE_MARGIN


def worker_notes(
    records: Sequence[YearRecord],
    workers: str,
    ctx: PlannerContext,
    answerers: IndexArray | None = None,
) -> dict[str, Any]:
    """What a run's references assume and whether its LLM workers answered alike.

    ``references_assume``: the status quo, no-tax and oracle welfare are computed at
    rational best responses, so for LLM workers they describe other workers. For LLM
    workers whose first tax year enacted the status quo, ``status_quo_same_workers_swf``
    is that year's realised welfare: the status quo for the same workers, the fair
    baseline for the final welfare. Both are one year's welfare, one draw of the
    workers' answers: ``year_noise_sd`` is the year-to-year noise σ̂ of the welfare,
    from the years that enacted the same rates (absent when none did), and
    ``year_noise_dof`` its degrees of freedom, so the difference is noise unless it is
    well beyond ``t(0.975, dof)·√2·σ̂``.
    ``identical_answers_max`` is the largest share of workers giving one answer in a
    year; years at or above :data:`DEGENERATE_SHARE`
    are listed in ``degenerate_years`` (among at least :data:`MIN_ALIKE_ANSWERS`
    answering workers) unless the rational best responses to that year's
    schedule are nearly as alike (:func:`more_alike_than_rational`; LLM workers only:
    rational workers answer the rational best response).

    ``answerers``: the workers whose hours are the model's answers, when not all are
    (archetype mode: each archetype's representative; the members scale its answer by
    their usual hours, so their hours differ even when every answer is the same). The
    answer shares are then among them, and ``answers_by`` is how many answered."""
    rational = workers == "rational"
    out: dict[str, Any] = {
        "workers": workers,
        "references_assume": (
            "rational workers, as in this run" if rational else "rational workers, not this run's"
        ),
    }
    if rational or not records:
        return out
    first = records[0]
    if np.allclose(first.schedule.rates, ctx.status_quo().rates):
        out["status_quo_same_workers_swf"] = first.metrics.swf
        out["final_minus_status_quo_same_workers"] = records[-1].metrics.swf - first.metrics.swf
        # each side is one year's welfare, one draw of the workers' answers
        noise = welfare_noise(records)
        if noise is not None:
            out["year_noise_sd"], out["year_noise_dof"] = noise
    shares = [
        identical_answer_share(
            r.weekly_hours if answerers is None else np.asarray(r.weekly_hours)[answerers]
        )
        for r in records
    ]
    if answerers is not None:
        out["answers_by"] = len(answerers)
    out["identical_answers_max"] = max(shares)
    answering = len(answerers) if answerers is not None else len(first.weekly_hours)
    out["degenerate_years"] = [
        r.year
        for r, s in zip(records, shares, strict=True)
        if answering >= MIN_ALIKE_ANSWERS
        and s >= DEGENERATE_SHARE
        and more_alike_than_rational(ctx.economy, r, answerers)
    ]
    return out
