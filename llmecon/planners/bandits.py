"""Bandit baselines over a discretised rate grid (as in Large Legislative Models).

The joint arm space (grid^brackets, 11^7 ≈ 19 M for the federal brackets) is far too
large for a few dozen tax years, so each bracket runs its own bandit over the grid and
all brackets share the year's SWF as reward (a factored, combinatorial bandit).
Statistics are recomputed from the history each year (enacted rates are snapped to the
nearest grid point), so a schedule overridden by a vote or a fallback is learnt from as
enacted. Rewards are min–max normalised over the years seen so far.

- ``ucb[:c]``: UCB1 with exploration constant ``c`` (default 1.0); untried arms first.
- ``thompson``: Gaussian Thompson sampling, prior N(0.5, 1) per arm.
- ``egreedy[:ε]``: greedy on the mean with probability 1 − ε (default 0.1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from llmecon.economy import TaxSchedule
from llmecon.planners.base import PlannerContext, PlannerError, YearRecord, register_planner

FloatArray = NDArray[np.float64]

DEFAULT_GRID_STEP = 0.1
#: Score of an arm never pulled: above any real score (rewards are normalised to [0, 1]).
_UNTRIED = 1e6


class BanditPlanner:
    """A factored bandit; ``strategy`` is ``ucb``, ``thompson`` or ``egreedy``."""

    def __init__(
        self,
        ctx: PlannerContext,
        strategy: str,
        parameter: float | None = None,
        grid_step: float = DEFAULT_GRID_STEP,
    ) -> None:
        if strategy not in ("ucb", "thompson", "egreedy"):
            raise PlannerError(f"unknown bandit strategy {strategy!r}")
        self.name = strategy
        self._ctx = ctx
        self.strategy = strategy
        self.parameter = parameter
        n_points = round((ctx.max_rate - ctx.min_rate) / grid_step) + 1
        self.grid: FloatArray = np.linspace(ctx.min_rate, ctx.max_rate, max(n_points, 2))
        #: Its arms, and the years it takes to pull each once (one arm per bracket a year):
        #: :func:`~llmecon.planners.planner_warning`.
        self.arms_label = f"{self.grid.size} arms per bracket"
        self.years_to_try_every_arm = int(self.grid.size)

    def arm_statistics(self, history: Sequence[YearRecord]) -> tuple[FloatArray, FloatArray]:
        """Per bracket and arm: pull counts and mean normalised reward, shape (B, K)."""
        n_b, k = self._ctx.n_brackets, self.grid.size
        counts = np.zeros((n_b, k))
        sums = np.zeros((n_b, k))
        if not history:
            return counts, sums
        rewards = np.array([rec.metrics.swf for rec in history])
        span = rewards.max() - rewards.min()
        norm = (rewards - rewards.min()) / span if span > 0 else np.full(rewards.size, 0.5)
        for rec, r in zip(history, norm, strict=True):
            arms = np.abs(rec.schedule.rates_array[:, None] - self.grid[None, :]).argmin(axis=1)
            counts[np.arange(n_b), arms] += 1
            sums[np.arange(n_b), arms] += r
        means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        return counts, means

    def propose(self, history: Sequence[YearRecord]) -> TaxSchedule:
        rng = self._ctx.rng
        counts, means = self.arm_statistics(history)
        n_b, k = counts.shape
        t = max(len(history), 1)
        if self.strategy == "ucb":
            c = 1.0 if self.parameter is None else self.parameter
            bonus = c * np.sqrt(2.0 * np.log(t + 1) / np.maximum(counts, 1))
            score = np.where(counts > 0, means + bonus, _UNTRIED)
        elif self.strategy == "thompson":
            # Posterior of each arm's mean with unit prior variance around 0.5 and a
            # noise variance of 1/12 (a uniform reward on [0, 1]).
            noise_var = 1.0 / 12.0
            post_var = 1.0 / (1.0 + counts / noise_var)
            post_mean = post_var * (0.5 + counts * means / noise_var)
            score = post_mean + np.sqrt(post_var) * rng.standard_normal((n_b, k))
        else:
            eps = 0.1 if self.parameter is None else self.parameter
            score = np.where(counts > 0, means, _UNTRIED)
            explore = np.asarray(rng.random(n_b) < eps)
            score[explore] = rng.random((int(explore.sum()), k))
        # Random tie-breaking among equal scores (and among untried arms).
        score = score + 1e-6 * rng.random((n_b, k))
        return self._ctx.schedule(self.grid[np.argmax(score, axis=1)])


def _parameter(
    name: str, arg: str | None, symbol: str, low: float, high: float = float("inf")
) -> float | None:
    """``arg`` as a number ``symbol`` in ``[low, high]`` (``None``: the default)."""
    if arg is None:
        return None
    try:
        value = float(arg)
    except ValueError:
        raise PlannerError(f"{name} takes a number, got {arg!r}") from None
    if not low <= value <= high:  # a NaN fails too
        bounds = f"≥ {low:g}" if high == float("inf") else f"in [{low:g}, {high:g}]"
        raise PlannerError(f"{name}:<{symbol}> takes {symbol} {bounds}, got {arg!r}")
    return value


@register_planner("ucb", "factored UCB1 bandit over a 10-point rate grid (ucb:<c>)")
def _ucb(ctx: PlannerContext, arg: str | None) -> BanditPlanner:
    # c: the exploration bonus' weight (0: greedy once every arm was tried)
    return BanditPlanner(ctx, "ucb", _parameter("ucb", arg, "c", 0.0))


@register_planner("thompson", "factored Gaussian Thompson sampling over the rate grid")
def _thompson(ctx: PlannerContext, arg: str | None) -> BanditPlanner:
    return BanditPlanner(ctx, "thompson", None)


@register_planner("egreedy", "factored ε-greedy bandit over the rate grid (egreedy:<ε>)")
def _egreedy(ctx: PlannerContext, arg: str | None) -> BanditPlanner:
    # ε: the probability of exploring a random arm
    return BanditPlanner(ctx, "egreedy", _parameter("egreedy", arg, "ε", 0.0, 1.0))
