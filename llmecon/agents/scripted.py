"""``scripted/reference``: a scripted reference behaviour behind the model interface.

A **test model**, never a default: it answers every agent call of a run the way a
competent, self-interested agent would, and goes through the full LLM path (templates
→ model → JSON parsing and validation → trust region → run log), so a run with it
shows what the pipeline delivers when the model behaves, and ``llmecon probe`` has a
known answer to recover.

How it knows the persona and the schedule: agents put the structured request behind
each prompt into the call context (:attr:`llmecon.agents.calls.CallContext.request`:
worker index and economy, schedule, shown rebate; the planner's history; the ballot's
candidates). The provider reads it with :func:`~llmecon.agents.calls.current_call`
instead of parsing the rendered prompt; the prompt is still rendered, sent and logged.
A call without a structured request (``llmecon models test``) fails with a clear error.

Model names:

* ``scripted/reference`` — workers answer the exact rational best response of their
  persona (given the schedule and the rebate the prompt states; rounded to whole hours,
  the schema's unit); the planner hill-climbs from its demonstrations (below); voters
  cast the ballot their own utility at the best response dictates
  (:func:`~llmecon.voting.rules.rational_ballots`); a persona's platform is its own
  favourite schedule (:func:`~llmecon.voting.rules.favourite_rates`).
* ``scripted/reference-noise<σ>`` (``reference-noise2``, ``reference-noise0.5``) — the
  same, plus Gaussian noise of standard deviation σ hours on every worker's hours
  (then rounded and clipped to ``[0, max_weekly_hours]``). The noise is a pure function
  of the request (its messages and ``config.seed``), like a model at temperature 0 with
  a fixed seed: the same prompt gets the same answer, so runs are reproducible and a
  resumed run continues exactly.
* a ``-surface`` suffix (``scripted/reference-surface``,
  ``scripted/reference-noise2-surface``): the planner and proposers use the
  response-surface search of :mod:`llmecon.agents.scripted_surface` instead of the
  compass search below (workers and voters are unchanged).

The planner (stateless: everything comes from what its prompt shows) is a compass
search that copes with noisy welfare. The incumbent is the shown schedule with the
highest lower confidence bound ``mean SWF − 2σ̂/√n`` over the years it was enacted (σ̂:
half the interval the demonstrations show, the spread of repeated schedules' SWF over
every year of the run, :func:`~llmecon.agents.planner_prompts.welfare_noise_sd`; 0 before any
repeat). A new incumbent seen only once is enacted again to confirm it when its lead
over the best other schedule is within ``LCB_Z`` standard errors of the difference, or
while the noise is unknown (no repeat yet): a gain within the noise is not taken as an
improvement, and a clear one costs no confirmation year. With ``planner_uncertainty``
off no interval is shown and σ̂ is 0 throughout: every measured difference is taken at
face value and nothing is confirmed (the ablation). Otherwise, in this order:

1. In the run's last year (when the prompt states the horizon) it enacts the incumbent.
2. Every bracket whose pooled effect (the welfare change per point from each pair of
   shown schedules differing in that bracket alone, near the incumbent's rate:
   ``EVIDENCE_REACH`` trust regions) exceeds ``EVIDENCE_Z`` standard errors moves by the
   trust region in its favoured direction, all at once when two or more do (the
   welfare is close to additive over brackets, so the gains add).
3. It repeats the single-bracket move that found the incumbent.
4. It tries the incumbent ± a step in one bracket, least recently moved brackets first,
   steps of the trust region, half and a fifth of it, skipping schedules already shown
   and flat brackets (whose largest shown effect per point is under ``FLAT_SHARE`` of
   the largest any bracket showed).

Proposals for a ballot are the first K such schedules.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmecon.agents.calls import (
    AgentAsk,
    BallotAsk,
    CandidatesAsk,
    PlannerAsk,
    PlatformAsk,
    SatisfactionAsk,
    WorkerAsk,
    current_call,
)
from llmecon.agents.planner_prompts import (
    pct_list,
    reach_pct,
    shown_swf,
    shown_years,
    welfare_decimals,
    welfare_noise_sd,
)
from llmecon.agents.scripted_surface import surface_climb
from llmecon.economy import best_response_hours
from llmecon.economy.utility import WEEKS_PER_YEAR
from llmecon.models import (
    ChatMessage,
    GenerateConfig,
    ModelProvider,
    ProviderError,
    ProviderResponse,
    StructuredSpec,
    UnknownModelError,
    Usage,
)
from llmecon.planners import YearRecord
from llmecon.voting.rules import (
    ballot_to_json,
    favourite_rates,
    project_candidates,
    rational_ballots,
)

_NAME = re.compile(r"reference(?:-noise(\d+(?:\.\d+)?))?(-surface)?")
#: The planner's incumbent maximises mean SWF − LCB_Z · σ̂ / √(years enacted).
LCB_Z = 2.0
#: Welfare differences below this (relative) count as "no change" (a flat bracket).
_FLAT_TOLERANCE = 1e-9
#: A bracket whose largest shown single-bracket effect per rate point is at most this
#: share of the largest any bracket showed is treated as flat (not worth a year).
FLAT_SHARE = 0.1
#: A bracket's pooled effect favours a move when it exceeds this many standard errors.
EVIDENCE_Z = 1.0
#: Evidence about a bracket counts when both its rates lie within this many trust
#: regions of the incumbent's (the welfare is not linear in a rate over long stretches).
EVIDENCE_REACH = 2


def parse_scripted_name(model_name: str) -> tuple[float, bool]:
    """The hours noise σ of a scripted model name (``reference``: 0), and whether its
    planner is the response-surface search (a ``-surface`` suffix)."""
    match = _NAME.fullmatch(model_name.strip())
    if match is None:
        raise UnknownModelError(
            f"unknown scripted model {model_name!r}: use scripted/reference or "
            "scripted/reference-noise<hours>, e.g. scripted/reference-noise2, with an "
            "optional -surface suffix for the response-surface planner"
        )
    return float(match.group(1) or 0.0), match.group(2) is not None


class ScriptedProvider(ModelProvider):
    """The reference behaviour of the module docstring, as a model provider."""

    provider_name = "scripted"
    in_process = True
    supports_native_schema = True
    default_max_concurrency = 10_000

    def __init__(self, model_name: str = "reference", api_base: str | None = None) -> None:
        super().__init__(model_name, api_base)
        self.noise_hours, self.surface = parse_scripted_name(model_name)
        self._projection: tuple[object, Any] | None = None

    @property
    def prices_known(self) -> bool:
        return True

    async def generate(
        self, messages: list[ChatMessage], spec: StructuredSpec | None, config: GenerateConfig
    ) -> ProviderResponse:
        call = current_call()
        request = call.request if call is not None else None
        if request is None:
            raise ProviderError(
                f"scripted/{self.model_name} only answers llmecon's agent calls (workers, "
                "planner, voters, proposers), which carry the economy it reads; this call "
                f"does not: try it with `llmecon probe scripted/{self.model_name}` or in a run"
            )
        answer = self.answer(request, messages, config.seed)
        text = json.dumps(answer, separators=(",", ":"))
        chars_in = sum(len(m.content) for m in messages)
        usage = Usage(input_tokens=chars_in // 4 + 1, output_tokens=len(text) // 4 + 1)
        return ProviderResponse(text=text, usage=usage, cost_usd=0.0)

    def answer(
        self, request: AgentAsk, messages: Sequence[ChatMessage], seed: int | None
    ) -> dict[str, Any]:
        """The reply (as a JSON-ready dict) to one structured request."""
        if isinstance(request, WorkerAsk):
            hours = reference_hours(request)
            if self.noise_hours > 0:
                rng = np.random.default_rng(_request_seed(messages, seed))
                hours += float(rng.normal(0.0, self.noise_hours))
            cap = request.economy.utility_config.max_weekly_hours
            return {"hours": int(np.clip(round(hours), 0, int(cap)))}
        if isinstance(request, PlannerAsk):
            proposals = self._propose(request)
            moves = request.settings.moves
            if moves:  # LLM Economist's delta answers: the move from the current grid point
                base = moves.snap(pct_list(request.history[-1].schedule.rates))
                move = np.clip(
                    moves.snap(np.array(proposals[0].rates) - base), -moves.max_pct, moves.max_pct
                )
                return {"deltas": [int(d) for d in move], "rationale": proposals[0].why}
            return {"rates": proposals[0].rates, "rationale": proposals[0].why}
        if isinstance(request, CandidatesAsk):
            return {"candidates": [p.rates for p in self._propose(request, request.k)]}
        if isinstance(request, BallotAsk):
            return self._ballot(request)
        if isinstance(request, SatisfactionAsk):
            return {"satisfied": satisfied_reference(request)}
        return {"rates": platform_rates(request)}

    def _propose(self, ask: PlannerAsk | CandidatesAsk, count: int = 1) -> list[Proposal]:
        if self.surface:
            return [Proposal(rates, why) for rates, why in surface_climb(ask, count)]
        return climb(ask, count)

    def _ballot(self, ask: BallotAsk) -> dict[str, Any]:
        # Every voter of a round shares one candidate list: project it once.
        if self._projection is None or self._projection[0] is not ask.candidates:
            schedules = [schedule for _, schedule in ask.candidates]
            self._projection = (ask.candidates, project_candidates(ask.economy, schedules))
        utilities = self._projection[1].utilities[:, [ask.index]]
        labels = [label for label, _ in ask.candidates]
        return ballot_to_json(rational_ballots(utilities, labels, ask.rule)[0], ask.rule)


def _request_seed(messages: Sequence[ChatMessage], seed: int | None) -> int:
    payload = json.dumps([[m.role, m.content] for m in messages] + [seed])
    return int.from_bytes(hashlib.sha256(payload.encode()).digest()[:8], "big")


def satisfied_reference(ask: SatisfactionAsk) -> bool:
    """The reference answer to "are you satisfied with the tax policy": yes when the
    rebate at least makes up for the worker's own tax this step."""
    economy = ask.economy
    wage = float(economy.population.hourly_wage_usd[ask.index])
    income = WEEKS_PER_YEAR * wage * ask.weekly_hours
    tax = float(ask.schedule.tax(np.array([income]))[0])
    return ask.rebate_usd >= tax


def reference_hours(ask: WorkerAsk) -> float:
    """The exact rational best response of worker ``ask.index`` (continuous hours)."""
    economy, i = ask.economy, ask.index
    hours = best_response_hours(
        economy.population.hourly_wage_usd[i : i + 1],
        economy.psi[i : i + 1],
        ask.schedule.edges,
        ask.schedule.rates,
        economy.utility_config,
        ask.last_rebate_usd,
    )
    return float(hours[0])


def platform_rates(ask: PlatformAsk) -> list[int]:
    """The persona's own favourite schedule (whole percents within the bounds)."""
    ctx = ask.ctx
    rates = favourite_rates(
        ctx.economy,
        ask.index,
        ctx.edges,
        ask.schedule.rates,
        ctx.min_rate,
        ctx.max_rate,
    )
    lo, hi = round(100 * ctx.min_rate), round(100 * ctx.max_rate)
    return [int(np.clip(r, lo, hi)) for r in pct_list(rates.tolist())]


@dataclass(frozen=True)
class Proposal:
    """A proposed schedule (whole percents) and why."""

    rates: list[int]
    why: str


@dataclass(frozen=True)
class _Shown:
    """The shown years, grouped by schedule."""

    swf: dict[tuple[int, ...], list[float]]
    first_year: dict[tuple[int, ...], int]
    by_year: dict[int, tuple[int, ...]]
    sigma: float | None

    @classmethod
    def of(
        cls,
        years: Sequence[YearRecord],
        every_year: Sequence[YearRecord],
        uncertainty: bool,
        decimals: int = 1,
    ) -> _Shown:
        """``years``: the shown ones. ``uncertainty``: the prompt shows the noise interval
        (σ̂ from repeated schedules over ``every_year`` of the run, shown or not, as the
        demonstrations compute it: :func:`~llmecon.agents.planner_prompts.welfare_noise_sd`);
        without it the planner takes every measured difference at face value (σ̂ = 0).
        ``decimals``: the welfare's, as the prompt shows it
        (:func:`~llmecon.agents.planner_prompts.welfare_decimals`)."""
        swf: dict[tuple[int, ...], list[float]] = {}
        first: dict[tuple[int, ...], int] = {}
        by_year: dict[int, tuple[int, ...]] = {}
        for rec in years:
            key = tuple(pct_list(rec.schedule.rates))
            swf.setdefault(key, []).append(shown_swf(rec, decimals))
            first.setdefault(key, rec.year)
            by_year[rec.year] = key
        sigma = welfare_noise_sd(every_year, decimals) if uncertainty else 0.0
        return cls(swf, first, by_year, sigma)

    def score(self, key: tuple[int, ...]) -> float:
        values = self.swf[key]
        return float(np.mean(values)) - LCB_Z * (self.sigma or 0.0) / np.sqrt(len(values))

    def incumbent(self) -> tuple[int, ...]:
        """The best lower confidence bound; ties go to the schedule enacted first (a
        newcomer must do strictly better)."""
        return max(self.swf, key=lambda k: (self.score(k), -self.first_year[k]))

    def lead_within_noise(self, key: tuple[int, ...]) -> bool:
        """Whether ``key``'s lead over the best other schedule could be noise: true while
        the noise is unknown, false when repeats showed none, else whether the lead is
        under ``LCB_Z`` standard errors of the difference."""
        if self.sigma is None:
            return True
        if self.sigma == 0:
            return False
        others = [k for k in self.swf if k != key]
        rival = max(others, key=lambda k: float(np.mean(self.swf[k])))
        n_key, n_rival = len(self.swf[key]), len(self.swf[rival])
        lead = float(np.mean(self.swf[key]) - np.mean(self.swf[rival]))
        return lead < LCB_Z * self.sigma * float(np.sqrt(1 / n_key + 1 / n_rival))

    def single_bracket_pairs(self) -> Iterator[tuple[int, tuple[int, ...], tuple[int, ...]]]:
        """``(k, a, b)`` for every pair of shown schedules that differ in bracket ``k``
        alone."""
        for a, b in itertools.combinations(self.swf, 2):
            moved = np.flatnonzero(np.array(a) != np.array(b))
            if moved.size == 1:
                yield int(moved[0]), a, b

    def evidence(self, around: tuple[int, ...], reach: int) -> dict[int, tuple[float, float]]:
        """Per bracket, the pooled welfare change per rate point from every pair of shown
        schedules that differ in that bracket alone (the welfare is close to additive
        over brackets, so evidence gathered around an earlier best still speaks for the
        bracket), with its standard error (∞ while the noise is unknown)."""
        samples: dict[int, list[tuple[float, float]]] = {}
        for k, a, b in self.single_bracket_pairs():
            if max(abs(a[k] - around[k]), abs(b[k] - around[k])) > reach:
                continue  # evidence about another stretch of this rate
            delta = a[k] - b[k]
            slope = float(np.mean(self.swf[a]) - np.mean(self.swf[b])) / delta
            spread = np.sqrt(1 / len(self.swf[a]) + 1 / len(self.swf[b])) / abs(delta)
            samples.setdefault(k, []).append((slope, spread))
        out: dict[int, tuple[float, float]] = {}
        for k, pairs in samples.items():
            slopes = np.array([p[0] for p in pairs])
            weights = 1 / np.array([p[1] for p in pairs]) ** 2
            mean = float(slopes @ weights / weights.sum())
            se = (self.sigma / np.sqrt(weights.sum())) if self.sigma is not None else np.inf
            out[k] = (mean, float(se))
        return out

    def last_moved(self, n: int) -> list[int]:
        """Per bracket, the last shown year whose change from the year before moved it
        (−1 if none)."""
        last = [-1] * n
        years = sorted(self.by_year)
        for y0, y1 in itertools.pairwise(years):
            if y1 != y0 + 1:
                continue
            for k in np.flatnonzero(np.array(self.by_year[y1]) != np.array(self.by_year[y0])):
                last[int(k)] = y1
        return last

    def flat_brackets(self) -> set[int]:
        """Brackets whose rate barely matters: every single-bracket change shown moved the
        mean SWF by at most ``FLAT_SHARE`` of the largest per-point effect any bracket
        showed (or not at all)."""
        effect: dict[int, float] = {}
        for k, a, b in self.single_bracket_pairs():
            per_point = abs(float(np.mean(self.swf[a]) - np.mean(self.swf[b]))) / abs(a[k] - b[k])
            effect[k] = max(effect.get(k, 0.0), per_point)
        if not effect:
            return set()
        largest = max(effect.values())
        scale = max(1.0, abs(float(np.mean(next(iter(self.swf.values()))))))
        return {
            k for k, e in effect.items() if e <= max(FLAT_SHARE * largest, _FLAT_TOLERANCE * scale)
        }


def climb(ask: PlannerAsk | CandidatesAsk, count: int = 1) -> list[Proposal]:
    """``count`` distinct proposals, best first (see the module docstring)."""
    ctx, settings = ask.ctx, ask.settings
    years = shown_years(ask.history, settings)
    decimals = welfare_decimals(ask.history, settings)
    shown = _Shown.of(years, ask.history, settings.uncertainty, decimals)
    lo_pct, hi_pct = round(100 * ctx.min_rate), round(100 * ctx.max_rate)
    reach = reach_pct(ask.history[-1].schedule.rates, settings, lo_pct, hi_pct)
    current, trust = reach.current, reach.trust
    moves = settings.moves
    if moves:  # grid moves: steps are multiples of the grid step, up to its max
        steps = list(range(trust, 0, -moves.step_pct))
    else:
        steps = sorted({trust, max(1, trust // 2), max(1, trust // 5)}, reverse=True)
    low, high = np.array(reach.lowest), np.array(reach.highest)
    inc = shown.incumbent()
    out: list[Proposal] = []

    def add(rates: np.ndarray, why: str, allow_shown: bool = False) -> None:
        key = tuple(int(r) for r in rates)
        fits = bool(np.all(rates >= low) and np.all(rates <= high))
        new = allow_shown or key not in shown.swf
        # a ballot already holds the current schedule: its proposals must differ from it
        ballot_dup = isinstance(ask, CandidatesAsk) and list(key) == current
        if fits and new and not ballot_dup and all(tuple(p.rates) != key for p in out):
            out.append(Proposal(list(key), why))

    base = moves.snap(inc).astype(int) if moves else np.array(inc)
    if settings.horizon is not None and ask.history[-1].year + 2 >= settings.horizon:
        add(base, "hill climb: the last year enacts the best schedule", allow_shown=True)
    if len(shown.swf[inc]) == 1 and len(shown.swf) > 1 and shown.lead_within_noise(inc):
        add(base, "hill climb: enact the best schedule again to confirm it", allow_shown=True)
    flat = shown.flat_brackets()
    n = base.size
    evidence = shown.evidence(tuple(int(v) for v in base), EVIDENCE_REACH * trust)
    favoured = np.zeros(n, dtype=int)
    for b, (slope, se) in evidence.items():
        if b not in flat and abs(slope) > EVIDENCE_Z * se:
            favoured[b] = int(np.sign(slope))
    if np.count_nonzero(favoured) > 1:  # one bracket: the single-bracket moves below
        names = ", ".join(f"{s * trust:+d} in bracket {b + 1}" for b, s in enumerate(favoured) if s)
        add(base + trust * favoured, f"hill climb: every move the evidence favours ({names})")
    before = shown.by_year.get(shown.first_year[inc] - 1)
    if before is not None:
        move = base - np.array(before)
        if np.count_nonzero(move) == 1 and int(np.flatnonzero(move)[0]) not in flat:
            b = int(np.flatnonzero(move)[0])
            add(base + move, f"hill climb: repeat the move in bracket {b + 1}")
    last_moved = shown.last_moved(n)
    order = sorted(range(n), key=lambda b: (last_moved[b], b))  # least recently moved first
    for step in steps:
        for b in order:
            if b in flat:
                continue
            for sign in (1, -1):
                trial = base.copy()
                trial[b] = np.clip(trial[b] + sign * step, lo_pct, hi_pct)
                add(trial, f"hill climb: {sign * step:+d} points in bracket {b + 1}")
    add(np.clip(base, low, high), "hill climb: keep the best schedule", allow_shown=True)
    small = range(moves.step_pct, trust + 1, moves.step_pct) if moves else range(1, trust + 1)
    for delta in small:  # more ballot proposals than untried neighbours
        for b in range(n):
            for sign in (1, -1):
                if len(out) >= count:
                    return out[:count]
                trial = np.array(current)
                trial[b] += sign * delta
                add(trial, "hill climb: a small variation", allow_shown=True)
    return out[:count]
