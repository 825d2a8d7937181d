"""A stand-in third-party plug-in for ``test_plugins.py`` (entry points point here)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from llmecon.economy import SWF, TaxSchedule
from llmecon.economy.welfare import WelfareInputs
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


class RaisingPlanner:
    """A plug-in planner whose own code fails (not a ValueError)."""

    name = "raiser"

    def __init__(self, message: str) -> None:
        self.message = message

    def propose(self, history: Sequence[YearRecord]) -> TaxSchedule:
        raise RuntimeError(self.message)


def raising_planner(context: PlannerContext, arg: str | None) -> RaisingPlanner:
    """a plug-in planner that always raises RuntimeError (raiser:<its message>)"""
    return RaisingPlanner(arg or "boom from the plug-in")


class OutOfBoundsPlanner:
    """A plug-in planner that ignores the run's rate bounds."""

    name = "wide"

    def __init__(self, context: PlannerContext) -> None:
        self.edges = context.edges

    def propose(self, history: Sequence[YearRecord]) -> TaxSchedule:
        return TaxSchedule(self.edges, tuple([0.95] * len(self.edges)))


def wide_planner(context: PlannerContext, arg: str | None) -> OutOfBoundsPlanner:
    """a plug-in planner that proposes 95 % whatever the bounds"""
    return OutOfBoundsPlanner(context)


def failing_factory(context: PlannerContext, arg: str | None) -> HalfPlanner:
    """a plug-in whose factory raises"""
    raise KeyError("no such setting")


FloatArray = NDArray[np.float64]


def _median_utility(x: WelfareInputs) -> FloatArray:
    return np.asarray(np.median(x.utility, axis=-1), dtype=float)


MEDIAN = SWF(
    "median", "the median worker's utility (a plug-in)", "the median utility", _median_utility
)


class DiskFullPlanner:
    """A plug-in planner whose I/O fails: an environment fault, not a bad proposal."""

    name = "diskfull"

    def propose(self, history: Sequence[YearRecord]) -> TaxSchedule:
        raise OSError(28, "No space left on device")


def diskfull_planner(context: PlannerContext, arg: str | None) -> DiskFullPlanner:
    """a plug-in planner whose I/O fails"""
    return DiskFullPlanner()


class AsyncStepPlanner:
    """An ``async`` plug-in planner with state: its n-th proposal (counted by the
    planner itself, not read from the history) sets every rate to 10 % + n × 5 %."""

    name = "stepper"

    def __init__(self, context: PlannerContext) -> None:
        self.context = context
        self.proposals = 0

    async def propose(self, history: Sequence[YearRecord]) -> TaxSchedule:
        await asyncio.sleep(0)
        self.proposals += 1
        return self.context.schedule([0.1 + 0.05 * self.proposals] * self.context.n_brackets)


def async_step_planner(context: PlannerContext, arg: str | None) -> AsyncStepPlanner:
    """an async plug-in planner counting its own proposals"""
    return AsyncStepPlanner(context)


def _broken_welfare(x: WelfareInputs) -> FloatArray:
    raise ZeroDivisionError("bug in the plug-in SWF")


BROKEN_SWF = SWF("broken", "an SWF whose code raises (a plug-in)", "nothing", _broken_welfare)

#: Plug-in SWFs that answer with something other than one finite number.
PER_WORKER_SWF = SWF("perworker", "one value per worker", "nothing", lambda x: x.utility)
NAN_SWF = SWF("nanswf", "not a number", "nothing", lambda x: np.float64("nan"))
TEXT_SWF = SWF("textswf", "a word", "nothing", lambda x: "high")  # type: ignore[arg-type,return-value]


class BrokenProvider(MockProvider):
    """A provider plug-in whose constructor fails (its own bug)."""

    provider_name = "brokeninit"

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("init bug in the provider plug-in")
