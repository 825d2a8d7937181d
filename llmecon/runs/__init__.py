"""Runs: configuration, the simulation loop, and the run log."""

from llmecon.runs.config import ConfigError, RunConfig, build_config, read_config_file
from llmecon.runs.events import LOG_FORMAT_VERSION, Event, parse_event
from llmecon.runs.guard import RunFailedError
from llmecon.runs.log import Manifest, RunLog, RunLogError, read_events, read_manifest
from llmecon.runs.loop import RunResult, Simulation, run

__all__ = [
    "LOG_FORMAT_VERSION",
    "ConfigError",
    "Event",
    "Manifest",
    "RunConfig",
    "RunFailedError",
    "RunLog",
    "RunLogError",
    "RunResult",
    "Simulation",
    "build_config",
    "parse_event",
    "read_config_file",
    "read_events",
    "read_manifest",
    "run",
]
