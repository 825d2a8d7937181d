"""``llmecon export``: a logged run's tables as Parquet or CSV files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click

from llmecon.cli._common import console, friendly_errors


def parquet_available() -> bool:
    """Whether pandas can write Parquet (it needs pyarrow)."""
    return importlib.util.find_spec("pyarrow") is not None


def check_run_dir(run_dir: str) -> Path:
    path = Path(run_dir)
    if not path.exists():
        raise click.ClickException(f"run folder not found: {path}")
    if not path.is_dir():
        raise click.ClickException(f"not a run folder (not a directory): {path}")
    return path


@click.command()
@click.argument("run_dir", metavar="RUN")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "csv"]),
    default="parquet",
    show_default=True,
    help="File format of the tables.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Folder to write the tables to. [default: RUN/tables]",
)
def export(run_dir: str, fmt: str, out_dir: str | None) -> None:
    """Write the tables of the run in RUN: years, agents, calls, votes, fallbacks.

    One file per table (years.parquet, …), derived from the event log as
    llmecon.load_run() sees it. Per-agent incomes need the run's population (a
    personas.jsonl copy, or a synthetic population redrawn from the seed).
    """
    from llmecon.runs.dataframes import load_run

    path = check_run_dir(run_dir)
    if fmt == "parquet" and not parquet_available():
        raise click.ClickException(
            "parquet needs pyarrow: pip install pyarrow (or use --format csv)"
        )
    with friendly_errors():
        run = load_run(path)
    target = Path(out_dir) if out_dir else path / "tables"
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"cannot create {target}: {exc}") from None
    for name, frame in run.tables().items():
        file = target / f"{name}.{fmt}"
        if fmt == "csv":
            frame.to_csv(file, index=False)
        else:
            frame.to_parquet(file, index=False)
        click.echo(f"{file}  ({len(frame)} rows)")
    if run.economy is None:
        console.print(f"[yellow]note[/]: per-agent incomes omitted: {run.population_note}")
