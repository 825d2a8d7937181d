"""Crash-safe resume and counterfactual forks of logged runs (DESIGN.md §7).

``resume_run`` continues a killed run from its last complete year: the events of the
unfinished year are moved aside (to ``events.interrupted-<n>.jsonl``, never deleted),
the model calls that had completed in it are reused instead of paid for again, and the
run goes on appending to the same log, so the final log has no event lost or duplicated.

``fork_run`` starts a new run whose first years are taken from another run's log and
then continues live, typically with another planner or model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from llmecon.planners import is_baseline
from llmecon.runs.events import (
    LOG_FORMAT_VERSION,
    Event,
    Fallback,
    RunStarted,
    ScheduleSet,
    WorkerStep,
    YearCompleted,
    YearStarted,
    parse_event,
)
from llmecon.runs.log import EVENTS_NAME, RunLog, RunLogError, _raw_manifest, read_manifest
from llmecon.runs.loop import Simulation
from llmecon.runs.recorded import RecordedCalls
from llmecon.runs.replay import config_from_manifest, logged_years
from llmecon.runs.voting import vote_summaries


def _split_log(path: Path) -> tuple[list[bytes], list[Event], list[bytes]]:
    """Raw lines and events up to the last completed year, and the raw tail after it."""
    data = path.read_bytes()
    raw = data.split(b"\n")
    lines = [line for line in raw if line.strip()]
    events: list[Event] = []
    for number, line in enumerate(lines, start=1):
        try:
            events.append(parse_event(line))
        except ValueError:
            if number == len(lines) and not data.endswith(b"\n"):
                break  # torn last line
            raise RunLogError(f"{path}, line {number}: corrupt event") from None
    cut = 0
    for i, event in enumerate(events):
        if isinstance(event, YearCompleted) or (isinstance(event, RunStarted) and cut == 0):
            cut = i + 1
    return lines[:cut], events[:cut], lines[cut:]


def resume_run(run_dir: str | Path, **sim_kwargs: Any) -> Simulation:
    """Prepare a killed run to continue; call ``.run()`` on the result.

    Raises :class:`RunLogError` when the run already completed.
    """
    path = Path(run_dir)
    manifest = read_manifest(path)
    raw_version = (_raw_manifest(path) or {}).get("format_version")
    if raw_version != LOG_FORMAT_VERSION:
        raise RunLogError(
            f"{path} uses log format {raw_version}; resume appends to logs of the current "
            f"format ({LOG_FORMAT_VERSION}) only (replay, report and load_run read it)"
        )
    events_path = path / EVENTS_NAME
    if not events_path.is_file():
        raise RunLogError(f"no {EVENTS_NAME} in {path}")
    kept_lines, kept, tail_lines = _split_log(events_path)
    all_events = kept + [e for e in (_try_parse(line) for line in tail_lines) if e is not None]
    if any(e.type == "run_completed" for e in all_events):
        raise RunLogError(f"{path} already completed; nothing to resume")
    if tail_lines:
        n = len(list(path.glob("events.interrupted-*.jsonl"))) + 1
        (path / f"events.interrupted-{n}.jsonl").write_bytes(b"\n".join(tail_lines) + b"\n")
    tmp = events_path.with_name(EVENTS_NAME + ".tmp")
    tmp.write_bytes(b"".join(line + b"\n" for line in kept_lines))
    os.replace(tmp, events_path)

    # Calls completed in the unfinished year are reused; later ones go to the live model.
    recorded = RecordedCalls.from_events(e for e in all_events[len(kept) :])
    config = config_from_manifest(path, manifest, run_id=manifest.run_id, out=str(path.parent))
    config = config.model_copy(update={"reference": bool(manifest.config.get("reference", True))})
    log = RunLog.reopen(path, kept)
    sim = Simulation(config, recorded=recorded, live_after_recorded=True, log=log, **sim_kwargs)
    sim.started = any(isinstance(e, RunStarted) for e in kept)
    summaries = vote_summaries(kept)
    for year in logged_years(kept):
        record = sim.settle_year(year.year, year.schedule, year.weekly_hours, year.source)
        if record.metrics.to_dict() != year.metrics:
            raise RunLogError(f"{path}: year {year.year} does not re-settle to its logged metrics")
        if year.year in summaries:  # the planner's demonstrations show past votes
            record.notes["vote_summary"] = summaries[year.year]
    sim.fallbacks = sum(isinstance(e, Fallback) for e in kept)
    _fast_forward(sim)
    return sim


def _try_parse(line: bytes) -> Event | None:
    try:
        return parse_event(line)
    except ValueError:
        return None


def _fast_forward(sim: Simulation) -> None:
    """Replay the planner's past proposals so its random stream is where it was."""
    if is_baseline(sim.config.planner):
        for k in range(len(sim.records)):
            sim.planner.propose(sim.records[:k])


def fork_run(
    source_dir: str | Path, from_year: int, overrides: dict[str, Any], **sim_kwargs: Any
) -> Simulation:
    """A new run whose years ``< from_year`` come from ``source_dir``'s log; call ``.run()``."""
    src = Path(source_dir)
    manifest = read_manifest(src)
    from llmecon.runs.log import read_events

    src_events = read_events(src)
    logged = logged_years(src_events)
    summaries = vote_summaries(src_events)
    if not 0 < from_year <= len(logged):
        raise RunLogError(
            f"--from-year must be between 1 and {len(logged)} (the completed years of {src})"
        )
    settings = {"reference": True, **{k: v for k, v in overrides.items() if v is not None}}
    config = config_from_manifest(src, manifest, **settings)
    extra = {"forked_from": {"run": str(src), "run_id": manifest.run_id, "from_year": from_year}}
    sim = Simulation(config, manifest_extra=extra, **sim_kwargs)
    sim._emit(RunStarted(run_id=sim.run_id))
    sim.started = True
    for year in logged[:from_year]:
        sim._emit(YearStarted(year=year.year))
        sim._emit(
            ScheduleSet(
                year=year.year,
                edges=list(year.schedule.edges),
                rates=list(year.schedule.rates),
                source="replayed",
                planner=str(manifest.config.get("planner")),
                detail={"forked_from": manifest.run_id, "original_source": year.source},
            )
        )
        sim._emit(WorkerStep(year=year.year, step=0, weekly_hours=year.weekly_hours))
        record = sim.settle_year(year.year, year.schedule, year.weekly_hours, "replayed")
        if year.year in summaries:
            record.notes["vote_summary"] = summaries[year.year]
        sim._emit(YearCompleted(year=year.year, metrics=record.metrics.to_dict()))
    return sim
