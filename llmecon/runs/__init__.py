"""Runs: configuration, the builder, the simulation loop, the run log, and restoring
logged runs (replay, resume, fork)."""

from llmecon.runs.config import ConfigError, RunConfig, build_config, read_config_file
from llmecon.runs.events import LOG_FORMAT_VERSION, Event, parse_event
from llmecon.runs.guard import RunFailedError
from llmecon.runs.log import (
    LogContents,
    Manifest,
    RunLog,
    RunLogError,
    RunLogWarning,
    read_events,
    read_log,
    read_manifest,
)
from llmecon.runs.loop import RunResult, Simulation
from llmecon.runs.wiring import build_simulation

__all__ = [
    "LOG_FORMAT_VERSION",
    "ConfigError",
    "Event",
    "LogContents",
    "Manifest",
    "RunConfig",
    "RunFailedError",
    "RunLog",
    "RunLogError",
    "RunLogWarning",
    "RunResult",
    "Simulation",
    "build_config",
    "build_simulation",
    "parse_event",
    "read_config_file",
    "read_events",
    "read_log",
    "read_manifest",
]
