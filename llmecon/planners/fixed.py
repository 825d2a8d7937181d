"""Fixed-schedule baselines: free market, status quo, flat and explicit rates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmecon.economy import TaxSchedule
from llmecon.planners.base import (
    PlannerContext,
    PlannerError,
    YearRecord,
    parse_rates,
    register_planner,
)


@dataclass(frozen=True)
class FixedPlanner:
    """Proposes the same schedule every year."""

    name: str
    schedule: TaxSchedule
    run_warning: str | None = None
    """Said before the run and in its summary (:func:`~llmecon.planners.planner_warning`):
    the rates asked for lie outside the run's bounds, so others are enacted."""

    def propose(self, history: Sequence[YearRecord]) -> TaxSchedule:
        return self.schedule


def _given_rates(name: str, ctx: PlannerContext, rates: Sequence[float]) -> FixedPlanner:
    """The planner enacting ``rates`` (clipped to the run's bounds, with a warning
    naming what moved when any was outside them)."""
    schedule = ctx.schedule(rates)
    if all(abs(a - b) <= 1e-12 for a, b in zip(rates, schedule.rates, strict=True)):
        return FixedPlanner(name, schedule)

    def shown(values: Sequence[float]) -> str:
        return ", ".join(f"{100 * v:g}" for v in values) + " %"

    return FixedPlanner(
        name,
        schedule,
        run_warning=(
            f"{name}: its rates ({shown(rates)}) lie outside this run's bounds "
            f"({100 * ctx.min_rate:g}–{100 * ctx.max_rate:g} %), so it enacts "
            f"{shown(schedule.rates)}"
        ),
    )


def rate_unit_warning(spec: str) -> str | None:
    """The warning for a ``flat:``/``fixed:`` spec that sets a 100 % rate by a ``1``
    written without ``%`` (its rates all at most 1, so read as fractions by
    :func:`~llmecon.planners.base.parse_rates`), where 1 % may have been meant; else
    ``None``. The spec's parsing is not changed."""
    name, _, arg = spec.partition(":")
    if name.strip().lower() not in ("flat", "fixed") or "%" in arg:
        return None
    try:
        values = [float(x) for x in arg.split(",") if x.strip()]
    except ValueError:
        return None  # parse_rates says what is wrong
    if not values or any(v > 1 for v in values) or 1 not in values:
        return None
    written = spec.strip()
    return (
        f"{written} is a 100 % rate: rates ≤ 1 are fractions; write {written}% for 1 %"
        if len(values) == 1
        else f"{written}: its 1 is a 100 % rate: rates ≤ 1 are fractions (when none exceeds "
        "1); for 1 %, write every rate in percent with a % (fixed:10%,1%,…)"
    )


@register_planner("none", "free market: every marginal rate 0")
def _none(ctx: PlannerContext, arg: str | None) -> FixedPlanner:
    return FixedPlanner("none", ctx.schedule([0.0] * ctx.n_brackets))


@register_planner("us-federal", "status quo: US federal 2025 rates on the run's brackets")
def _us_federal(ctx: PlannerContext, arg: str | None) -> FixedPlanner:
    return FixedPlanner("us-federal", ctx.status_quo())


@register_planner("flat", "flat:<rate> one rate everywhere, percent or fraction (flat:25)")
def _flat(ctx: PlannerContext, arg: str | None) -> FixedPlanner:
    if arg is None:
        raise PlannerError("flat needs a rate, e.g. flat:25 (percent) or flat:0.25")
    return _given_rates(f"flat:{arg}", ctx, parse_rates(arg, ctx.n_brackets))


@register_planner("fixed", "fixed:<r1,r2,…> explicit rates per bracket (percent or fractions)")
def _fixed(ctx: PlannerContext, arg: str | None) -> FixedPlanner:
    if arg is None:
        raise PlannerError("fixed needs rates, e.g. fixed:10,12,22,24,32,35,37")
    return _given_rates(f"fixed:{arg}", ctx, parse_rates(arg, ctx.n_brackets))
