"""Where ``llmecon report`` may write: never over a run's files.

A run folder (``manifest.json``, ``events.jsonl``, ``personas.jsonl``, ``years.csv``,
``events.interrupted-<n>.jsonl``) is the record of a run; a report goes next to it only
under a name of its own: ``report.html``, another llmecon report, or a new file, and
only a report of that run alone (a sweep's page only in its own sweep folder).
(``llmecon export`` refuses to write into a run folder at all.)
"""

from __future__ import annotations

from pathlib import Path

from llmecon.report._html import GENERATOR_META
from llmecon.runs.log import REPORT_NAME as REPORT_NAME  # re-exported
from llmecon.runs.log import RunLogError, is_run_folder, is_sweep_folder, tables_folder_reason
from llmecon.sweeps.results import record_file_reason


def _entry(path: Path) -> Path:
    """The directory entry ``os.replace`` would replace: the parent resolved through
    symlinks, the last component as given."""
    return path.parent.resolve() / path.name


def is_llmecon_report(path: Path) -> bool:
    """Whether ``path`` is a file written by ``llmecon report`` (marker in its head)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return GENERATOR_META.encode() in head


def check_report_path(path: str | Path, own: str | Path | None = None) -> None:
    """Refuse (:class:`RunLogError`) to write a report over a run's file, or into the
    folder of a run or sweep other than ``own`` (the one run or sweep reported; ``None``
    for several runs), or into such a run's ``tables/`` (:func:`tables_folder_reason`):
    that folder's ``report.html`` is about its own run, and its tables are its own.

    In its own run folder the report may create a new file, or replace ``report.html``
    or another llmecon report; anything else already there is the run's (or the user's).
    Elsewhere it replaces only an llmecon report: any other file is the user's.
    """
    given = Path(path)
    entry = _entry(given)
    if entry.is_dir():
        raise RunLogError(f"{given} is a folder: --out names the HTML file to write")
    reason = record_file_reason(entry)
    if reason is not None:
        raise RunLogError(f"refusing to write the report over {given}: {reason}")
    folder = entry.parent
    theirs = "run" if is_run_folder(folder) else "sweep" if is_sweep_folder(folder) else None
    if theirs is not None and (own is None or Path(own).resolve() != folder):
        raise RunLogError(
            f"refusing to write the report into {given.parent}: it is a {theirs} folder "
            f"and the report is not of that {theirs} alone (its report.html would be "
            "replaced); pass --out a file or folder of its own (default RUN/report.html)"
        )
    if reason := tables_folder_reason(folder, own):
        raise RunLogError(
            f"refusing to write the report into {given.parent}: {reason}, which a report "
            "there would mix with; pass --out a file or folder of its own (default "
            "RUN/report.html)"
        )
    exists = entry.exists() or entry.is_symlink()
    if (
        is_run_folder(entry.parent)
        and exists
        and entry.name != REPORT_NAME
        and not is_llmecon_report(entry)
    ):
        raise RunLogError(
            f"refusing to write the report over {given}: it is a file in the run folder "
            f"{entry.parent} and not an llmecon report (write it elsewhere with --out)"
        )
    if exists and theirs is None and not is_llmecon_report(entry):
        raise RunLogError(
            f"refusing to write the report over {given}: it is a file that is not an "
            "llmecon report (remove it first, or write elsewhere with --out)"
        )
