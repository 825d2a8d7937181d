"""Joint-arm bandits of Large Legislative Models (llmecon.planners.joint_bandits)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from llmecon.economy import Economy, TaxSchedule, parse_brackets
from llmecon.planners import PlannerContext, PlannerError, YearRecord, make_planner
from llmecon.planners.joint_bandits import JointBanditPlanner, parse_joint_args


def _ctx(economy: Economy, brackets: str = "us-three-2025", seed: int = 0) -> PlannerContext:
    return PlannerContext(economy, parse_brackets(brackets), np.random.default_rng(seed))


def _play(economy: Economy, planner: JointBanditPlanner, years: int) -> list[YearRecord]:
    history: list[YearRecord] = []
    for year in range(years):
        schedule = planner.propose(history)
        assert isinstance(schedule, TaxSchedule)
        outcome, metrics = economy.evaluate(schedule)
        history.append(
            YearRecord(year, schedule, metrics, outcome.weekly_hours, outcome.income_usd)
        )
    return history


def _rates(history: Sequence[YearRecord]) -> list[tuple[float, ...]]:
    return [tuple(round(r, 6) for r in rec.schedule.rates) for rec in history]


def test_arms_are_numbered_like_the_paper(economy: Economy) -> None:
    """Base-K digits, first bracket most significant (BanditWrapper.convert_action)."""
    planner = make_planner("ucb-joint", _ctx(economy))
    assert isinstance(planner, JointBanditPlanner)
    assert planner.n_arms == 11**3
    assert planner.rates_of(0).tolist() == [0.0, 0.0, 0.0]
    assert planner.rates_of(1).tolist() == [0.0, 0.0, 0.1]
    assert planner.rates_of(11).tolist() == [0.0, 0.1, 0.0]
    for arm in (0, 5, 122, 1330):
        assert planner.arm_of(planner.rates_of(arm)) == arm


def test_ucb_plays_untried_arms_in_order_then_exploits(economy: Economy) -> None:
    planner = make_planner("ucb-joint:grid=0/0.3/0.6", _ctx(economy, "us-three-2025"))
    assert isinstance(planner, JointBanditPlanner)
    assert planner.n_arms == 27 and planner.parameter == pytest.approx(0.2)
    history = _play(economy, planner, 30)
    assert _rates(history[:27]) == [tuple(planner.rates_of(a).round(6)) for a in range(27)]
    # after every arm was tried once the best arm so far is played again
    best = max(history[:27], key=lambda r: r.metrics.swf)
    assert _rates(history[27:28]) == _rates([best])


def test_egreedy_without_exploration_is_greedy(economy: Economy) -> None:
    planner = make_planner("egreedy-joint:eps=0,step=0.5", _ctx(economy, "flat"))
    history = _play(economy, planner, 6)
    assert _rates(history[:1]) == [(0.0,)]  # a zero table picks the lowest arm
    assert len(set(_rates(history[1:]))) == 1  # then it sticks with the best arm


def test_thompson_is_seeded_and_stays_on_the_grid(economy: Economy) -> None:
    runs = [
        _rates(_play(economy, make_planner("thompson-joint", _ctx(economy, seed=3)), 8))  # type: ignore[arg-type]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    grid = {round(0.1 * k, 6) for k in range(11)}
    assert all(r in grid for rates in runs[0] for r in rates)


def test_huge_arm_spaces_cost_nothing(economy: Economy) -> None:
    """Seven federal brackets on a 1-point grid: 101^7 ≈ 10^14 arms."""
    for name in ("ucb-joint:step=0.01", "thompson-joint:step=0.01", "egreedy-joint:step=0.01"):
        planner = make_planner(name, _ctx(economy, "us-federal-2025"))
        assert isinstance(planner, JointBanditPlanner)
        assert planner.n_arms == 101**7
        history = _play(economy, planner, 3)
        assert len(history) == 3


def test_grid_respects_rate_bounds_and_arguments_are_checked(economy: Economy) -> None:
    ctx = PlannerContext(
        economy, parse_brackets("flat"), np.random.default_rng(0), min_rate=0.2, max_rate=0.5
    )
    planner = make_planner("ucb-joint", ctx)
    assert isinstance(planner, JointBanditPlanner)
    assert planner.grid.tolist() == pytest.approx([0.2, 0.3, 0.4, 0.5])
    assert parse_joint_args("ucb-joint", "0.5").parameter == 0.5
    assert parse_joint_args("ucb-joint", "grid=0/20/50").points == (0.0, 0.2, 0.5)
    with pytest.raises(PlannerError, match="unknown argument"):
        make_planner("thompson-joint:c=1", _ctx(economy))
    with pytest.raises(PlannerError, match="needs a number"):
        make_planner("ucb-joint:c=x", _ctx(economy))
    with pytest.raises(PlannerError, match="no grid point"):
        make_planner("ucb-joint:grid=0.9", ctx)
    # A grid point beyond 100 % was dropped without a word, leaving a one-armed
    # "bandit" that enacted 0 % every year; a negative c was taken.
    with pytest.raises(PlannerError, match=r"ucb-joint: grid points must be rates .* 200 %"):
        make_planner("ucb-joint:grid=0/200", _ctx(economy))
    with pytest.raises(PlannerError, match=r"only 30 % lies within .*two rates or more"):
        make_planner("ucb-joint:grid=0.1/0.3", ctx)
    with pytest.raises(PlannerError, match="ucb-joint: c must be ≥ 0, got -1"):
        make_planner("ucb-joint:c=-1", _ctx(economy))
    assert make_planner("ucb-joint:c=0", _ctx(economy)).parameter == 0.0
