"""``llmecon report``: a self-contained HTML report of one or more logged runs."""

from __future__ import annotations

from pathlib import Path

import click

from llmecon.cli._common import friendly_errors
from llmecon.cli.export import check_run_dir


@click.command()
@click.argument("run_dirs", metavar="RUN...", nargs=-1, required=True)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False),
    help="HTML file to write; never a file of a run (events.jsonl, manifest.json, …). "
    "[default: RUN/report.html for one run, report.html for several]",
)
@click.option("--title", help="Title of the report. [default: from the run ids]")
def report(run_dirs: tuple[str, ...], out_file: str | None, title: str | None) -> None:
    """Write an HTML report of RUN (or compare several runs side by side), or of a
    sweep folder (llmecon sweep, llmecon compare).

    Welfare by year against the status quo, Saez and the oracle; the schedule over
    time; the final schedule against US federal and Saez; hours and income
    distributions and Lorenz curves; votes and LLM calls (tokens, cost, latency,
    sample outputs) when the runs have them. One file, figures embedded, written
    atomically; it never replaces a run's own files.

    For a sweep folder: per setting, the mean SWF and gain closed by year with 95 %
    bands across seeds, and the table of means and intervals (SWEEP/report.html).
    """
    from llmecon.report import REPORT_NAME, write_report

    paths = [check_run_dir(d) for d in run_dirs]
    from llmecon.sweeps import is_sweep_folder

    if len(paths) == 1 and is_sweep_folder(paths[0]):
        from llmecon.report import write_sweep_report

        with friendly_errors():
            written = write_sweep_report(paths[0], out_file, title=title)
        click.echo(str(written))
        return
    if out_file is None:
        out = paths[0] / REPORT_NAME if len(paths) == 1 else Path(REPORT_NAME)
    else:
        out = Path(out_file)
    with friendly_errors():
        written = write_report(paths, out, title=title)
    click.echo(str(written))
