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
import contextlib
import inspect
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmecon.agents import WorkerRequest
from llmecon.agents.calls import current_call
from llmecon.economy import ScheduleError, TaxSchedule, parse_brackets
from llmecon.models import CallRecord
from llmecon.planners import PlannerContext, YearRecord, is_baseline
from llmecon.runs.config import ConfigError, RunConfig
from llmecon.runs.events import (
    EndStatus,
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
from llmecon.runs.guard import CircuitBreaker, RunFailedError
from llmecon.runs.log import Manifest, RunLog, package_versions, utc_now
from llmecon.runs.recorded import RecordedCalls
from llmecon.runs.reference import gain_closed_of, reference_welfare
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

RunStatus = EndStatus
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
    error: str | None = None
    """Why the run stopped early (``failed``, ``deadline_exceeded``, …)."""

    @property
    def complete(self) -> bool:
        return self.status == "completed"


def default_run_id(config: RunConfig) -> str:
    """``<timestamp>-<planner>-s<seed>-<random>``: readable, and unique when many runs
    start in the same second (a collision would be refused, never overwritten)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    planner = config.planner.rsplit("/", 1)[-1]
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in planner)[:40]
    return f"{stamp}-{safe.strip('.-') or 'run'}-s{config.seed}-{secrets.token_hex(3)}"


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
        spent_usd: float = 0.0,
    ) -> None:
        """``recorded``: serve model calls from a log (replay); with
        ``live_after_recorded`` calls with no recording go to the live model (resume, fork).
        ``log``: continue writing an existing run log (resume) instead of creating one;
        ``spent_usd``: what the run spent before (resume), counted in its budget."""
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
        if self.config.prompts and not (
            is_baseline(self.config.planner) and self.config.workers == "rational"
        ):
            check_templates(self.library)
        replaying = recorded is not None and not live_after_recorded
        #: stops the run when model calls keep failing (off for offline replays, which
        #: re-enact recorded failures)
        self.breaker = CircuitBreaker(
            self.config.max_consecutive_failures,
            self.config.max_failure_share,
            enabled=not replaying,
        )
        self.models = ModelPool(
            self.config, self._on_call, recorded, live_after_recorded, spent_usd
        )
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
            self._write_prompts()
        self.records: list[YearRecord] = []
        self.fallbacks = 0
        #: agent decisions made (planner proposals and worker choices), for the share of
        #: them that were fallbacks
        self.decisions = 0
        #: set when the log already holds a ``run_started`` event (resume)
        self.started = log is not None

    def _manifest(self) -> Manifest:
        uses_llm = bool(self.models.models)
        return Manifest(
            run_id=self.run_id,
            created=utc_now(),
            seed=self.config.seed,
            config=manifest_config(self.config),
            population=self.source.description,
            models={"planner": self.config.planner, "workers": str(self.config.workers)},
            prompts=self.library.hashes() if uses_llm else {},
            endpoints=self.models.endpoints(),
            package_versions=package_versions(),
            **self.manifest_extra,
        )

    def _write_prompts(self) -> None:
        """Copy the templates the run renders into ``prompts/`` of the run folder, so a
        replay or resume renders exactly the same prompts after the shipped ones change."""
        if self.log is None or not self.models.models:
            return
        folder = self.log.directory / PROMPTS_COPY_NAME
        folder.mkdir(exist_ok=True)
        for name in self.library.names():
            (folder / name).write_bytes(self.library.path(name).read_bytes())

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

    def _on_call(self, record: CallRecord, endpoint: str = "") -> None:
        """Model-layer hook: log every call as an ``llm_call`` event (+ new blobs)."""
        ctx = current_call()
        self.breaker.record(record.model, endpoint, record.error_type, record.error_message or "")
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
                    endpoint=endpoint or None,
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
        self.decisions += 1
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
        self._check_breaker()
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
            self.decisions += len(hours)
            self._check_breaker()
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

    def _check_breaker(self) -> None:
        """Stop the year before the next batch of calls once the breaker has tripped."""
        if self.breaker.reason is not None:
            raise _BreakerTripped(self.breaker.reason)

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
        """Run the remaining years (all of them, or those after restored records).

        Ends with status ``completed``, ``budget_exceeded`` or ``deadline_exceeded``
        (returned), or logs ``failed``/``interrupted`` and raises: :class:`RunFailedError`
        when the circuit breaker tripped, the original exception otherwise. Every status
        but ``completed`` can be resumed.
        """
        if not self.started:
            self._emit(RunStarted(run_id=self.run_id))
            self.started = True
        status: RunStatus = "completed"
        error: str | None = None
        deadline = (
            time.monotonic() + self.config.deadline if self.config.deadline is not None else None
        )
        try:
            for year in range(len(self.records), self.years):
                outcome = await self._guarded_year(year, deadline)
                if isinstance(outcome, str):
                    status, error = (
                        ("deadline_exceeded", outcome)
                        if outcome.startswith("deadline")
                        else ("failed", outcome)
                    )
                    break
                if progress is not None:
                    progress(outcome, {"fallbacks": self.fallbacks, **self.models.totals()})
                if self.models.budget_exceeded and year + 1 < self.years:
                    status = "budget_exceeded"
                    error = f"the budget of ${self.config.max_cost:g} was reached"
                    break
        except (KeyboardInterrupt, asyncio.CancelledError):
            status, error = "interrupted", "interrupted (Ctrl-C or cancelled)"
            raise
        except BaseException as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            summary = self.summary() if status != "interrupted" and self.records else {}
            self._emit(
                RunCompleted(
                    status=status,
                    years_completed=len(self.records),
                    summary=summary,
                    error=error,
                )
            )
            if self.log is not None:
                self.log.close()
            await self.models.aclose()
        result = RunResult(
            self.config,
            self.records,
            status,
            summary,
            self.log.directory if self.log else None,
            self.fallbacks,
            error,
        )
        if status == "failed":
            where = f"; resume with `llmecon resume {result.run_dir}`" if result.run_dir else ""
            raise RunFailedError(f"run stopped: {error}{where}", result)
        return result

    async def _guarded_year(self, year: int, deadline: float | None) -> YearRecord | str:
        """Run one year, or stop it when the breaker trips or the deadline passes
        (returns the reason; the year's partial events stay in the log for resume)."""
        if self.breaker.reason is not None:
            return self.breaker.reason
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return f"deadline of {self.config.deadline:g} s reached before year {year}"
        work = asyncio.ensure_future(self.run_year(year))
        tripped = asyncio.ensure_future(self.breaker.wait())
        try:
            done, _ = await asyncio.wait(
                {work, tripped}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            tripped.cancel()
            if not work.done():
                work.cancel()
                with contextlib.suppress(BaseException):
                    await work
        if work in done:
            try:
                return work.result()
            except _BreakerTripped as stop:
                return str(stop)
        if tripped in done:
            return tripped.result()
        return f"deadline of {self.config.deadline:g} s reached during year {year}"

    def run(self, progress: ProgressCallback | None = None) -> RunResult:
        """Run synchronously; inside a running event loop (Jupyter) the run goes to a
        worker thread with its own loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.run_async(progress))
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="llmecon-run") as pool:
            return pool.submit(asyncio.run, self.run_async(progress)).result()

    def summary(self) -> dict[str, Any]:
        """Final and best SWF, the share of the none → oracle gain closed, against the
        status quo and the oracle, and model usage."""
        swfs = [r.metrics.swf for r in self.records]
        out: dict[str, Any] = {
            "final_swf": swfs[-1],
            "best_swf": max(swfs),
            "best_year": int(np.argmax(swfs)),
            "fallbacks": self.fallbacks,
            "decisions": self.decisions,
            "fallback_share": self.fallbacks / self.decisions if self.decisions else 0.0,
        }
        if self.models.models:
            out.update(self.models.totals())
        if self.config.reference:
            out.update(reference_welfare(self.planner_context))
            # The headline: share of the none → oracle welfare gain closed (None = n/a).
            out["gain_closed"] = gain_closed_of(swfs[-1], out)
            for key in ("status_quo_swf", "oracle_swf"):
                ref = out.get(key)
                if ref:
                    out[f"final_pct_of_{key.removesuffix('_swf')}"] = 100.0 * swfs[-1] / ref
        return out


#: Folder of a run holding a copy of the templates it used.
PROMPTS_COPY_NAME = "prompts"

#: Config fields holding server URLs, written to the manifest without credentials.
URL_FIELDS = ("api_base", "planner_api_base", "workers_api_base", "voters_api_base")


def manifest_config(config: RunConfig) -> dict[str, Any]:
    """The config as the manifest records it: server URLs lose their credentials (a
    resume takes them again from the command line, e.g. ``--workers-api-base``)."""
    from llmecon.models import redact_url

    data = config.model_dump(mode="json")
    for name in URL_FIELDS:
        if data.get(name):
            data[name] = redact_url(data[name])
    return data


class _BreakerTripped(Exception):
    """Raised inside a year when the circuit breaker has tripped."""


def check_templates(library: Any) -> None:
    """Render every template of an overridden prompt folder before the run starts (the
    check of ``llmecon prompts check``), so a template error never stops a run midway."""
    from llmecon.runs.prompt_examples import template_failures

    failures = template_failures(library)
    if failures:
        raise ConfigError(
            "prompts: templates fail to render (run `llmecon prompts check --prompts DIR`):\n  "
            + "\n  ".join(failures)
        )


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
