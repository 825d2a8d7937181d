"""The worker-pool interface shared by rational and LLM workers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from llmecon.economy import TaxSchedule
from llmecon.planners import YearRecord

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class WorkerRequest:
    """What every worker sees when choosing hours for one step of a year.

    Attributes:
        year: the tax year (0-based) being decided.
        step: the decision step within the year (0-based).
        schedule: the schedule in force this year.
        previous_hours: each worker's hours before this step (last year's, or the
            usual hours in year 0); the fallback when a decision fails.
        last_rebate_usd: last year's lump-sum rebate per worker (in year 0: the status
            quo's, or 0 with ``first_year_rebate: none``).
        history: completed years so far.
    """

    year: int
    step: int
    schedule: TaxSchedule
    previous_hours: FloatArray
    last_rebate_usd: float
    history: Sequence[YearRecord]


@dataclass(frozen=True)
class WorkerDecision:
    """Every worker's chosen weekly hours, and which workers fell back to their previous
    hours (worker index -> reason)."""

    weekly_hours: FloatArray
    fallback_reasons: dict[int, str] = field(default_factory=dict)

    @property
    def fallbacks(self) -> int:
        return len(self.fallback_reasons)


class WorkerPool(Protocol):
    """Chooses hours for all workers at once (a simultaneous move)."""

    @property
    def name(self) -> str: ...

    async def decide(self, request: WorkerRequest) -> WorkerDecision: ...
