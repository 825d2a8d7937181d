"""HTML reports of logged runs (``llmecon report``).

One self-contained page (figures embedded as PNG): welfare by year against the status
quo, Saez and the oracle; schedules over time; the final schedule against US federal
and Saez; hours and income distributions and Lorenz curves of the final year; votes and
LLM calls when the runs have them. Several runs are overlaid or shown side by side.
All run data shown in the page, model output above all, is HTML-escaped.

Example::

    from llmecon.report import write_report

    write_report(["runs/a", "runs/b"], "compare.html")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from llmecon.report._render import render_report, run_labels
from llmecon.runs.dataframes import RunData, load_run


def write_report(
    run_dirs: Sequence[str | Path], out: str | Path, *, title: str | None = None
) -> Path:
    """Load the runs, render their report and write it to ``out`` (returned)."""
    runs: list[RunData] = [load_run(d) for d in run_dirs]
    path = Path(out)
    html = render_report(runs, title=title)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = ["render_report", "run_labels", "write_report"]
