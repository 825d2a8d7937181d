"""A stand-in third-party plug-in for ``test_plugins.py`` (entry points point here)."""

from __future__ import annotations

from collections.abc import Sequence

from llmecon.economy import TaxSchedule
from llmecon.models._mock import MockProvider
from llmecon.planners import PlannerContext, YearRecord


class HalfPlanner:
    name = "half"

    def __init__(self, context: PlannerContext) -> None:
        self.schedule = context.schedule([0.5] * context.n_brackets)

    def propose(self, history: Sequence[YearRecord]) -> TaxSchedule:
        return self.schedule


def half_planner(context: PlannerContext, arg: str | None) -> HalfPlanner:
    """every marginal rate 50 % (a plug-in)"""
    return HalfPlanner(context)


class MyProvider(MockProvider):
    """The mock model under another provider name."""

    provider_name = "myprov"
