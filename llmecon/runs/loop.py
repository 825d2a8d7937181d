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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from llmecon.agents import RationalWorkers, WorkerPool, WorkerRequest
from llmecon.economy import (
    Economy,
    Population,
    ScheduleError,
    TaxSchedule,
    UtilityConfig,
    parse_brackets,
    synthetic_population,
)
from llmecon.planners import (
    Planner,
    PlannerContext,
    YearRecord,
    is_baseline,
    make_planner,
    planner_names,
)
from llmecon.runs.config import ConfigError, RunConfig
from llmecon.runs.events import (
    Fallback,
    RunCompleted,
    RunStarted,
    ScheduleSet,
    WorkerStep,
    YearCompleted,
    YearStarted,
)
from llmecon.runs.log import Manifest, RunLog, package_versions, utc_now
from llmecon.runs.reference import reference_welfare

RunStatus = Literal["completed", "budget_exceeded", "interrupted", "failed"]
ProgressCallback = Callable[[YearRecord, dict[str, Any]], None]


@dataclass(frozen=True)
class RunStreams:
    """Independent seeded generators for each source of randomness in a run."""

    population: np.random.Generator
    planner: np.random.Generator
    workers: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int) -> RunStreams:
        pop, plan, work = np.random.SeedSequence(seed).spawn(3)
        return cls(
            np.random.default_rng(pop), np.random.default_rng(plan), np.random.default_rng(work)
        )


@dataclass
class RunResult:
    """What a finished (or stopped) run produced."""

    config: RunConfig
    records: list[YearRecord]
    status: str
    summary: dict[str, Any]
    run_dir: Path | None = None
    fallbacks: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def build_population(config: RunConfig, rng: np.random.Generator) -> Population:
    """The run's workers: the persona bank (default), a bank file, or synthetic."""
    if config.personas == "synthetic":
        return synthetic_population(config.agents, rng)
    from llmecon.personas import population_for_run

    return population_for_run(config.personas, config.agents, rng)


def build_economy(config: RunConfig, population: Population) -> Economy:
    utility = UtilityConfig(
        elasticity=config.elasticity,
        max_weekly_hours=config.max_weekly_hours,
        crra=config.crra,
        rebate_share=config.rebate_share,
    )
    try:
        return Economy(population, utility, swf=config.swf)
    except ValueError as exc:
        raise ConfigError(f"cannot build the economy: {exc}") from None


def build_planner(config: RunConfig, ctx: PlannerContext) -> Planner:
    if is_baseline(config.planner):
        return make_planner(config.planner, ctx)
    raise ConfigError(
        f"planner: unknown planner {config.planner!r}; baselines are " + ", ".join(planner_names())
    )


def build_workers(config: RunConfig, economy: Economy) -> WorkerPool:
    if config.workers == "rational":
        return RationalWorkers(economy)
    raise ConfigError(
        f"workers: {config.workers!r} is not available (use 'rational' or a model name)"
    )


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
        population: Population | None = None,
    ) -> None:
        self.config = config
        self.streams = RunStreams.from_seed(config.seed)
        self.population = population or build_population(config, self.streams.population)
        self.economy = build_economy(config, self.population)
        self.edges = parse_brackets(config.brackets)
        self.planner_context = PlannerContext(
            self.economy,
            self.edges,
            self.streams.planner,
            min_rate=config.min_rate,
            max_rate=config.max_rate,
        )
        self.planner = build_planner(config, self.planner_context)
        self.workers = build_workers(config, self.economy)
        self.run_id = config.run_id or default_run_id(config)
        self.log: RunLog | None = None
        if write_log:
            self.log = RunLog.create(Path(config.out) / self.run_id, self._manifest())
        self.records: list[YearRecord] = []
        self.fallbacks = 0

    def _manifest(self) -> Manifest:
        return Manifest(
            run_id=self.run_id,
            created=utc_now(),
            seed=self.config.seed,
            config=self.config.model_dump(mode="json"),
            population={"source": self.population.source, "size": self.population.size},
            models={"planner": self.config.planner, "workers": self.config.workers},
            package_versions=package_versions(),
        )

    def _emit(self, event: Any) -> None:
        if self.log is not None:
            self.log.append(event)

    async def _propose(self, year: int, previous: TaxSchedule | None) -> tuple[TaxSchedule, str]:
        try:
            proposal = self.planner.propose(self.records)
            if inspect.isawaitable(proposal):
                proposal = await proposal
            if not isinstance(proposal, TaxSchedule) or proposal.edges != tuple(self.edges):
                raise ScheduleError("proposal is not a schedule on the run's brackets")
            return proposal, "planner"
        except (ScheduleError, ValueError) as exc:
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
        schedule, source = await self._propose(year, previous.schedule if previous else None)
        self._emit(
            ScheduleSet(
                year=year,
                edges=list(schedule.edges),
                rates=list(schedule.rates),
                source=source,
                planner=self.config.planner,
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
            self._emit(
                WorkerStep(
                    year=year,
                    step=step,
                    weekly_hours=[round(float(h), 9) for h in hours],
                    fallbacks=decision.fallbacks,
                )
            )
        outcome = self.economy.outcome(schedule, hours)
        metrics = self.economy.metrics(outcome)
        self._emit(YearCompleted(year=year, metrics=metrics.to_dict()))
        record = YearRecord(
            year, schedule, metrics, outcome.weekly_hours, outcome.income_usd, source
        )
        self.records.append(record)
        if self.log is not None:
            self.log.sync()
            self.log.write_years_table([years_row(r) for r in self.records])
        return record

    async def run_async(self, progress: ProgressCallback | None = None) -> RunResult:
        self._emit(RunStarted(run_id=self.run_id))
        status: RunStatus = "completed"
        try:
            for year in range(self.config.years):
                record = await self.run_year(year)
                if progress is not None:
                    progress(record, {"fallbacks": self.fallbacks})
        except (KeyboardInterrupt, asyncio.CancelledError):
            status = "interrupted"
            raise
        finally:
            summary = self.summary() if status == "completed" else {}
            self._emit(
                RunCompleted(status=status, years_completed=len(self.records), summary=summary)
            )
            if self.log is not None:
                self.log.close()
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
        """Final and best SWF, against the status quo and the oracle when computed."""
        swfs = [r.metrics.swf for r in self.records]
        out: dict[str, Any] = {
            "final_swf": swfs[-1],
            "best_swf": max(swfs),
            "best_year": int(np.argmax(swfs)),
            "fallbacks": self.fallbacks,
        }
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
