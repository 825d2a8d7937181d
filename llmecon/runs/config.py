"""Run configuration: one pydantic model, loadable from YAML/TOML, overridable by CLI."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from llmecon.economy.schedule import ScheduleError, parse_brackets


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the field."""


class RunConfig(BaseModel):
    """Everything that defines a run. Recorded, fully resolved, in the manifest."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    planner: str = "saez"
    """Planner: a baseline (``none``, ``us-federal``, ``flat:<r>``, ``fixed:<r,…>``,
    ``saez``, ``saez-empirical``, ``oracle``, ``ucb``, ``thompson``, ``egreedy``) or a
    model name for the LLM planner (``gpt-4o``, ``local/smollm2-135m``, ``mock/default``)."""

    workers: str = "rational"
    """``rational`` (exact best response) or a model name for LLM workers."""

    agents: int = Field(100, ge=1, le=10_000_000)
    """Number of worker agents (personas)."""

    years: int = Field(20, ge=1, le=10_000)
    """Number of tax years to simulate."""

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

    elasticity: float = Field(0.4, gt=0, le=5)
    """ε, the elasticity of hours to the net-of-tax wage."""

    max_weekly_hours: float = Field(80.0, gt=0, le=168)
    """Upper bound of weekly hours."""

    crra: float | None = Field(None, gt=0)
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
    """Name of the run folder; default ``<timestamp>-<planner>``."""

    reference: bool = True
    """Compute status-quo and oracle reference welfare for the summary."""

    @field_validator("brackets")
    @classmethod
    def _check_brackets(cls, value: str) -> str:
        try:
            parse_brackets(value)
        except ScheduleError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("planner", "workers")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @model_validator(mode="after")
    def _check_rates(self) -> RunConfig:
        if self.min_rate > self.max_rate:
            raise ValueError(f"min_rate ({self.min_rate}) exceeds max_rate ({self.max_rate})")
        return self


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
    text = p.read_text(encoding="utf-8")
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
        return RunConfig(**data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, origin)) from None
