"""Rational workers: the exact best response of the calibrated utility."""

from __future__ import annotations

from llmecon.agents.base import WorkerDecision, WorkerRequest
from llmecon.economy import Economy


class RationalWorkers:
    """Every worker plays the exact best response to the year's schedule."""

    name = "rational"

    def __init__(self, economy: Economy) -> None:
        self.economy = economy

    async def decide(self, request: WorkerRequest) -> WorkerDecision:
        return WorkerDecision(self.economy.rational_hours(request.schedule))
