"""Shared CLI helpers: options used by several commands, error translation, progress."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

F = TypeVar("F", bound=Callable[..., Any])

#: Progress and messages go to stderr; results (tables) to stdout, wide enough to read
#: when piped.
console = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 140)


def economy_options(func: F) -> F:
    """Options that define the economy, shared by ``run`` and ``compare``."""
    options = [
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False),
            help="YAML or TOML file with run settings; command-line options override it.",
        ),
        click.option(
            "--agents",
            type=int,
            help="Number of worker agents (personas). [default: 16 with the embedded "
            "model's workers, 100 with API-model workers, 1000 with rational workers]",
        ),
        click.option(
            "--years",
            type=int,
            help="Tax years to simulate. [default: 5 with the embedded model's workers, else 20]",
        ),
        click.option(
            "--personas",
            help="'default' (shipped Census-calibrated bank), 'synthetic', or a persona "
            "JSONL file.",
        ),
        click.option(
            "--swf",
            type=click.Choice(
                ["utilitarian", "inverse_income", "rawlsian", "equality_times_productivity"]
            ),
            help="Planner objective (all four are reported). [default: inverse_income]",
        ),
        click.option(
            "--brackets",
            help="Bracket set: us-federal-2025, flat, three, or comma-separated edges in USD.",
        ),
        click.option(
            "--elasticity",
            type=float,
            help="ε, elasticity of hours to the net-of-tax wage. [default: 0.4]",
        ),
        click.option(
            "--crra",
            type=float,
            help="η for CRRA consumption utility (income effects); default quasi-linear.",
        ),
        click.option(
            "--rebate-share",
            type=float,
            help="Share of revenue rebated as a lump sum. [default: 1]",
        ),
        click.option(
            "--min-rate",
            type=float,
            help="Lowest marginal rate a planner may set, fraction. [default: 0]",
        ),
        click.option(
            "--max-rate",
            type=float,
            help="Highest marginal rate a planner may set, fraction. [default: 1]",
        ),
        click.option("--seed", type=int, help="Master seed. [default: 0]"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


ECONOMY_KEYS = (
    "agents",
    "years",
    "personas",
    "swf",
    "brackets",
    "elasticity",
    "crra",
    "rebate_share",
    "min_rate",
    "max_rate",
    "seed",
)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn the library's user-facing errors into clean CLI messages (no traceback):
    one ``Error: …`` line naming the file and field, exit status 1."""
    from llmecon._files import TextFileError
    from llmecon.economy import PopulationError, ScheduleError
    from llmecon.personas import PersonaError
    from llmecon.planners import PlannerError
    from llmecon.prompts import PromptError
    from llmecon.runs import ConfigError, RunLogError

    try:
        yield
    except (
        ConfigError,
        PlannerError,
        ScheduleError,
        PopulationError,
        RunLogError,
        PersonaError,
        PromptError,
        TextFileError,
    ) as exc:
        raise click.ClickException(str(exc)) from None
    except FileNotFoundError as exc:
        raise click.ClickException(f"file not found: {exc.filename}") from None


def year_progress() -> Progress:
    """A progress bar with a free-text status field (``status=``), on stderr."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def config_option(name: str, **kwargs: Any) -> Callable[[F], F]:
    """A ``--kebab-name`` option for the ``RunConfig`` field ``name``: its help is the
    field's documentation and its default the field's (shown, never applied: an unset
    option leaves the config file's or the field's value)."""
    from llmecon.runs.config import RunConfig

    field = RunConfig.model_fields[name]
    help_text = " ".join((field.description or "").split())
    default = field.default
    if default is not None and kwargs.get("type") is not None:
        help_text += (
            f" [default: {default:g}]" if isinstance(default, float) else (f" [default: {default}]")
        )
    flag = "--" + name.replace("_", "-")
    return click.option(flag, name, help=help_text, **kwargs)


#: Options that say how a run is carried out; ``run`` and ``resume`` both take them.
OPERATIONAL_OPTIONS: dict[str, dict[str, Any]] = {
    "timeout": {"type": float},
    "max_retries": {"type": int},
    "max_concurrency": {"type": int},
    "max_reply_chars": {"type": int},
    "deadline": {"type": float},
    "max_consecutive_failures": {"type": int},
    "max_failure_share": {"type": float},
    "max_cost": {"type": float},
    "price": {"metavar": "IN,OUT"},
    "api_base": {},
    "planner_api_base": {},
    "workers_api_base": {},
    "voters_api_base": {},
    "cache_dir": {"type": click.Path(file_okay=False)},
}


def operational_options(func: F) -> F:
    """The :data:`OPERATIONAL_OPTIONS` (timeouts, retries, circuit breaker, deadline,
    budget, servers), shared by ``run`` and ``resume``."""
    for name, kwargs in reversed(OPERATIONAL_OPTIONS.items()):
        func = config_option(name, **kwargs)(func)
    return func


#: Exit codes of ``run`` and ``resume`` by how the run ended.
EXIT_CODES = {
    "completed": 0,
    "failed": 1,
    "budget_exceeded": 3,
    "deadline_exceeded": 3,
    "interrupted": 130,
}


class YearDisplay:
    """Progress of a run's tax years: a live bar on a terminal, one plain line per
    year otherwise (CI logs, pipes), so a long run is never silent."""

    def __init__(self, total: int, completed: int = 0, status: str = "starting…") -> None:
        self.live = console.is_terminal
        self.progress = year_progress()
        self.task = self.progress.add_task(
            "tax years", total=total, completed=completed, status=status
        )
        self.total = total
        self.calls = ""

    def __enter__(self) -> YearDisplay:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.progress.stop()

    def on_calls(self, totals: dict[str, Any]) -> None:
        cost = totals["cost_usd"]
        self.calls = (
            f"  calls {totals['calls']}  tokens "
            f"{totals['input_tokens'] + totals['output_tokens']:,}  "
            f"cost {'n/a' if cost is None else f'${cost:.4f}'}  "
            f"failures {totals['failures']}"
        )
        if self.live:
            self.progress.update(self.task, status=self._year + self.calls)

    _year = ""

    def on_year(self, record: Any, stats: dict[str, Any], note: str = "") -> None:
        self._year = (
            f"year {record.year}  SWF {record.metrics.swf:,.1f}  fallbacks {stats['fallbacks']}"
            + note
        )
        self.progress.advance(self.task)
        if self.live:
            self.progress.update(self.task, status=self._year + self.calls)
        else:
            console.print(f"tax year {record.year + 1}/{self.total}: {self._year}{self.calls}")
