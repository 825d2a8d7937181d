"""The run loop: each tax year the planner sets a schedule, workers choose hours, the
economy settles, and everything is logged.

One tax year:
1. ``year_started``; the planner proposes (an exception or invalid proposal keeps last
   year's schedule, recorded as a ``fallback``); ``schedule_set``.
2. ``worker_steps`` simultaneous decision steps (``worker_step`` each).
3. The economy settles: incomes, taxes, rebate, utility → ``year_completed``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from llmecon.agents import WorkerRequest
from llmecon.agents.calls import current_call
from llmecon.economy import ScheduleError, TaxSchedule, parse_brackets
from llmecon.models import CallRecord
from llmecon.planners import PlannerContext, YearRecord
from llmecon.runs.config import RunConfig
from llmecon.runs.events import (
    Fallback,
    LLMCall,
    MessageRef,
    RunCompleted,
    RunStarted,
    ScheduleSet,
    WorkerStep,
    YearCompleted,
    YearStarted,
)
from llmecon.runs.log import Manifest, RunLog, package_versions, utc_now
from llmecon.runs.recorded import RecordedCalls
from llmecon.runs.reference import reference_welfare
from llmecon.runs.voting import build_voting
from llmecon.runs.wiring import (
    PERSONA_COPY_MAX,
    ModelPool,
    build_economy,
    build_library,
    build_planner,
    build_population,
    build_workers,
)

RunStatus = Literal["completed", "budget_exceeded", "interrupted", "failed"]
ProgressCallback = Callable[[YearRecord, dict[str, Any]], None]
CallProgress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class RunStreams:
    """Independent seeded generators for each source of randomness in a run."""

    population: np.random.Generator
    planner: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int) -> RunStreams:
        pop, plan = np.random.SeedSequence(seed).spawn(2)
        return cls(np.random.default_rng(pop), np.random.default_rng(plan))


@dataclass
class RunResult:
    """What a finished (or stopped) run produced."""

    config: RunConfig
    records: list[YearRecord]
    status: str
    summary: dict[str, Any]
    run_dir: Path | None = None
    fallbacks: int = 0


def default_run_id(config: RunConfig) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in config.planner)
    return f"{stamp}-{safe}"


class Simulation:
    """One run, wired up from a config. Use :meth:`run` (sync) or :meth:`run_async`."""

    def __init__(
        self,
        config: RunConfig,
        *,
        write_log: bool = True,
        on_call_progress: CallProgress | None = None,
        recorded: RecordedCalls | None = None,
        live_after_recorded: bool = False,
        log: RunLog | None = None,
        manifest_extra: dict[str, Any] | None = None,
    ) -> None:
        """``recorded``: serve model calls from a log (replay); with
        ``live_after_recorded`` calls with no recording go to the live model (resume, fork).
        ``log``: continue writing an existing run log (resume) instead of creating one."""
        self.config = config.resolved()
        self.years = int(self.config.years or 0)
        self.streams = RunStreams.from_seed(self.config.seed)
        self.source = build_population(self.config, self.streams.population)
        self.population = self.source.population
        self.economy = build_economy(self.config, self.population)
        self.edges = parse_brackets(self.config.brackets)
        self.planner_context = PlannerContext(
            self.economy,
            self.edges,
            self.streams.planner,
            min_rate=self.config.min_rate,
            max_rate=self.config.max_rate,
        )
        self.library = build_library(self.config)
        self.models = ModelPool(self.config, self._on_call, recorded, live_after_recorded)
        self.models.repair_prompt = lambda error: self.library.render("repair.j2", error=error).text
        self.planner = build_planner(self.config, self.planner_context, self.models, self.library)
        self.workers = build_workers(
            self.config, self.economy, self.source, self.models, self.library
        )
        self.voting = build_voting(
            self.config,
            self.planner_context,
            self.planner,
            self.models,
            self.library,
            self.source,
            self._emit,
        )
        self.on_call_progress = on_call_progress
        self.manifest_extra = manifest_extra or {}
        self.run_id = self.config.run_id or default_run_id(self.config)
        self.log: RunLog | None = log
        if write_log and log is None:
            self.log = RunLog.create(Path(self.config.out) / self.run_id, self._manifest())
            self._write_personas()
        self.records: list[YearRecord] = []
        self.fallbacks = 0
        #: set when the log already holds a ``run_started`` event (resume)
        self.started = log is not None

    def _manifest(self) -> Manifest:
        uses_llm = bool(self.models.models)
        return Manifest(
            run_id=self.run_id,
            created=utc_now(),
            seed=self.config.seed,
            config=self.config.model_dump(mode="json"),
            population=self.source.description,
            models={"planner": self.config.planner, "workers": str(self.config.workers)},
            prompts=self.library.hashes() if uses_llm else {},
            package_versions=package_versions(),
            **self.manifest_extra,
        )

    def _write_personas(self) -> None:
        if self.log is None or self.source.personas is None:
            return
        if len(self.source.personas) > PERSONA_COPY_MAX:
            return
        from llmecon.personas import write_bank

        write_bank(self.log.directory / "personas.jsonl", self.source.personas)

    def _emit(self, event: Any) -> None:
        if self.log is not None:
            self.log.append(event)

    def _on_call(self, record: CallRecord) -> None:
        """Model-layer hook: log every call as an ``llm_call`` event (+ new blobs)."""
        ctx = current_call()
        if self.log is not None:
            refs = [
                MessageRef(role=m.role, sha256=self.log.blob(m.content)) for m in record.messages
            ]
            self.log.append(
                LLMCall(
                    year=ctx.year if ctx else len(self.records),
                    role=ctx.role if ctx else "planner",
                    agent=ctx.agent if ctx else None,
                    step=ctx.step if ctx else 0,
                    model=record.model,
                    templates=dict(ctx.templates) if ctx else {},
                    messages=refs,
                    schema_name=record.schema_name,
                    raw_outputs=record.raw_outputs,
                    parsed=record.parsed,
                    input_tokens=record.usage.input_tokens,
                    output_tokens=record.usage.output_tokens,
                    latency_s=round(record.latency_s, 6),
                    retries=record.retries,
                    repairs=record.repairs,
                    cached=record.cached,
                    cost_usd=record.cost_usd,
                    error_type=record.error_type,
                    error_message=record.error_message,
                    fallback=record.error_type is not None,
                )
            )
        if self.on_call_progress is not None:
            self.on_call_progress(self.models.totals())

    async def _propose(self, year: int, previous: TaxSchedule | None) -> tuple[TaxSchedule, str]:
        try:
            proposal = self.planner.propose(self.records)
            if inspect.isawaitable(proposal):
                proposal = await proposal
            if not isinstance(proposal, TaxSchedule) or proposal.edges != tuple(self.edges):
                raise ScheduleError("proposal is not a schedule on the run's brackets")
            return proposal, "planner"
        except ValueError as exc:  # PlannerError, ScheduleError: a recorded fallback
            kept = previous or self.planner_context.status_quo()
            self.fallbacks += 1
            self._emit(
                Fallback(
                    year=year,
                    role="planner",
                    reason=f"{type(exc).__name__}: {exc}",
                    action="kept the previous schedule" if previous else "enacted the status quo",
                )
            )
            return kept, "fallback"

    async def run_year(self, year: int) -> YearRecord:
        previous = self.records[-1] if self.records else None
        self._emit(YearStarted(year=year))
        kept = previous.schedule if previous else None
        voted = (  # a voting round, or a voted schedule still in force (docs/voting.md)
            await self.voting.decide(year, self.records, lambda: self._propose(year, kept))
            if self.voting is not None
            else None
        )
        detail: dict[str, Any] | None = None
        if voted is not None:
            schedule, source, detail = voted.schedule, voted.source, voted.detail
            self.fallbacks += voted.fallbacks
        else:
            schedule, source = await self._propose(year, kept)
            detail = getattr(self.planner, "last_detail", None) if source == "planner" else None
        self._emit(
            ScheduleSet(
                year=year,
                edges=list(schedule.edges),
                rates=list(schedule.rates),
                source=source,
                planner=self.config.planner,
                detail=dict(detail or {}),
            )
        )
        hours = (
            previous.weekly_hours
            if previous is not None
            else np.asarray(self.population.usual_weekly_hours, dtype=float)
        )
        for step in range(self.config.worker_steps):
            request = WorkerRequest(
                year=year,
                step=step,
                schedule=schedule,
                previous_hours=hours,
                last_rebate_usd=previous.metrics.rebate_usd if previous else 0.0,
                history=self.records,
            )
            decision = await self.workers.decide(request)
            hours = np.asarray(decision.weekly_hours, dtype=float)
            self.fallbacks += decision.fallbacks
            for index, reason in sorted(decision.fallback_reasons.items()):
                self._emit(
                    Fallback(
                        year=year,
                        role="worker",
                        agent=self.population.ids[index],
                        reason=reason,
                        action="kept the previous hours",
                    )
                )
            self._emit(
                WorkerStep(
                    year=year,
                    step=step,
                    weekly_hours=[float(h) for h in hours],
                    fallbacks=decision.fallbacks,
                )
            )
        record = self.settle_year(year, schedule, hours, source)
        if voted is not None and voted.summary:
            record.notes["vote_summary"] = voted.summary
        self._emit(YearCompleted(year=year, metrics=record.metrics.to_dict()))
        if self.log is not None:
            self.log.sync()
            self.log.write_years_table([years_row(r) for r in self.records])
        return record

    def settle_year(self, year: int, schedule: TaxSchedule, hours: Any, source: str) -> YearRecord:
        """Settle the economy for a year's schedule and hours, and append its record."""
        outcome = self.economy.outcome(schedule, hours)
        metrics = self.economy.metrics(outcome)
        record = YearRecord(
            year, schedule, metrics, outcome.weekly_hours, outcome.income_usd, source
        )
        self.records.append(record)
        return record

    async def run_async(self, progress: ProgressCallback | None = None) -> RunResult:
        """Run the remaining years (all of them, or those after restored records)."""
        if not self.started:
            self._emit(RunStarted(run_id=self.run_id))
            self.started = True
        status: RunStatus = "completed"
        try:
            for year in range(len(self.records), self.years):
                record = await self.run_year(year)
                if progress is not None:
                    progress(record, {"fallbacks": self.fallbacks, **self.models.totals()})
                if self.models.budget_exceeded and year + 1 < self.years:
                    status = "budget_exceeded"
                    break
        except (KeyboardInterrupt, asyncio.CancelledError):
            status = "interrupted"
            raise
        finally:
            summary = self.summary() if status != "interrupted" and self.records else {}
            self._emit(
                RunCompleted(status=status, years_completed=len(self.records), summary=summary)
            )
            if self.log is not None:
                self.log.close()
            await self.models.aclose()
        return RunResult(
            self.config,
            self.records,
            status,
            summary,
            self.log.directory if self.log else None,
            self.fallbacks,
        )

    def run(self, progress: ProgressCallback | None = None) -> RunResult:
        return asyncio.run(self.run_async(progress))

    def summary(self) -> dict[str, Any]:
        """Final and best SWF, against the status quo and the oracle, and model usage."""
        swfs = [r.metrics.swf for r in self.records]
        out: dict[str, Any] = {
            "final_swf": swfs[-1],
            "best_swf": max(swfs),
            "best_year": int(np.argmax(swfs)),
            "fallbacks": self.fallbacks,
        }
        if self.models.models:
            out.update(self.models.totals())
        if self.config.reference:
            out.update(reference_welfare(self.planner_context))
            for key in ("status_quo_swf", "oracle_swf"):
                ref = out.get(key)
                if ref:
                    out[f"final_pct_of_{key.removesuffix('_swf')}"] = 100.0 * swfs[-1] / ref
        return out


def years_row(record: YearRecord) -> dict[str, Any]:
    """One row of the per-year table."""
    row: dict[str, Any] = {"year": record.year, "source": record.source}
    row.update(record.metrics.to_dict())
    for b, rate in enumerate(record.schedule.rates):
        row[f"rate_{b}"] = rate
    return row


def run(config: RunConfig, progress: ProgressCallback | None = None) -> RunResult:
    """Build and run a simulation from a config."""
    return Simulation(config).run(progress)
