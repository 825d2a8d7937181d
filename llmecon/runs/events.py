"""Typed run-log events: one JSON object per line of ``events.jsonl``.

Every event carries ``type`` (the discriminator), ``seq`` (0, 1, 2, … with no gaps)
and ``time`` (Unix seconds). New event types extend :data:`Event`; a change that old
readers cannot ignore bumps :data:`LOG_FORMAT_VERSION`. See ``docs/log-format.md``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

#: Version of the run-log format written by this release.
LOG_FORMAT_VERSION = 1


class _EventBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int = -1
    time: float = 0.0


class RunStarted(_EventBase):
    """First event: what is being run (the manifest holds the full detail)."""

    type: Literal["run_started"] = "run_started"
    run_id: str
    format_version: int = LOG_FORMAT_VERSION


class YearStarted(_EventBase):
    type: Literal["year_started"] = "year_started"
    year: int


class ScheduleSet(_EventBase):
    """The schedule enacted for a year and how it was chosen."""

    type: Literal["schedule_set"] = "schedule_set"
    year: int
    edges: list[float]
    rates: list[float]
    source: str
    """``planner`` (as proposed), ``fallback`` (proposal failed, schedule kept) or ``vote``."""
    planner: str
    detail: dict[str, Any] = Field(default_factory=dict)


class WorkerStep(_EventBase):
    """Every worker's hours after one decision step of a year."""

    type: Literal["worker_step"] = "worker_step"
    year: int
    step: int
    weekly_hours: list[float]
    fallbacks: int = 0
    """Workers whose decision failed and who kept their previous hours."""


class YearCompleted(_EventBase):
    """The year's aggregate metrics (all SWFs, revenue, hours, inequality)."""

    type: Literal["year_completed"] = "year_completed"
    year: int
    metrics: dict[str, float]


class Fallback(_EventBase):
    """An agent's output was unusable and a documented fallback was applied."""

    type: Literal["fallback"] = "fallback"
    year: int
    role: Literal["planner", "worker", "voter"]
    agent: str | None = None
    reason: str
    action: str


class RunCompleted(_EventBase):
    """Last event of a run that ended on its own (not killed)."""

    type: Literal["run_completed"] = "run_completed"
    status: Literal["completed", "budget_exceeded", "interrupted", "failed"]
    years_completed: int
    summary: dict[str, Any] = Field(default_factory=dict)


Event = Annotated[
    RunStarted | YearStarted | ScheduleSet | WorkerStep | YearCompleted | Fallback | RunCompleted,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(line: str | bytes) -> Event:
    """Validate one JSONL line into its typed event."""
    return EVENT_ADAPTER.validate_json(line)
