"""``scripted/reference``: the reference behaviour through the full LLM path."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmecon.agents.llm_workers import worker_schema
from llmecon.agents.scripted import parse_scripted_name
from llmecon.models import ChatMessage, ModelError, UnknownModelError, get_model
from llmecon.runs import RunConfig, build_config, build_simulation, read_events
from llmecon.runs.events import Blob, LLMCall, ScheduleSet, VoteRound, WorkerStep
from llmecon.runs.reference import reference_welfare
from llmecon.runs.replay import replay_run
from llmecon.voting.rules import project_candidates, rational_ballots

#: The first 100 personas of the v0.1 default bank: the hill climber's measurements
#: (docs/agents.md) are pinned on it, so a new shipped bank does not move them.
V01_BANK = str(Path(__file__).parent / "data" / "personas-v0.1-first100.jsonl")


def _config(tmp_path: Path, **kw: Any) -> RunConfig:
    base: dict[str, Any] = dict(agents=12, years=3, out=str(tmp_path), run_id="r", reference=False)
    base.update(kw)
    return build_config(overrides=base)


def _gap_closed(sim: Any, records: list[Any]) -> tuple[list[float], list[float]]:
    """Per year, the share of the status-quo→oracle gap closed: by the realised welfare,
    and by the enacted schedule at exact best responses."""
    ref = reference_welfare(sim.planner_context)
    sq, oracle = ref["status_quo_swf"], ref["oracle_swf"]
    realised = [(r.metrics.swf - sq) / (oracle - sq) for r in records]
    schedule = [(sim.economy.evaluate(r.schedule)[1].swf - sq) / (oracle - sq) for r in records]
    return realised, schedule


def test_model_names() -> None:
    assert parse_scripted_name("reference") == (0.0, False)
    assert parse_scripted_name("reference-noise2") == (2.0, False)
    assert parse_scripted_name("reference-noise0.5") == (0.5, False)
    with pytest.raises(UnknownModelError, match="reference-noise"):
        get_model("scripted/oracle")


def test_a_call_without_a_structured_request_is_a_clear_error() -> None:
    model = get_model("scripted/reference")
    messages = [ChatMessage(role="user", content="How many hours?")]
    with pytest.raises(ModelError, match="only answers llmecon's agent calls"):
        asyncio.run(model.generate(messages, worker_schema(80)))


def test_workers_answer_the_rounded_best_response(tmp_path: Path) -> None:
    cfg = _config(tmp_path, planner="flat:0.3", workers="scripted/reference", years=2)
    sim = build_simulation(cfg)
    sim.run()
    events = read_events(tmp_path / "r")
    steps = [e for e in events if isinstance(e, WorkerStep)]
    sets = [e for e in events if isinstance(e, ScheduleSet)]
    for step, schedule_set in zip(steps, sets, strict=True):
        schedule = sim.planner_context.schedule(schedule_set.rates)
        expected = np.clip(np.round(sim.economy.rational_hours(schedule)), 0, 80)
        np.testing.assert_array_equal(step.weekly_hours, expected)
    calls = [e for e in events if isinstance(e, LLMCall)]
    assert len(calls) == 24 and all(c.role == "worker" and not c.fallback for c in calls)
    assert all(c.templates.get("worker_system.j2") for c in calls)  # the prompts were sent


def test_noise_is_gaussian_in_hours_and_reproducible(tmp_path: Path) -> None:
    def hours(run_id: str) -> tuple[np.ndarray, np.ndarray]:
        cfg = _config(
            tmp_path,
            planner="us-federal",
            workers="scripted/reference-noise2",
            agents=200,
            years=2,
            run_id=run_id,
        )
        sim = build_simulation(cfg)
        result = sim.run()
        chosen = np.concatenate([r.weekly_hours for r in result.records])
        best = np.concatenate([sim.economy.rational_hours(r.schedule) for r in result.records])
        return chosen, best

    chosen, best = hours("a")
    again, _ = hours("b")
    np.testing.assert_array_equal(chosen, again)  # a pure function of the request
    noise = chosen - best
    assert abs(noise.mean()) < 0.4
    assert 1.6 < noise.std() < 2.4  # σ = 2 h, plus the rounding to whole hours


def test_planner_climbs_within_the_trust_region_without_noise(tmp_path: Path) -> None:
    name = "scripted/reference"
    cfg = _config(tmp_path, planner=name, workers=name, agents=100, years=20, personas=V01_BANK)
    sim = build_simulation(cfg)
    result = sim.run()
    assert result.fallbacks == 0
    events = read_events(tmp_path / "r")
    rates = np.array([e.rates for e in events if isinstance(e, ScheduleSet)])
    assert np.all(np.abs(np.diff(rates, axis=0)) <= 0.10 + 1e-9)
    planner_calls = [e for e in events if isinstance(e, LLMCall) and e.role == "planner"]
    assert len(planner_calls) == 19 and all(
        c.parsed and "rationale" in c.parsed for c in planner_calls
    )
    realised, schedule = _gap_closed(sim, result.records)
    # Measured: the realised welfare (whole-hour answers) reaches the oracle's; the
    # enacted schedule, evaluated at exact best responses, closes 83 % of the gap.
    assert realised[-1] >= 0.9
    assert schedule[-1] >= 0.75


def test_planner_with_noisy_workers_measured(tmp_path: Path) -> None:
    """The issue's target (100 workers, ±2 h, 20 years: ≥ 90 % of the gap) is not met
    by this hill climber; this pins what it reaches for one seed (docs/agents.md has the
    numbers over 12 seeds). Even the oracle's own schedule, with these workers, closes
    only ~81 % of the gap in realised welfare on average (the noise costs the rest).
    Told the horizon, the climber enacts its best schedule in the last year instead of
    one more trial."""
    name = "scripted/reference-noise2"
    cfg = _config(
        tmp_path, planner=name, workers=name, agents=100, years=20, seed=0, personas=V01_BANK
    )
    sim = build_simulation(cfg)
    result = sim.run()
    realised, schedule = _gap_closed(sim, result.records)
    assert result.fallbacks == 0
    assert schedule[-1] >= 0.75 and max(schedule) >= 0.8
    assert realised[-1] >= 0.5
    assert realised[0] < 0  # the noise costs welfare under the status quo too
    last = [round(100 * r) for r in result.records[-1].schedule.rates]
    earlier = [[round(100 * r) for r in rec.schedule.rates] for rec in result.records[:-1]]
    assert last in earlier  # the last year re-enacts a measured schedule
    events = read_events(tmp_path / "r")
    texts = {e.sha256: e.text for e in events if isinstance(e, Blob)}
    planner = [e for e in events if isinstance(e, LLMCall) and e.role == "planner"]
    assert "year 20 of 20, the last year" in texts[planner[-1].messages[-1].sha256]
    assert "year 19 of 20." in texts[planner[-2].messages[-1].sha256]
    assert planner[-1].parsed["rationale"] == "hill climb: the last year enacts the best schedule"


def test_the_target_is_met_at_a_thousand_noisy_workers(tmp_path: Path) -> None:
    """The issue's ≥ 90 % of the status-quo→oracle gap in 20 years with ±2 h workers,
    through the full LLM path, where the optimum is within a local learner's reach: the
    first 1 000 personas of the default bank (seeded; 4 seeds gave 0.896–0.963 by the
    year-20 schedule, docs/agents.md). At 100 workers the optimum has a far corner
    (``test_no_local_learner_reaches_the_target_on_the_default_bank``)."""
    name = "scripted/reference-noise2"
    cfg = _config(tmp_path, planner=name, workers=name, agents=1000, years=20, seed=0)
    sim = build_simulation(cfg)
    result = sim.run()
    assert result.fallbacks == 0
    realised, schedule = _gap_closed(sim, result.records)
    assert schedule[-1] >= 0.9
    assert realised[-1] >= 0.8  # the workers' noise costs the rest
    assert abs(schedule[0]) < 1e-9 and max(schedule[:3]) < 0.5  # learnt, not given


@pytest.mark.parametrize("planner", ["scripted/reference", "scripted/reference-surface"])
def test_voters_cast_their_rational_ballots_and_the_run_replays(
    tmp_path: Path, planner: str
) -> None:
    """Both reference planners propose the ballots' candidates."""
    cfg = _config(
        tmp_path,
        planner=planner,
        workers="scripted/reference",
        agents=16,
        years=5,
        vote_every=2,
        vote_rule="borda",
    )
    sim = build_simulation(cfg)
    sim.run()
    events = read_events(tmp_path / "r")
    rounds = [e for e in events if isinstance(e, VoteRound)]
    assert len(rounds) == 2
    for vote in rounds:
        labels = [c.label for c in vote.candidates]
        schedules = [sim.planner_context.schedule(c.rates) for c in vote.candidates]
        utilities = project_candidates(sim.economy, schedules).utilities
        expected = rational_ballots(utilities, labels, "borda")
        got = [tuple(b.ballot["ranking"]) for b in vote.ballots if b.ballot is not None]
        assert got == [b.ranking for b in expected]  # type: ignore[union-attr]
    proposer = [e for e in events if isinstance(e, LLMCall) and e.role == "proposer"]
    assert proposer and all(not c.fallback for c in proposer)
    report = replay_run(tmp_path / "r")
    assert report.ok, report.differences


def test_platforms_are_each_personas_favourite(tmp_path: Path) -> None:
    from llmecon.voting.rules import favourite_rates

    cfg = _config(
        tmp_path,
        planner="us-federal",
        workers="scripted/reference",
        agents=10,
        years=2,
        vote_every=1,
        vote_rule="plurality",
        candidate_source="platforms",
    )
    sim = build_simulation(cfg)
    sim.run()
    events = read_events(tmp_path / "r")
    calls = [e for e in events if isinstance(e, LLMCall) and e.role == "proposer"]
    assert calls and all(not c.fallback for c in calls)
    ids = list(sim.population.ids)
    incumbent = sim.planner_context.status_quo()
    for call in calls:
        assert call.agent is not None and call.parsed is not None
        best = favourite_rates(
            sim.economy, ids.index(call.agent), sim.planner_context.edges, incumbent.rates
        )
        assert call.parsed["rates"] == [round(100 * r) for r in best]


def test_the_default_banks_oracle_has_a_corner_rate_a_local_climber_cannot_see(
    tmp_path: Path,
) -> None:
    """Why the issue's target (≥ 90 % of the gap, 100 workers, 20 years) is not met on the
    default bank (docs/agents.md): about a seventh of the status-quo→oracle gap sits in
    bracket 5 ($197k–$251k, two workers), whose optimal rate is the bound (100 %: it
    taxes the income of the workers above at no cost to their hours). From the status
    quo's rate, 10-point raises first lower welfare and then gain a few hundredths of
    the gap a step, well inside one year's noise, so a climber that accepts only
    measured gains stops short of the corner."""
    cfg = _config(tmp_path, planner="us-federal", workers="rational", agents=100, years=1)
    sim = build_simulation(cfg)
    ctx = sim.planner_context
    ref = reference_welfare(ctx)
    sq, oracle = ref["status_quo_swf"], ref["oracle_swf"]
    rates = np.array(ref["oracle_rates"])
    assert rates[4] == pytest.approx(1.0)

    def closed(bracket_5: float) -> float:
        trial = rates.copy()
        trial[4] = bracket_5
        return float((sim.economy.evaluate(ctx.schedule(trial))[1].swf - sq) / (oracle - sq))

    status_quo_rate = ctx.status_quo().rates[4]
    assert closed(status_quo_rate) < 0.9  # every other rate optimal: still short
    assert closed(status_quo_rate + 0.1) < closed(status_quo_rate)  # the first raise loses
    steps = np.diff([closed(r) for r in np.arange(status_quo_rate, 1.0, 0.1)])
    assert np.all(np.abs(steps) < 0.05)  # no 10-point step gains 5 % of the gap


def test_no_local_learner_reaches_the_target_on_the_default_bank(tmp_path: Path) -> None:
    """The best a local learner can do there: a noise-free coordinate search from the
    status quo (moves of 10, 5 and 2 points in one bracket at a time, until none
    improves) and the same search from Saez's schedule both stop at a local optimum
    below 90 % of the gap, because bracket 5's optimum is the far corner."""
    from llmecon.planners.saez import solve_saez

    cfg = _config(tmp_path, planner="us-federal", workers="rational", agents=100, years=1)
    sim = build_simulation(cfg)
    ctx = sim.planner_context
    ref = reference_welfare(ctx)
    sq, oracle = ref["status_quo_swf"], ref["oracle_swf"]

    def closed(pct: list[int]) -> float:
        schedule = ctx.schedule(np.array(pct) / 100)
        return float((sim.economy.evaluate(schedule)[1].swf - sq) / (oracle - sq))

    def coordinate_search(start: list[int]) -> tuple[list[int], float]:
        best, value = list(start), closed(start)
        improved = True
        while improved:
            improved = False
            for b in range(len(best)):
                for delta in (10, -10, 5, -5, 2, -2):
                    trial = list(best)
                    trial[b] = int(np.clip(trial[b] + delta, 0, 100))
                    if (v := closed(trial)) > value + 1e-12:
                        best, value, improved = trial, v, True
        return best, value

    saez = [round(100 * r) for r in solve_saez(sim.economy, ctx.edges).rates]
    from_status_quo = coordinate_search([round(100 * r) for r in ctx.status_quo().rates])
    from_saez = coordinate_search(saez)
    # Measured: 0.85 (Saez), 0.88 and 0.88 (the local optima), bracket 5 near 32 %.
    assert closed(saez) < 0.9
    for rates, value in (from_status_quo, from_saez):
        assert 0.8 < value < 0.9
        assert rates[4] < 50  # bracket 5 stays far from its optimal 100 %
    assert closed([*from_status_quo[0][:4], 100, *from_status_quo[0][5:]]) > 0.9
