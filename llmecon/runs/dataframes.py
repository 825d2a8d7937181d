"""A run folder as pandas DataFrames: :func:`load_run` (``llmecon.load_run``).

The JSONL event log is the source of truth; every table here is derived from it (and
from the run's population, rebuilt when possible, for per-agent incomes). Logs of
older formats are migrated (:func:`llmecon.runs.log.migrate_log`), newer ones refused.
Event types this release does not know (say, added by a newer minor release) are kept
as :class:`OtherEvent` rather than rejected; ``vote_round`` events are tabulated from
their fields whether or not they are typed.

Example::

    import llmecon

    run = llmecon.load_run("runs/my-run")
    run.years[["year", "swf", "revenue_usd"]]
    run.agents.query("year == 4").income_usd.describe()
"""

from __future__ import annotations

import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from llmecon.economy import Economy, TaxSchedule, YearMetrics
from llmecon.runs.events import (
    AnyEvent,
    Blob,
    Fallback,
    LLMCall,
    OtherEvent,
    RunCompleted,
    ScheduleSet,
    WorkerStep,
    YearCompleted,
)
from llmecon.runs.log import Manifest
from llmecon.runs.restore import restore_run

#: Names of the per-year metrics, in the order of :class:`YearMetrics`.
#: (The SWFs registered at import; the tables call :meth:`YearMetrics.names`, so SWFs
#: registered later get their columns too.)
METRIC_NAMES: tuple[str, ...] = YearMetrics.names()

AGENT_COLUMNS = (
    "year",
    "agent_index",
    "agent_id",
    "weight",
    "hourly_wage_usd",
    "weekly_hours",
    "income_usd",
    "tax_usd",
    "rebate_usd",
    "consumption_usd",
    "utility",
    "marginal_rate",
)
CALL_COLUMNS = (
    "seq",
    "time",
    "year",
    "step",
    "role",
    "agent",
    "model",
    "schema_name",
    "attempts",
    "raw_output",
    "raw_outputs_json",
    "parsed_json",
    "input_tokens",
    "output_tokens",
    "latency_s",
    "retries",
    "repairs",
    "cached",
    "cost_usd",
    "error_type",
    "error_message",
    "fallback",
    "templates_json",
    "messages_json",
)
VOTE_COLUMNS = (
    "seq",
    "year",
    "rule",
    "source",
    "voters",
    "label",
    "origin",
    "share",
    "score",
    "candidate_swf",
    "winner",
    "is_winner",
    "winner_swf",
    "best_candidate",
    "turnout",
    "ballots",
    "abstentions",
    "rates_json",
)
FALLBACK_COLUMNS = ("seq", "year", "role", "agent", "reason", "action")

#: Tables written by ``llmecon export``, in order.
TABLE_NAMES = ("years", "agents", "calls", "votes", "fallbacks")


__all__ = ["OtherEvent", "RunData", "load_run"]


@dataclass
class RunData:
    """Everything in one run folder, as tables.

    Attributes:
        path: the run folder.
        manifest: the (migrated) manifest.
        events: every event in order (unknown types as :class:`OtherEvent`).
        years: one row per completed year: ``year``, ``source``, ``planner``, every
            metric of :class:`~llmecon.economy.YearMetrics`, ``rate_0`` … ``rate_{B-1}``,
            ``llm_calls`` and ``fallbacks`` of that year.
        agents: one row per agent and completed year (the hours of the year's last
            decision step; survey ``weight`` (mean 1), incomes, taxes, consumption,
            utility recomputed from the population, NaN when it could not be rebuilt,
            see ``population_note``; weight aggregates by ``weight``).
        calls: one row per ``llm_call`` (list/dict fields as JSON strings; with
            ``load_run(..., resolve_messages=True)`` also ``messages_text_json``).
        votes: one row per candidate of each ``vote_round`` event.
        fallbacks: one row per ``fallback`` event.
        edges: the bracket lower edges (annual USD).
        economy: the rebuilt economy, or ``None``.
        population_note: how the population was obtained (or why not).
        blobs: sha256 -> prompt text.
    """

    path: Path
    manifest: Manifest
    events: list[AnyEvent]
    years: pd.DataFrame
    agents: pd.DataFrame
    calls: pd.DataFrame
    votes: pd.DataFrame
    fallbacks: pd.DataFrame
    edges: tuple[float, ...]
    economy: Economy | None = None
    population_note: str = ""
    blobs: dict[str, str] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @property
    def summary(self) -> dict[str, Any]:
        """The ``run_completed`` summary (empty when the run did not finish)."""
        done = [e for e in self.events if isinstance(e, RunCompleted)]
        return dict(done[-1].summary) if done else {}

    @property
    def gain_closed(self) -> float | None:
        """The headline metric (docs/design.md §2.9): the share of the welfare gain from
        no tax to the oracle the final year closes, ``(W − W_none) / (W_oracle −
        W_none)``; ``None`` without both references in the summary (a run without
        ``reference``, or not completed) or when no tax is optimal."""
        return self._gain(float(self.years["swf"].iloc[-1])) if len(self.years) else None

    @property
    def gain_closed_by_year(self) -> pd.Series:
        """:attr:`gain_closed` of every completed year (indexed like :attr:`years`; NaN
        where it is undefined)."""
        gains = [self._gain(float(w)) for w in self.years["swf"]] if len(self.years) else []
        return pd.Series(
            [np.nan if g is None else g for g in gains],
            index=self.years.index,
            name="gain_closed",
            dtype=float,
        )

    @property
    def pct_of_oracle(self) -> float | None:
        """Secondary: the final SWF in percent of the oracle's (``W / W_oracle``, which
        depends on the SWF's origin and inverts for negative SWFs)."""
        oracle = self.summary.get("oracle_swf")
        if not len(self.years) or not isinstance(oracle, int | float) or not oracle:
            return None
        return 100.0 * float(self.years["swf"].iloc[-1]) / float(oracle)

    def _gain(self, swf: float) -> float | None:
        from llmecon.economy.welfare import gain_closed

        summary = self.summary
        none, oracle = summary.get("none_swf"), summary.get("oracle_swf")
        if not isinstance(none, int | float) or not isinstance(oracle, int | float):
            return None
        return gain_closed(swf, float(none), float(oracle))

    @property
    def status(self) -> str:
        """``completed``, ``budget_exceeded``, ``interrupted``, ``failed``, or
        ``incomplete`` when the log has no ``run_completed`` event (still running or killed)."""
        done = [e for e in self.events if isinstance(e, RunCompleted)]
        return done[-1].status if done else "incomplete"

    def tables(self) -> dict[str, pd.DataFrame]:
        """The derived tables by name (see :data:`TABLE_NAMES`)."""
        return {name: getattr(self, name) for name in TABLE_NAMES}

    def messages(self, seq: int) -> list[tuple[str, str]]:
        """The (role, text) messages of the ``llm_call`` event with sequence number ``seq``."""
        for e in self.events:
            if isinstance(e, LLMCall) and e.seq == seq:
                return [(m.role, self.blobs.get(m.sha256, "")) for m in e.messages]
        raise KeyError(f"no llm_call with seq {seq}")

    def events_of_type(self, type_name: str) -> list[dict[str, Any]]:
        """Events of one ``type`` as plain dicts (typed or not)."""
        return [event_dict(e) for e in self.events if e.type == type_name]


def event_dict(event: BaseModel) -> dict[str, Any]:
    """An event (typed or :class:`OtherEvent`) as a plain JSON-like dict."""
    return event.model_dump(mode="json")


# -- tables ------------------------------------------------------------------------------------


def _frame(rows: list[dict[str, Any]], columns: typing.Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns))


def _years_table(events: list[AnyEvent], n_rates: int) -> pd.DataFrame:
    metric_names = YearMetrics.names()
    schedules: dict[int, ScheduleSet] = {}
    calls: dict[int, int] = {}
    fallbacks: dict[int, int] = {}
    rows: list[dict[str, Any]] = []
    for e in events:
        if isinstance(e, ScheduleSet):
            schedules[e.year] = e
        elif isinstance(e, LLMCall):
            calls[e.year] = calls.get(e.year, 0) + 1
        elif isinstance(e, Fallback):
            fallbacks[e.year] = fallbacks.get(e.year, 0) + 1
        elif isinstance(e, YearCompleted):
            s = schedules.get(e.year)
            row: dict[str, Any] = {
                "year": e.year,
                "source": s.source if s else None,
                "planner": s.planner if s else None,
            }
            row.update({name: e.metrics.get(name, math.nan) for name in metric_names})
            row.update({k: v for k, v in e.metrics.items() if k not in row})
            rates = list(s.rates) if s else []
            row.update(
                {f"rate_{b}": rates[b] if b < len(rates) else math.nan for b in range(n_rates)}
            )
            rows.append(row)
    for row in rows:
        row["llm_calls"] = calls.get(row["year"], 0)
        row["fallbacks"] = fallbacks.get(row["year"], 0)
    base = ["year", "source", "planner", *metric_names]
    rate_cols = [f"rate_{b}" for b in range(n_rates)]
    extra = [k for k in (rows[0] if rows else {}) if k not in base and k not in rate_cols]
    extra = [k for k in extra if k not in ("llm_calls", "fallbacks")]
    return _frame(rows, [*base, *extra, *rate_cols, "llm_calls", "fallbacks"])


def _agents_table(events: list[AnyEvent], economy: Economy | None) -> pd.DataFrame:
    schedules: dict[int, ScheduleSet] = {}
    hours: dict[int, list[float]] = {}
    frames: list[pd.DataFrame] = []
    for e in events:
        if isinstance(e, ScheduleSet):
            schedules[e.year] = e
        elif isinstance(e, WorkerStep):
            hours[e.year] = e.weekly_hours  # the last step of a year counts
        elif isinstance(e, YearCompleted) and e.year in hours:
            h = np.asarray(hours[e.year], dtype=float)
            n = h.size
            frame: dict[str, Any] = {
                "year": np.full(n, e.year),
                "agent_index": np.arange(n),
                "agent_id": [None] * n,
                "weekly_hours": h,
            }
            s = schedules.get(e.year)
            if economy is not None and s is not None and economy.size == n:
                schedule = TaxSchedule(tuple(s.edges), tuple(s.rates))
                out = economy.outcome(schedule, h)
                frame.update(
                    agent_id=list(economy.population.ids),
                    weight=economy.population.weight,
                    hourly_wage_usd=economy.population.hourly_wage_usd,
                    income_usd=out.income_usd,
                    tax_usd=out.tax_usd,
                    rebate_usd=np.full(n, out.rebate_usd),
                    consumption_usd=out.consumption_usd,
                    utility=out.utility,
                    marginal_rate=schedule.marginal_rate(out.income_usd),
                )
            frames.append(pd.DataFrame(frame))
    if not frames:
        return _frame([], AGENT_COLUMNS)
    return pd.concat(frames, ignore_index=True).reindex(columns=list(AGENT_COLUMNS))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _calls_table(
    events: list[AnyEvent], blobs: dict[str, str], resolve_messages: bool
) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for e in events:
        if not isinstance(e, LLMCall):
            continue
        row = {
            "seq": e.seq,
            "time": e.time,
            "year": e.year,
            "step": e.step,
            "role": e.role,
            "agent": e.agent,
            "model": e.model,
            "schema_name": e.schema_name,
            "attempts": len(e.raw_outputs),
            "raw_output": e.raw_outputs[-1] if e.raw_outputs else None,
            "raw_outputs_json": _json(e.raw_outputs),
            "parsed_json": _json(e.parsed) if e.parsed is not None else None,
            "input_tokens": e.input_tokens,
            "output_tokens": e.output_tokens,
            "latency_s": e.latency_s,
            "retries": e.retries,
            "repairs": e.repairs,
            "cached": e.cached,
            "cost_usd": e.cost_usd,
            "error_type": e.error_type,
            "error_message": e.error_message,
            "fallback": e.fallback,
            "templates_json": _json(e.templates),
            "messages_json": _json([m.model_dump() for m in e.messages]),
        }
        if resolve_messages:
            texts = [{"role": m.role, "content": blobs.get(m.sha256)} for m in e.messages]
            row["messages_text_json"] = _json(texts)
        rows.append(row)
    columns = [*CALL_COLUMNS, *(["messages_text_json"] if resolve_messages else [])]
    return _frame(rows, columns)


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return _json(value)


def _number(value: Any) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else math.nan


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _ballot_counts(ballots: Any) -> tuple[Any, Any]:
    """(counted ballots, abstentions) from a list of ballots; a bare count as is."""
    if isinstance(ballots, list):
        abstained = sum(1 for b in ballots if isinstance(b, dict) and b.get("abstained"))
        return len(ballots) - abstained, abstained
    return _scalar(ballots), None


def _votes_table(events: list[AnyEvent]) -> pd.DataFrame:
    """One row per candidate of each ``vote_round`` (typed or not: read as a dict)."""
    rows: list[dict[str, Any]] = []
    for e in events:
        if e.type != "vote_round":
            continue
        d = event_dict(e)
        shares, scores, swfs = (_mapping(d.get(k)) for k in ("shares", "scores", "candidate_swf"))
        candidates = d.get("candidates") or [{"label": k} for k in shares]
        counted, abstentions = _ballot_counts(d.get("ballots"))
        for cand in candidates:
            cand = cand if isinstance(cand, dict) else {"label": cand}
            label = str(cand.get("label"))
            rows.append(
                {
                    "seq": d.get("seq"),
                    "year": d.get("year"),
                    "rule": _scalar(d.get("rule")),
                    "source": _scalar(d.get("source")),
                    "voters": _scalar(d.get("voters")),
                    "label": label,
                    "origin": _scalar(cand.get("origin")),
                    "share": _number(shares.get(label)),
                    "score": _number(scores.get(label)),
                    "candidate_swf": _number(swfs.get(label)),
                    "winner": _scalar(d.get("winner")),
                    "is_winner": label == str(d.get("winner")),
                    "winner_swf": _number(d.get("winner_swf")),
                    "best_candidate": _scalar(d.get("best_candidate")),
                    "turnout": _number(d.get("turnout")),
                    "ballots": counted,
                    "abstentions": abstentions,
                    "rates_json": _json(cand.get("rates")),
                }
            )
    return _frame(rows, VOTE_COLUMNS)


def _fallbacks_table(events: list[AnyEvent]) -> pd.DataFrame:
    rows = [{k: getattr(e, k) for k in FALLBACK_COLUMNS} for e in events if isinstance(e, Fallback)]
    return _frame(rows, FALLBACK_COLUMNS)


def _check_economy(
    economy: Economy | None, note: str, events: list[AnyEvent]
) -> tuple[Economy | None, str]:
    """Keep the rebuilt economy only if it reproduces the last logged year's metrics."""
    if economy is None:
        return None, note
    last = next((e for e in reversed(events) if isinstance(e, YearCompleted)), None)
    step = next((e for e in reversed(events) if isinstance(e, WorkerStep)), None)
    sched = next((e for e in reversed(events) if isinstance(e, ScheduleSet)), None)
    if last is None or step is None or sched is None:
        return economy, note + " (no completed year to check it against)"
    if economy.size != len(step.weekly_hours):
        return (
            None,
            f"{note}, but it has {economy.size} workers and the log {len(step.weekly_hours)}",
        )
    hours = next(
        e.weekly_hours
        for e in reversed(events)
        if isinstance(e, WorkerStep) and e.year == last.year
    )
    schedule = next(
        e for e in reversed(events) if isinstance(e, ScheduleSet) and e.year == last.year
    )
    metrics = economy.metrics(
        economy.outcome(TaxSchedule(tuple(schedule.edges), tuple(schedule.rates)), hours)
    ).to_dict()
    for key in ("mean_income_usd", "swf"):
        logged = last.metrics.get(key)
        if logged is not None and not math.isclose(
            metrics[key], logged, rel_tol=1e-6, abs_tol=1e-6
        ):
            return (
                None,
                f"{note}, but it does not reproduce the logged {key}: per-agent data omitted",
            )
    return economy, note + " (reproduces the logged metrics)"


# -- entry point -------------------------------------------------------------------------------


def load_run(path: str | Path, *, resolve_messages: bool = False) -> RunData:
    """Load a run folder into :class:`RunData` (pandas DataFrames).

    Args:
        path: the run folder (``runs/<run-id>``).
        resolve_messages: add the full prompt text of every call to ``calls``
            (``messages_text_json``); off by default since prompts are large.

    Raises:
        RunLogError: not a run folder, a corrupt log, or a log format newer than this
            release.
    """
    directory = Path(path)
    run = restore_run(directory, tolerant=True)
    manifest, events = run.manifest, run.events
    blobs = {e.sha256: e.text for e in events if isinstance(e, Blob)}
    first = next((e for e in events if isinstance(e, ScheduleSet)), None)
    if first is not None:
        edges = tuple(first.edges)
    else:
        from llmecon.economy import parse_brackets

        edges = parse_brackets(str(manifest.config.get("brackets", "us-federal-2025")))
    economy, note = run.economy()
    economy, note = _check_economy(economy, note, events)
    return RunData(
        path=directory,
        manifest=manifest,
        events=events,
        years=_years_table(events, len(edges)),
        agents=_agents_table(events, economy),
        calls=_calls_table(events, blobs, resolve_messages),
        votes=_votes_table(events),
        fallbacks=_fallbacks_table(events),
        edges=edges,
        economy=economy,
        population_note=note,
        blobs=blobs,
    )
