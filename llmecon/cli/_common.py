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
            "--agents", type=int, help="Number of worker agents (personas). [default: 100]"
        ),
        click.option("--years", type=int, help="Tax years to simulate. [default: 20]"),
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
    """Turn the library's user-facing errors into clean CLI messages (no traceback)."""
    from llmecon.economy import PopulationError, ScheduleError
    from llmecon.planners import PlannerError
    from llmecon.runs import ConfigError, RunLogError

    try:
        yield
    except (ConfigError, PlannerError, ScheduleError, PopulationError, RunLogError) as exc:
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
