"""``llmecon export``: a logged run's tables as CSV (or Parquet) files."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

import click

from llmecon.cli._common import console, friendly_errors

if TYPE_CHECKING:
    import pandas as pd


def parquet_available() -> bool:
    """Whether pandas can write Parquet (it needs pyarrow, importable)."""
    if importlib.util.find_spec("pyarrow") is None:
        return False
    try:
        import pyarrow  # noqa: F401
    except ImportError:  # installed but broken (e.g. built for another numpy)
        return False
    return True


def check_run_dir(run_dir: str) -> Path:
    """``run_dir`` as a path: an existing folder (a run's or a sweep's), else a usage
    error saying why (:func:`~llmecon.runs.log.folder_problem`)."""
    from llmecon.runs.log import folder_problem

    path = Path(run_dir)
    if not path.is_dir():
        raise click.ClickException(folder_problem(path) or f"not a folder: {path}")
    return path


@click.command()
@click.argument("run_dir", metavar="RUN")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet"]),
    default="csv",
    show_default=True,
    help="File format of the tables (parquet is written with pyarrow).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Folder to write the tables to; not a run folder. [default: RUN/tables]",
)
def export(run_dir: str, fmt: str, out_dir: str | None) -> None:
    """Write the tables of the run in RUN: years, rates, agents, personas, calls,
    votes, fallbacks.

    One file per table (years.csv, …), derived from the event log as
    llmecon.load_run() sees it: every table starts with run_id and seed, and years
    are numbered as users see them (tax year 1 first). Per-agent incomes need the
    run's population (a personas.jsonl copy, or a synthetic population redrawn from
    the seed). Each file
    is written atomically (an interrupted export leaves the previous file or the new
    one, never a truncated one); a run folder is never written into.
    """
    from llmecon._files import atomic_write
    from llmecon.runs.dataframes import load_run
    from llmecon.runs.log import is_run_folder

    path = check_run_dir(run_dir)
    if fmt == "parquet" and not parquet_available():
        raise click.ClickException(
            "--format parquet needs pyarrow: pip install 'llmecon[parquet]' "
            "(or pip install pyarrow), or use --format csv"
        )
    target = Path(out_dir) if out_dir else path / "tables"
    if is_run_folder(target.resolve()):
        raise click.ClickException(
            f"refusing to export into {target}: it is a run folder and its files "
            "(years.csv, …) would be overwritten; pass --out a folder of its own "
            "(default RUN/tables)"
        )
    with friendly_errors():
        run = load_run(path)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"cannot create {target}: {exc.strerror or exc}") from None
    for name, frame in run.tables().items():
        file = target / f"{name}.{fmt}"

        def write(tmp: Path, frame: pd.DataFrame = frame) -> None:
            if fmt == "csv":
                frame.to_csv(tmp, index=False)
            else:
                frame.to_parquet(tmp, index=False)

        try:
            atomic_write(file, write)
        except OSError as exc:
            raise click.ClickException(f"cannot write {file}: {exc.strerror or exc}") from None
        click.echo(f"{file}  ({len(frame)} rows)")
    if run.economy is None:
        console.print(f"[yellow]note[/]: per-agent incomes omitted: {run.population_note}")
