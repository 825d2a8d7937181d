"""Crash-safe resume and counterfactual forks of logged runs (docs/runs.md).

``resume_run`` continues a stopped run (killed, failed, interrupted, out of budget or
time) from its last complete year: the events of the
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
from llmecon.runs.config import OPERATIONAL_FIELDS
from llmecon.runs.events import (
    LOG_FORMAT_VERSION,
    Event,
    Fallback,
    LLMCall,
    RunCompleted,
    RunStarted,
    ScheduleSet,
    WorkerStep,
    YearCompleted,
    YearStarted,
    parse_event,
)
from llmecon.runs.log import (
    EVENTS_NAME,
    RunLock,
    RunLog,
    RunLogError,
    _raw_manifest,
    read_manifest,
    validate_events,
)
from llmecon.runs.loop import Simulation
from llmecon.runs.recorded import RecordedCalls
from llmecon.runs.replay import config_from_manifest, logged_years, metric_differences
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


def resume_run(
    run_dir: str | Path, overrides: dict[str, Any] | None = None, **sim_kwargs: Any
) -> Simulation:
    """Prepare a stopped run to continue; call ``.run()`` on the result.

    Any run that did not complete can be resumed: killed (no ``run_completed``), failed,
    interrupted, or stopped by its budget or deadline. ``overrides`` may change the
    operational settings only (:data:`OPERATIONAL_FIELDS`: timeouts, retries, servers,
    budget, …), never what the run computes. Raises :class:`RunLogError` when the run
    completed, is in use by another process, or its log is corrupt.
    """
    path = Path(run_dir)
    manifest = read_manifest(path)
    raw_version = (_raw_manifest(path) or {}).get("format_version")
    if raw_version != LOG_FORMAT_VERSION:
        raise RunLogError(
            f"{path} uses log format {raw_version}; resume appends to logs of the current "
            f"format ({LOG_FORMAT_VERSION}) only (replay, report and load_run read it)"
        )
    settings = {k: v for k, v in (overrides or {}).items() if v is not None}
    other = sorted(set(settings) - set(OPERATIONAL_FIELDS))
    if other:
        raise RunLogError(
            f"resume can change operational settings only ({', '.join(OPERATIONAL_FIELDS)}); "
            f"not {', '.join(other)}: use `llmecon run --fork` for another experiment"
        )
    events_path = path / EVENTS_NAME
    if not events_path.is_file():
        raise RunLogError(f"no {EVENTS_NAME} in {path}")
    lock = RunLock(path)  # before reading: a concurrent resume must not interleave
    try:
        kept_lines, kept, tail_lines = _split_log(events_path)
        if not kept:
            raise RunLogError(f"{events_path} is empty: the run never started; run it again")
        validate_events(kept, events_path)
        tail = [e for e in (_try_parse(line) for line in tail_lines) if e is not None]
        ended = [e for e in tail if isinstance(e, RunCompleted)]
        if ended and ended[-1].status == "completed":
            raise RunLogError(f"{path} already completed; nothing to resume")
        if tail_lines:
            n = len(list(path.glob("events.interrupted-*.jsonl"))) + 1
            (path / f"events.interrupted-{n}.jsonl").write_bytes(b"\n".join(tail_lines) + b"\n")
        tmp = events_path.with_name(EVENTS_NAME + ".tmp")
        tmp.write_bytes(b"".join(line + b"\n" for line in kept_lines))
        os.replace(tmp, events_path)

        # Calls completed in the unfinished year are reused; failed ones are asked again
        # (the failure may be what stopped the run); later ones go live.
        recorded = RecordedCalls.from_events(
            e for e in tail if isinstance(e, LLMCall) and e.error_type is None
        )
        config = config_from_manifest(
            path, manifest, run_id=manifest.run_id, out=str(path.parent), **settings
        )
        config = config.model_copy(
            update={"reference": bool(manifest.config.get("reference", True))}
        )
        log = RunLog.reopen(path, kept, lock)
    except BaseException:
        lock.release()
        raise
    spent = sum(e.cost_usd or 0.0 for e in kept if isinstance(e, LLMCall))
    sim = Simulation(
        config,
        recorded=recorded,
        live_after_recorded=True,
        log=log,
        spent_usd=spent,
        **sim_kwargs,
    )
    sim.started = any(isinstance(e, RunStarted) for e in kept)
    summaries = vote_summaries(kept)
    for year in logged_years(kept):
        record = sim.settle_year(year.year, year.schedule, year.weekly_hours, year.source)
        differences = metric_differences(year.metrics, record.metrics.to_dict())
        if differences:
            log.close()
            raise RunLogError(
                f"{path}: year {year.year} does not re-settle to its logged metrics "
                f"({differences[0]}); the persona bank or the economy changed"
            )
        if year.year in summaries:  # the planner's demonstrations show past votes
            record.notes["vote_summary"] = summaries[year.year]
    sim.fallbacks = sum(isinstance(e, Fallback) for e in kept)
    sim.decisions = sum(_decisions(e) for e in kept)
    _fast_forward(sim)
    return sim


def _decisions(event: Event) -> int:
    """Agent decisions an event stands for (for the fallback share of a resumed run)."""
    if isinstance(event, ScheduleSet):
        return 1
    if isinstance(event, WorkerStep):
        return len(event.weekly_hours)
    return 0


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


#: Settings a fork cannot change: the replayed years' hours and rates depend on them.
FORK_KEEPS = ("agents", "personas", "seed", "brackets")


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
    changed = [
        key for key in FORK_KEEPS if key in settings and settings[key] != manifest.config.get(key)
    ]
    if changed:
        flags = ", ".join("--" + key.replace("_", "-") for key in changed)
        raise RunLogError(
            f"a fork keeps the population and brackets of {src} (its first years are that "
            f"run's schedules and hours, per persona): {flags} cannot change; start a new "
            "run instead"
        )
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
