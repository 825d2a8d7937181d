"""Agents: worker pools (rational or LLM) and the LLM planner."""

from llmecon.agents.base import WorkerDecision, WorkerPool, WorkerRequest
from llmecon.agents.rational import RationalWorkers

__all__ = ["RationalWorkers", "WorkerDecision", "WorkerPool", "WorkerRequest"]
