"""``scripted/reference-surface``: the response-surface reference planner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmecon.agents.calls import CandidatesAsk, PlannerAsk
from llmecon.agents.planner_prompts import PlannerPromptSettings
from llmecon.agents.scripted import parse_scripted_name
from llmecon.agents.scripted_surface import (
    EXPLOIT_YEARS,
    EXPLORE_POINTS,
    INCOME_DOUBT,
    Breakdown,
    best_responses,
    breakdown,
    fit_surface,
    income_points,
    joint_welfare,
    model_best,
    representative_workers,
    structural_curves,
    surface_best,
    surface_best_with_curves,
    surface_climb,
)
from llmecon.economy import TaxSchedule
from llmecon.personas import sample_personas, write_bank
from llmecon.planners import YearRecord
from llmecon.runs import build_simulation, read_events
from llmecon.runs.events import LLMCall
from tests.agents.test_scripted import V01_BANK, _config, _gap_closed


def test_the_suffix_selects_the_surface_planner() -> None:
    assert parse_scripted_name("reference-surface") == (0.0, True)
    assert parse_scripted_name("reference-noise2-surface") == (2.0, True)
    assert parse_scripted_name("reference-noise2") == (2.0, False)


def test_the_fit_recovers_an_additive_quadratic_and_its_best() -> None:
    """Noise-free welfare from a known additive quadratic: the fitted best is its vertex
    (or the bound where the curve rises), within a point."""
    rng = np.random.default_rng(3)
    rates = rng.integers(0, 60, size=(30, 3)).astype(float)
    peak = np.array([20.0, 35.0, 90.0])  # bracket 3's peak lies beyond the bound 60
    swf = 1000 - np.sum(0.5 * (rates - peak) ** 2, axis=1)
    coef, center = fit_surface(rates, swf, noise_sd=0.01)
    best = surface_best(coef, center, np.zeros(3), np.full(3, 60.0))
    assert np.abs(best - [20, 35, 60]).max() <= 1


def test_an_interaction_of_neighbouring_brackets_is_fitted_and_moves_the_best() -> None:
    """Two brackets whose rates pay only one at a time (a worker above both drops below
    the first when both are high): ``SWF = 100 x₁ + 100 x₂ − 150 x₁ x₂``. Each rate's
    effect averaged over the other's is positive, so the additive fit raises both
    (welfare 50); with the interaction term the fit finds it and the best is a corner
    with one rate high and the other low (welfare 100)."""
    rng = np.random.default_rng(5)
    rates = rng.integers(0, 101, size=(40, 2)).astype(float)
    x = rates / 100
    swf = 100 * x[:, 0] + 100 * x[:, 1] - 150 * x[:, 0] * x[:, 1]
    grid = np.arange(0.0, 101.0)
    flat = np.zeros((2, grid.size))

    coef, center = fit_surface(rates, swf, noise_sd=0.01, interactions=True)
    assert coef[5] == pytest.approx(-1.5, abs=0.05)  # per (10 points)², after a, b, q
    best = surface_best_with_curves(coef, center, flat, grid, rates, interactions=True)
    assert sorted(best.tolist()) == [0, 100]

    additive, center = fit_surface(rates, swf, noise_sd=0.01)
    assert min(surface_best_with_curves(additive, center, flat, grid, rates)) >= 90


def test_the_curves_see_a_corner_where_no_one_works_and_an_interior_top_rate() -> None:
    """Saez's reasoning from a breakdown: a bracket nobody earns in taxes only the slice
    of everyone above it (a transfer to the low earners, rebated): its welfare rises to
    the bound, the far corner a local climber cannot see. The top bracket's own workers
    respond (ε = 0.4): its rate has an interior best."""
    view = Breakdown(
        edges=np.array([0.0, 20e3, 50e3]),
        rates=np.array([0.1, 0.3, 0.3]),
        counts=np.array([50.0, 0.0, 50.0]),
        means=np.array([12e3, 0.0, 100e3]),
    )
    grid = np.arange(0.0, 101.0)
    curves = structural_curves([view], 1.0, grid)
    assert curves.shape == (3, 101)
    assert np.all(np.diff(curves[1]) > 0) and int(np.argmax(curves[1])) == 100
    assert 30 < int(np.argmax(curves[2])) < 70 and curves[2][100] < curves[2][30]
    assert curves[1][30] == pytest.approx(0.0) and curves[2][30] == pytest.approx(0.0)


def test_workers_spread_over_incomes_give_up_a_slice_one_by_one() -> None:
    """A few top earners far apart (the quartiles the prompt shows): those just above a
    slice give it up at a lower rate than their mean would, and the rest keep paying,
    so the slice's best rate is lower and its far corner costs less than the cliff of
    all of them dropping at once. Only the top two brackets' spread is used."""
    view = Breakdown(
        edges=np.array([0.0, 20e3, 50e3, 100e3]),
        rates=np.array([0.1, 0.2, 0.3, 0.3]),
        counts=np.array([50.0, 30.0, 0.0, 5.0]),
        means=np.array([12e3, 30e3, 0.0, 130e3]),
    )
    grid = np.arange(0.0, 101.0)
    at_mean = structural_curves([view], 1.0, grid)
    spread = structural_curves([view], 1.0, grid, log_sd=np.array([0, 0, 0, 0.5]))
    first_drop = [int(np.flatnonzero(np.diff(c[2]) < 0)[0]) for c in (at_mean, spread)]
    assert first_drop[1] < first_drop[0] - 10
    assert int(np.argmax(spread[2])) < int(np.argmax(at_mean[2])) - 10
    assert at_mean[2][100] < spread[2][100] < 0
    outside = structural_curves([view], 1.0, grid, log_sd=np.array([0, 0.5, 0, 0]))
    assert np.array_equal(outside, at_mean)


#: The schedules of a default-bank run (100 workers, ±2 h, seed 83) in years 1–19. In
#: year 17 bracket 5 stood at 100 % with bracket 6 at 58 %, and the worker above both
#: dropped to bracket 5's edge; years 18–19 kept bracket 6 at 56 %.
_KNIFE_EDGE_YEARS = [
    [10, 12, 22, 24, 32, 35, 37],
    [15, 22, 32, 34, 42, 45, 27],
    [25, 26, 37, 44, 52, 36, 24],
    [16, 23, 47, 51, 62, 39, 34],
    [26, 33, 55, 41, 72, 32, 24],
    [17, 39, 45, 33, 82, 33, 31],
    [27, 29, 38, 33, 81, 41, 30],
    [17, 31, 48, 33, 90, 48, 20],
    [18, 41, 56, 43, 100, 54, 19],
    [8, 51, 46, 47, 90, 61, 29],
    [18, 41, 39, 50, 100, 51, 26],
    [18, 31, 49, 51, 90, 57, 36],
    [14, 39, 51, 41, 94, 47, 26],
    [11, 31, 41, 39, 100, 41, 36],
    [21, 29, 37, 36, 95, 49, 46],
    [31, 30, 47, 32, 96, 54, 36],
    [24, 39, 48, 42, 100, 58, 41],
    [14, 35, 44, 38, 98, 56, 40],
    [11, 35, 44, 38, 100, 56, 36],
]


def test_a_year_whose_welfare_collapsed_does_not_vouch_for_its_rates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last year of that run, its years settled at exact best responses: year 17's
    welfare fell a gap's half below the others'. The model still rated bracket 6 at
    58 % best, and year 17 had tried it beside bracket 5 at 100 %, so the pair guard
    let it through and the last year collapsed (0.35 of the gap). A year whose welfare
    fell more than :data:`SURPRISE_SD` noise σ̂ below the model's fit no longer counts
    as having tried its rates."""
    sim = build_simulation(_config(tmp_path, agents=100, years=20, personas="default", seed=83))
    ctx = sim.planner_context
    history = []
    for year, rates in enumerate(_KNIFE_EDGE_YEARS):
        schedule = ctx.schedule(np.array(rates) / 100)
        outcome, metrics = ctx.economy.evaluate(schedule)
        history.append(
            YearRecord(year, schedule, metrics, outcome.weekly_hours, outcome.income_usd)
        )
    collapsed = history[16].metrics.swf
    assert collapsed < min(r.metrics.swf for r in history[11:] if r is not history[16]) - 500

    def enacted_welfare() -> float:
        best = model_best(PlannerAsk(ctx, history, PlannerPromptSettings(horizon=20)))
        return ctx.economy.evaluate(ctx.schedule(best / 100))[1].swf

    assert enacted_welfare() > collapsed + 500
    monkeypatch.setattr("llmecon.agents.scripted_surface.SURPRISE_SD", np.inf)
    assert enacted_welfare() < collapsed + 100


def test_a_representative_workers_best_response_is_found_by_a_search_over_incomes() -> None:
    """Each representative worker's utility and tax under a schedule (falling rates too,
    whose budget set is not convex) match a search over incomes $10 apart; under the
    shown schedule its best income is the bracket's mean it stands for."""
    view = Breakdown(
        edges=np.array([0.0, 20e3, 50e3, 100e3]),
        rates=np.array([0.1, 0.2, 0.3, 0.4]),
        counts=np.array([50.0, 30.0, 10.0, 5.0]),
        means=np.array([12e3, 30e3, 70e3, 130e3]),
    )
    workers = representative_workers(view)
    assert workers.share.sum() == pytest.approx(1.0) and workers.effort.size == 4
    z = np.arange(10.0, 400e3, 10.0)
    e = 0.4
    for rates in (view.rates, np.array([0.5, 0.1, 0.6, 0.2]), np.array([0.0, 0.9, 0.9, 0.3])):
        utility, tax = best_responses(workers.effort, rates[None, :], view.edges, e)
        schedule = TaxSchedule(tuple(view.edges), tuple(rates))
        searched = z[:, None] - schedule.tax(z)[:, None]
        searched = searched - workers.effort * z[:, None] ** (1 + 1 / e) / (1 + 1 / e)
        assert utility[0] == pytest.approx(searched.max(axis=0), rel=1e-6)
        at = z[np.argmax(searched, axis=0)]
        assert tax[0] == pytest.approx(schedule.tax(at), abs=0.5 * 10)
        if rates is view.rates:
            assert at == pytest.approx(view.means, abs=10)


def test_the_joint_model_sees_two_high_rates_that_pay_only_one_at_a_time() -> None:
    """Two brackets no one earns in, one worker above both. Moved alone each rate's
    welfare is the structural curve's (or more, where the worker who gives up a slice
    does better than at the slice's lower edge, which the curves assume); at both
    curves' best rates together the worker drops below both slices, which the curves
    (summed) cannot see and the joint model does. The joint model's own best sits just
    below that edge, where the worker's income 10 % lower (:data:`INCOME_DOUBT`) already
    drops: the doubt keeps it off."""
    view = Breakdown(
        edges=np.array([0.0, 20e3, 50e3, 100e3]),
        rates=np.array([0.1, 0.3, 0.3, 0.3]),
        counts=np.array([99.0, 0.0, 0.0, 1.0]),
        means=np.array([12e3, 0.0, 0.0, 130e3]),
    )
    grid = np.arange(0.0, 101.0)
    curves = structural_curves([view], 1.0, grid)
    workers = [representative_workers(view)]
    for b in (1, 2):
        alone = np.tile([10.0, 30.0, 30.0, 30.0], (grid.size, 1))
        alone[:, b] = grid
        joint = joint_welfare(workers, 1.0, alone)
        assert joint[:91] == pytest.approx(curves[b][:91], abs=1.0)
        assert np.all(joint >= curves[b] - 1.0)
    first, second = int(np.argmax(curves[1])), int(np.argmax(curves[2]))
    both = np.array([[10.0, first, second, 30.0]])
    assert curves[1][first] + curves[2][second] > 400
    assert joint_welfare(workers, 1.0, both)[0] < -300
    pairs = np.array([[10.0, a, b, 30.0] for a in grid for b in grid])
    joint = joint_welfare(workers, 1.0, pairs)
    best = pairs[int(np.argmax(joint))]
    assert joint.max() > 400 and best[1] + best[2] < first + second
    lower = [representative_workers(view, income_scale=1 - INCOME_DOUBT)]
    assert joint_welfare(lower, 1.0, best[None, :])[0] < 0


def test_the_incomes_standing_for_a_bracket_stay_inside_it() -> None:
    assert income_points(130e3, 100e3, np.inf, 0.0)[0].tolist() == [130e3]
    for mean, low, high in ((130e3, 100e3, np.inf), (60e3, 50e3, 100e3), (75e3, 50e3, 100e3)):
        points, shares = income_points(mean, low, high, 0.5)
        assert points.size == shares.size > 1 and shares.sum() == pytest.approx(1.0)
        assert np.all(points > low) and np.all(points < high) and np.ptp(points) > 0.2 * mean
        assert points.mean() == pytest.approx(mean, rel=0.05)
    points = income_points(75e3, 50e3, 100e3, 0.1)[0]  # nothing cut: the mean is kept
    assert points.mean() == pytest.approx(75e3)


def test_a_population_whose_top_brackets_hold_a_few_workers_far_apart(tmp_path: Path) -> None:
    """A stratified 100-persona sample (``llmecon personas sample --n 100 --seed 13``,
    at least five personas a bracket): its top brackets hold five personas each, worth
    about one worker together, at incomes far apart. Seeing only their mean the
    structural curves priced the fifth bracket's high corner too cheaply and this run
    closed 0.76 of the gap; with the spread of incomes the prompt shows, 0.98."""
    drawn = sample_personas(100, np.random.default_rng(13), min_per_bracket=5)
    bank = write_bank(tmp_path / "population-13.jsonl", drawn.to_personas())
    gap = _final_gap(tmp_path, "scripted/reference-noise2-surface", 1, 8, str(bank))
    assert gap >= 0.9


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Six years of the surface planner with noisy workers (30 workers)."""
    cfg = _config(
        tmp_path_factory.mktemp("runs"),
        agents=30,
        years=6,
        planner="scripted/reference-noise2-surface",
        workers="scripted/reference-noise2",
        seed=1,
    )
    sim = build_simulation(cfg)
    return sim, sim.run()


def _ask(sim: Any, history: list[Any], horizon: int, **kw: Any) -> PlannerAsk:
    settings = PlannerPromptSettings(history_len=20, horizon=horizon, **kw)
    return PlannerAsk(sim.planner_context, history, settings)


def test_it_explores_around_the_models_best_then_enacts_it(run: Any) -> None:
    sim, result = run
    history = result.records[:4]  # the next year is year 4
    best = model_best(_ask(sim, history, horizon=400))
    n = best.size
    current = np.array([round(100 * r) for r in history[-1].schedule.rates])

    low, high = np.maximum(current - 10, 0), np.minimum(current + 10, 100)  # trust region
    (early, why), *_ = surface_climb(_ask(sim, history, horizon=400))
    assert why.startswith("response surface: explore ±10 points")
    # year 4's column of the 8×8 Sylvester Hadamard matrix, rows 1..7
    signs = np.array([1, 1, 1, -1, -1, -1, -1])[:n]
    width = EXPLORE_POINTS * np.sqrt(396 / 400)
    assert early == [int(v) for v in np.clip(np.round(best + width * signs), low, high)]

    last = _ask(sim, history, horizon=4 + EXPLOIT_YEARS)
    (late, why), *_ = surface_climb(last)
    assert why == "response surface: enact the model's best schedule"
    assert late == [int(v) for v in np.clip(model_best(last), low, high)]
    assert late != early


def test_the_last_years_enact_no_pair_of_rates_the_shown_years_did_not_try(run: Any) -> None:
    """In the exploiting years the model's best stays within the rates the shown years
    tried, and each bracket's rate is at most one that a shown year set with each
    neighbour's rate at least as high: an untried combination of two high rates (where
    the workers above both may drop) is never enacted."""
    sim, result = run
    history = result.records[:5]
    shown = np.array([[round(100 * r) for r in rec.schedule.rates] for rec in history])
    best = model_best(_ask(sim, history, horizon=5 + EXPLOIT_YEARS))
    assert np.all(best >= shown.min(axis=0)) and np.all(best <= shown.max(axis=0))
    for b in range(best.size):
        for j in (b - 1, b + 1):
            if 0 <= j < best.size:
                assert np.any((shown[:, b] >= best[b]) & (shown[:, j] >= best[j])), (b, j)
    free = model_best(_ask(sim, history, horizon=400))
    assert np.any(free < shown.min(axis=0)) or np.any(free > shown.max(axis=0))


def test_ballot_proposals_are_distinct_and_differ_from_the_current_rates(run: Any) -> None:
    sim, result = run
    history = result.records[:4]
    settings = PlannerPromptSettings(history_len=20, horizon=6)
    proposals = surface_climb(CandidatesAsk(sim.planner_context, history, settings, 5), 5)
    keys = [tuple(rates) for rates, _ in proposals]
    current = tuple(round(100 * r) for r in history[-1].schedule.rates)
    assert len(keys) == 5 == len(set(keys)) and current not in keys


def test_without_the_interval_it_still_fits(run: Any) -> None:
    """``--no-planner-uncertainty``: no noise estimate, the spread of the welfare stands
    in for it; the planner still answers within the trust region."""
    sim, result = run
    history = result.records[:5]
    (rates, _), *_ = surface_climb(_ask(sim, history, horizon=20, uncertainty=False))
    current = np.array([round(100 * r) for r in history[-1].schedule.rates])
    assert np.abs(np.array(rates) - current).max() <= 10


def _final_gap(tmp_path: Path, planner: str, seed: int, history: int, bank: str | None) -> float:
    """The share of the status-quo→oracle gap the year-20 schedule closes (100 workers,
    ±2 h noise, 20 years)."""
    kw: dict[str, Any] = dict(
        planner=planner,
        workers="scripted/reference-noise2",
        agents=100,
        years=20,
        seed=seed,
        planner_history=history,
        run_id=f"{planner.split('/')[1]}-{seed}",
    )
    if bank is not None:
        kw["personas"] = bank
    sim = build_simulation(_config(tmp_path, **kw))
    result = sim.run()
    assert result.fallbacks == 0
    return _gap_closed(sim, result.records[-1:])[1][0]


@pytest.mark.parametrize(
    ("bank", "seeds", "floor"),
    [
        pytest.param(V01_BANK, 8, 0.92, id="v0.1-bank"),
        pytest.param(None, 12, 0.90, id="default-bank"),
    ],
)
def test_it_closes_more_of_the_gap_than_the_compass_search(
    tmp_path: Path, bank: str | None, seeds: int, floor: float
) -> None:
    """Paired over the first seeds (100 workers, ±2 h, 20 years), both planners at the
    defaults (8 years shown). On the default bank the floor is the issue's target: 90 %
    of the status-quo→oracle gap within 20 years at 100 workers with ±2 h noise, through
    the full LLM path. Measured: the surface 0.968 on the v0.1 bank (8 seeds) and 0.922
    on the default bank (seeds 0–11, the lowest 12 in a row of its first 144; over 96
    seeds it closes 0.947, docs/agents.md), the compass search 0.715 and 0.71. On these
    12 seeds the planner before the joint model closed as much (0.922; over 96 seeds
    0.922 against 0.947). Before its structural curves the surface closed 0.877 and
    0.807 (with every year shown), below these floors. The floors leave room for
    another machine's rounding to send a run or two down other paths (one run's share
    moves by up to 0.12)."""
    surface = [
        _final_gap(tmp_path, "scripted/reference-noise2-surface", s, 8, bank) for s in range(seeds)
    ]
    compass = [_final_gap(tmp_path, "scripted/reference-noise2", s, 8, bank) for s in range(seeds)]
    assert np.mean(surface) >= floor
    assert min(surface) >= 0.75  # no run collapses
    assert np.mean(surface) > np.mean(compass)


def test_records_say_why(run: Any) -> None:
    _, result = run
    events = read_events(result.run_dir)
    whys = [e.parsed["rationale"] for e in events if isinstance(e, LLMCall) and e.role == "planner"]
    assert len(whys) == 5
    assert whys[0].startswith("response surface: explore")
    assert whys[-EXPLOIT_YEARS:] == ["response surface: enact the model's best schedule"] * 3


def test_the_breakdown_recovers_each_brackets_mean_income(run: Any) -> None:
    """From what a demonstration shows (workers and income share per bracket, revenue
    per worker, rates): the mean income of each bracket, close to the true one."""
    sim, result = run
    record = result.records[-1]
    weight = sim.economy.population.survey_weight
    view = breakdown(record, sim.economy.size, weight)
    w = np.ones(record.income_usd.size) if weight is None else weight
    which = np.searchsorted(view.edges, record.income_usd, side="right") - 1
    for b in np.flatnonzero(view.counts > 0.5):
        inside = which == b
        true_mean = float(np.sum(w[inside] * record.income_usd[inside]) / np.sum(w[inside]))
        assert view.means[b] == pytest.approx(true_mean, rel=0.1), b


def test_a_repeated_schedule_with_float_dust_noise_does_not_break_the_fit() -> None:
    # A voting run's incumbent won three years with the same shown welfare: σ̂ came out
    # as 8.9e-12, the fit trusted three distinct schedules infinitely and `solve` raised
    # LinAlgError (a planner fallback).
    rates = np.array([[10, 12, 22, 24, 32, 35, 37], [20, 22, 32, 34, 42, 45, 47]] * 2, dtype=float)
    rates = np.vstack([rates, rates[:1]])
    swf = np.array([43954.3, 44001.2, 43954.3, 44001.2, 43954.3])
    offset = np.linspace(-1.0, 1.0, swf.size)
    for off in (None, offset):
        coef, center = fit_surface(rates, swf, 8.9e-12, off)
        assert np.all(np.isfinite(coef)) and np.all(np.isfinite(center))
