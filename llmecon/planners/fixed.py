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

    def propose(self, history: Sequence[YearRecord]) -> TaxSchedule:
        return self.schedule


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
    rate = parse_rates(arg, ctx.n_brackets)
    return FixedPlanner(f"flat:{arg}", ctx.schedule(rate))


@register_planner("fixed", "fixed:<r1,r2,…> explicit rates per bracket (percent or fractions)")
def _fixed(ctx: PlannerContext, arg: str | None) -> FixedPlanner:
    if arg is None:
        raise PlannerError("fixed needs rates, e.g. fixed:10,12,22,24,32,35,37")
    return FixedPlanner(f"fixed:{arg}", ctx.schedule(parse_rates(arg, ctx.n_brackets)))
