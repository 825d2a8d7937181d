"""Run configuration: one pydantic model, loadable from YAML/TOML, overridable by CLI."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from llmecon.economy.schedule import ScheduleError, parse_brackets

#: The embedded offline model: the default planner and workers.
DEFAULT_MODEL = "local/smollm2-135m"


#: A run id names one folder inside ``out``: no separators, no ``..``, no hidden names.
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the field."""


class RunConfig(BaseModel):
    """Everything that defines a run. Recorded, fully resolved, in the manifest."""

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,  # field docs are the CLI's --help texts
    )

    planner: str = DEFAULT_MODEL
    """Planner: a baseline (``none``, ``us-federal``, ``flat:<r>``, ``fixed:<r,…>``,
    ``saez``, ``saez-empirical``, ``oracle``, ``ucb``, ``thompson``, ``egreedy``) or a
    model name for the LLM planner (``gpt-4o``, ``local/smollm2-135m``, ``mock/default``).
    Default: the embedded offline model."""

    workers: str | None = None
    """``rational`` (exact best response) or a model name for LLM workers. Default: the
    planner's model when the planner is an LLM, else ``rational``."""

    agents: int | None = Field(None, ge=1, le=10_000_000)
    """Number of worker agents (personas). Default: 16 with embedded-model workers (a
    run of a few minutes on 2 cores), 100 with API-model workers, 1 000 with rational."""

    years: int | None = Field(None, ge=1, le=10_000)
    """Number of tax years. Default: 5 with embedded-model workers, else 20."""

    worker_steps: int = Field(1, ge=1, le=100)
    """Hour decisions per worker per year; the last one counts."""

    personas: str = "default"
    """``default`` (the shipped persona bank), ``synthetic`` (log-normal stand-in), or
    a path to a persona bank (JSONL)."""

    swf: Literal["utilitarian", "inverse_income", "rawlsian", "equality_times_productivity"] = (
        "inverse_income"
    )
    """The planner's objective; all four are always reported."""

    brackets: str = "us-federal-2025"
    """Bracket set: ``us-federal-2025``, ``flat``, ``three`` or comma-separated edges (USD)."""

    elasticity: float = Field(0.4, ge=0.01, le=5)
    """ε, the elasticity of hours to the net-of-tax wage."""

    max_weekly_hours: float = Field(80.0, gt=0, le=168)
    """Upper bound of weekly hours."""

    crra: float | None = Field(None, gt=0, le=20)
    """η for CRRA consumption utility (income effects); unset = quasi-linear."""

    rebate_share: float = Field(1.0, ge=0, le=1)
    """Share of revenue returned as an equal lump sum."""

    min_rate: float = Field(0.0, ge=0, le=1)
    """Lowest marginal rate a planner may set (fraction)."""

    max_rate: float = Field(1.0, ge=0, le=1)
    """Highest marginal rate a planner may set (fraction)."""

    seed: int = Field(0, ge=0)
    """Master seed: persona draw, planner randomness, model sampling."""

    out: str = "runs"
    """Folder under which ``<run-id>/`` is written."""

    run_id: str | None = None
    """Name of the run folder (letters, digits, ``.``, ``_``, ``-``; no path separators);
    default ``<timestamp>-<planner>-s<seed>-<random>``, unique under concurrency."""

    reference: bool = True
    """Compute status-quo and oracle reference welfare for the summary."""

    # -- LLM agents ---------------------------------------------------------------------
    worker_style: Literal["persona", "rational"] = "persona"
    """LLM worker prompt: ``persona`` (who you are, the schedule, your history) or
    ``rational`` (also states the utility and shows a small outcome table)."""

    worker_history: int = Field(3, ge=0, le=50)
    """Past years of its own hours/income/tax each LLM worker sees."""

    worker_reasons: bool = False
    """Ask LLM workers for a short reason with their hours (more tokens)."""

    planner_history: int = Field(8, ge=1, le=200)
    """Most recent years shown to the LLM planner as demonstrations."""

    planner_best: int = Field(3, ge=0, le=50)
    """Best-so-far years shown to the LLM planner in addition to the recent ones."""

    trust_region: float = Field(0.10, gt=0, le=1)
    """Largest change of any rate from one year to the next for the LLM planner."""

    planner_hints: bool = False
    """Add per-bracket welfare-effect estimates (from the history) to the planner prompt."""

    planner_temperature: float | None = Field(None, ge=0, le=2)
    """Sampling temperature of the LLM planner (provider default when unset)."""

    worker_temperature: float | None = Field(None, ge=0, le=2)
    """Sampling temperature of LLM workers (provider default when unset)."""

    max_concurrency: int | None = Field(None, ge=1, le=4096)
    """Most requests in flight per model endpoint (provider default when unset)."""

    max_cost: float | None = Field(None, gt=0)
    """Budget in USD for the whole run (a resumed run counts what the log already
    spent): the run stops cleanly at the end of the year that reaches it. A model whose
    price is unknown needs ``price``."""

    price: tuple[float, float] | None = None
    """USD per million input and output tokens (``IN,OUT``) for models whose price is
    not in litellm's cost map (self-hosted servers, new models); overrides the map."""

    api_base: str | None = None
    """Base URL of an OpenAI-compatible server (vLLM, Ollama, llama.cpp server) for
    every role that has no base of its own (the embedded and mock models ignore it)."""

    planner_api_base: str | None = None
    """Base URL for the planner's model (overrides ``api_base``)."""

    workers_api_base: str | None = None
    """Base URL for the workers' model (overrides ``api_base``)."""

    voter_model: str | None = None
    """Model of LLM voters (and platform proposers). Default: the workers' model, or the
    planner's when the workers are rational."""

    voters_api_base: str | None = None
    """Base URL for the voters' model (overrides ``api_base``)."""

    # -- operations: what a resume may change (OPERATIONAL_FIELDS) -------------------------
    timeout: float = Field(60.0, gt=0, le=3600)
    """Seconds one model request may take once it is sent (time waiting for a free slot
    or for the local model is not counted)."""

    max_retries: int = Field(5, ge=0, le=50)
    """Retries of one request on 429, 5xx, timeouts and broken connections."""

    max_reply_chars: int = Field(20_000, ge=100, le=10_000_000)
    """Longest model reply kept; a longer one is a failed attempt (recorded truncated)."""

    deadline: float | None = Field(None, gt=0)
    """Wall-clock limit of the run in seconds: when it passes, the run stops with status
    ``deadline_exceeded`` (resumable). Unset = no limit."""

    max_consecutive_failures: int = Field(10, ge=1, le=1_000_000)
    """Circuit breaker: stop the run (status ``failed``, non-zero exit) after this many
    model calls in a row failed. Authentication errors stop it at once."""

    max_failure_share: float = Field(0.5, gt=0, le=1)
    """Circuit breaker: stop the run when more than this share of its model calls failed
    (checked once at least 20 calls were made)."""

    prompts: str | None = None
    """Folder of Jinja templates overriding the shipped ``prompts/`` (file by file)."""

    cache_dir: str | None = None
    """On-disk response cache for model calls (keyed by the full request)."""

    # -- voting (docs/voting.md) ---------------------------------------------------------
    vote_every: int | None = Field(None, ge=1, le=10_000)
    """Hold a voting round every V years (years V, 2V, …; year 0 is never a vote): the
    winner replaces the planner's proposal and stays enacted until the next round.
    Unset = no voting."""

    vote_rule: Literal["plurality", "borda", "approval"] = "plurality"
    """How ballots are counted: one vote each, full rankings (Borda points), or
    approval sets. Ties are broken uniformly at random (seeded)."""

    candidates: int = Field(2, ge=1, le=25)
    """K: alternatives put on the ballot next to the incumbent schedule."""

    candidate_source: Literal["planner", "platforms"] = "planner"
    """Where the K alternatives come from: the planner (an LLM planner is asked for K
    distinct proposals; a baseline gives its proposal plus K−1 seeded perturbations) or
    ``platforms`` proposed by K randomly drawn personas."""

    voters: Literal["rational", "llm"] | None = None
    """Who casts the ballots (every worker votes): ``rational`` (sincere ballots from
    each worker's utility at the best response under each candidate) or ``llm`` (each
    persona asked with the workers' model). Default: ``llm`` with LLM workers, else
    ``rational``."""

    @field_validator("brackets")
    @classmethod
    def _check_brackets(cls, value: str) -> str:
        try:
            parse_brackets(value)
        except ScheduleError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("run_id")
    @classmethod
    def _check_run_id(cls, value: str | None) -> str | None:
        if value is not None and not RUN_ID_PATTERN.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a valid run id: use 1-128 letters, digits, '.', '_' or "
                "'-', starting with a letter or digit (it names a folder inside --out)"
            )
        return value

    @field_validator("price", mode="before")
    @classmethod
    def _parse_price(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",")]
            if len(parts) != 2:
                raise ValueError("give IN,OUT: USD per million input and output tokens")
            try:
                return (float(parts[0]), float(parts[1]))
            except ValueError:
                raise ValueError(f"{value!r}: IN and OUT must be numbers") from None
        return value

    @field_validator("price")
    @classmethod
    def _check_price(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not all(0 <= v <= 10_000 for v in value):
            raise ValueError("prices must be between 0 and 10 000 USD per million tokens")
        return value

    @field_validator("planner", "workers", "voter_model")
    @classmethod
    def _non_empty(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value.strip() if value is not None else None

    @model_validator(mode="after")
    def _check_rates(self) -> RunConfig:
        if self.min_rate > self.max_rate:
            raise ValueError(f"min_rate ({self.min_rate}) exceeds max_rate ({self.max_rate})")
        return self

    def api_base_for(self, role: str) -> str | None:
        """The base URL of ``role``'s model (``planner``, ``workers`` or ``voters``)."""
        own = {
            "planner": self.planner_api_base,
            "workers": self.workers_api_base,
            "voters": self.voters_api_base,
        }.get(role)
        return own or self.api_base

    def resolved(self) -> RunConfig:
        """A copy with every default that depends on other fields filled in."""
        from llmecon.planners import is_baseline

        workers = self.workers
        if workers is None:
            workers = "rational" if is_baseline(self.planner) else self.planner
        local_workers = workers.startswith("local/")
        agents = self.agents or (16 if local_workers else 1000 if workers == "rational" else 100)
        years = self.years or (5 if local_workers else 20)
        update: dict[str, Any] = {"workers": workers, "agents": agents, "years": years}
        if self.vote_every is not None and self.voters is None:
            update["voters"] = "rational" if workers == "rational" else "llm"
        return self.model_copy(update=update)


#: Fields that say how a run is carried out, not what it computes: ``resume`` may change
#: them (a longer timeout, another server, a bigger budget) without changing the results.
OPERATIONAL_FIELDS = (
    "timeout",
    "max_retries",
    "max_concurrency",
    "max_reply_chars",
    "deadline",
    "max_consecutive_failures",
    "max_failure_share",
    "max_cost",
    "price",
    "api_base",
    "planner_api_base",
    "workers_api_base",
    "voters_api_base",
    "cache_dir",
)


def _format_validation_error(exc: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration ({origin}):"]
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see `llmecon run --help`)"
        lines.append(f"  {field}: {msg}")
    return "\n".join(lines)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) config file into a dict."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {p} is not UTF-8 text (byte {exc.start}): save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from None
    try:
        if p.suffix.lower() == ".toml":
            data: Any = tomllib.loads(text)
        else:
            data = yaml.safe_load(text) or {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot parse config file {p}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of field: value")
    # Accept kebab-case keys as written on the command line.
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def build_config(
    file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> RunConfig:
    """Config from an optional file, with CLI overrides (``None`` values ignored) on top."""
    data: dict[str, Any] = read_config_file(file) if file is not None else {}
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    origin = f"{file} + command line" if file is not None else "command line"
    try:
        return RunConfig(**data).resolved()
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, origin)) from None
