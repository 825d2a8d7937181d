"""``llmecon report`` and ``llmecon export`` never write over a run's files, write
atomically, and say plainly what they need (CSV by default, Parquet with pyarrow)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from llmecon._files import atomic_write, atomic_write_text
from llmecon.cli import main
from llmecon.report import write_report
from llmecon.runs.dataframes import TABLE_NAMES, load_run
from llmecon.runs.log import RunLogError
from tests.report.crafted import craft_run

#: Files a run writes (personas.jsonl and events.interrupted-1.jsonl are not in the
#: crafted run: a report must not create them either, readers would take it for a run's).
RUN_FILES = [
    "manifest.json",
    "events.jsonl",
    "personas.jsonl",
    "years.csv",
    "events.interrupted-1.jsonl",
    "events.jsonl.tmp",
]


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return craft_run(tmp_path / "run", hostile=False, votes=False)


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("name", RUN_FILES)
def test_report_refuses_to_write_over_a_run_file(run: Path, name: str) -> None:
    (run / "events.interrupted-1.jsonl").write_text('{"type": "year_started"}\n')
    before = _snapshot(run)
    result = _invoke("report", str(run), "--out", str(run / name))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert f"refusing to write the report over {run / name}" in result.output
    assert "it is a file of the run" in result.output
    assert _snapshot(run) == before


def test_report_refuses_a_run_file_reached_through_another_path(run: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(run, target_is_directory=True)
    before = _snapshot(run)
    for out in (link / "events.jsonl", run / ".." / run.name / "manifest.json"):
        result = _invoke("report", str(run), "--out", str(out))
        assert result.exit_code == 1 and "it is a file of the run" in result.output
    assert _snapshot(run) == before


def test_report_refuses_a_users_file_in_a_run_folder(run: Path) -> None:
    notes = run / "notes.md"
    notes.write_text("my notes on this run\n")
    result = _invoke("report", str(run), "--out", str(notes))
    assert result.exit_code == 1
    assert "not an llmecon report" in result.output
    assert notes.read_text() == "my notes on this run\n"


def test_report_by_default_adds_only_report_html_and_replaces_its_own(run: Path) -> None:
    before = _snapshot(run)
    for _ in range(2):  # the second time it replaces its own report
        result = _invoke("report", str(run))
        assert result.exit_code == 0, result.output
        after = _snapshot(run)
        assert set(after) - set(before) == {"report.html"}
        assert {k: v for k, v in after.items() if k != "report.html"} == before
    assert 'content="llmecon report"' in (run / "report.html").read_text()[:2000]


def test_report_may_replace_another_report_it_wrote_in_a_run_folder(run: Path) -> None:
    out = run / "compare.html"
    for _ in range(2):
        result = _invoke("report", str(run), "--out", str(out))
        assert result.exit_code == 0, result.output
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []


def test_write_report_refuses_before_loading_anything(run: Path, tmp_path: Path) -> None:
    with pytest.raises(RunLogError, match="it is a file of the run"):
        write_report([tmp_path / "no-such-run"], run / "events.jsonl")


def test_report_out_is_a_folder(run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "somewhere"
    folder.mkdir()
    with pytest.raises(RunLogError, match="is a folder"):
        write_report([run], folder)


def test_outputs_under_a_file_say_which_file_is_in_the_way(run: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    for args in (
        ["report", str(run), "--out", str(blocker / "report.html")],
        ["export", str(run), "--out", str(blocker / "tables")],
        ["personas", "sample", "--n", "100", "--out", str(blocker / "p.jsonl")],
        ["sweep", "--planners", "saez", "--workers", "rational", "--seeds", "0", "--agents",
         "20", "--years", "1", "--personas", "synthetic", "--out", str(blocker / "sweeps")],
    ):  # fmt: skip
        result = _invoke(*args)
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), args
        said = " ".join(result.output.split())
        assert f"{blocker} is a file, not a folder" in said, args
        assert f"folder: {blocker}" not in said, args  # named once
    assert blocker.read_text() == "mine"


def test_export_refuses_a_run_folder(run: Path, tmp_path: Path) -> None:
    other = craft_run(tmp_path / "other", run_id="other", hostile=False, votes=False)
    link = tmp_path / "alias"
    link.symlink_to(run, target_is_directory=True)
    before, before_other = _snapshot(run), _snapshot(other)
    for out in (run, other, link):
        result = _invoke("export", str(run), "--out", str(out))
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
        assert f"refusing to export into {out}: it is a run folder" in result.output
    assert _snapshot(run) == before and _snapshot(other) == before_other


def test_export_refuses_another_runs_tables_folder(run: Path, tmp_path: Path) -> None:
    # `export b --out runs/a/tables` replaced run a's exported tables with run b's
    other = craft_run(tmp_path / "other", run_id="other", hostile=False, votes=False)
    assert _invoke("export", str(other)).exit_code == 0
    theirs = other / "tables"
    before = _snapshot(theirs)
    result = _invoke("export", str(run), "--out", str(theirs))
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), said
    assert f"refusing to export into {theirs}: it is where the run in {other}" in said
    assert _snapshot(theirs) == before
    again = _invoke("export", str(other), "--out", str(theirs))  # its own: replaced
    assert again.exit_code == 0, again.output


def test_report_refuses_another_runs_tables_folder(run: Path, tmp_path: Path) -> None:
    # `report a --out runs/b/tables/` put a page about run a among run b's tables (and
    # made them look newer than b's log); export refused the same --out
    other = craft_run(tmp_path / "other", run_id="other", hostile=False, votes=False)
    assert _invoke("export", str(other)).exit_code == 0
    theirs = other / "tables"
    before = _snapshot(other)
    for out in (f"{theirs}/", theirs / "a.html"):
        for runs in ([run], [run, other]):
            result = _invoke("report", *map(str, runs), "--out", str(out))
            said = " ".join(result.output.split())
            assert result.exit_code == 1 and isinstance(result.exception, SystemExit), said
            assert (
                f"refusing to write the report into {theirs}: it is where the run in {other}"
                in said
            )
    assert _snapshot(other) == before
    mine = _invoke("report", str(run), "--out", str(other / "analysis" / "a.html"))
    assert mine.exit_code == 0, mine.output  # a folder of the user's inside a run's is theirs


def test_export_defaults_to_csv_and_help_says_so() -> None:
    result = _invoke("export", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "--format [csv|parquet]" in text and "[default: csv]" in text
    assert "parquet is written with pyarrow" in text
    assert "[default: RUN/tables]" in text


def test_an_interrupted_export_keeps_the_previous_table(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "tables"
    assert _invoke("export", str(run), "--out", str(out)).exit_code == 0
    before = _snapshot(out)
    real_to_csv = pd.DataFrame.to_csv

    def killed_midway(self: pd.DataFrame, path: Any, **kw: Any) -> None:
        if "calls" in Path(path).name:
            Path(path).write_text("seq,time,ye")  # half a header, then the process dies
            raise KeyboardInterrupt
        real_to_csv(self, path, **kw)

    monkeypatch.setattr(pd.DataFrame, "to_csv", killed_midway)
    result = _invoke("export", str(run), "--out", str(out))
    assert result.exit_code != 0  # click turns the interrupt into "Aborted!"
    assert _snapshot(out) == before  # calls.csv is the old, complete one; no temp file
    back = pd.read_csv(out / "calls.csv")
    assert len(back) == len(load_run(run).calls)


def test_export_writes_every_table_and_no_temporary_file(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "t"
    result = _invoke("export", str(run), "--out", str(out))
    assert result.exit_code == 0, result.output
    expected = sorted([*(f"{n}.csv" for n in TABLE_NAMES), "run.json"])
    assert sorted(p.name for p in out.iterdir()) == expected
    record = json.loads((out / "run.json").read_text())
    data = load_run(run)
    assert record["status"] == "completed" and record["summary"] == data.summary
    assert record["tax_years_completed"] == len(data.years) == record["tax_years_planned"]
    assert "warning" not in result.output


def test_exporting_a_killed_run_warns_and_says_so_in_run_json(run: Path, tmp_path: Path) -> None:
    """A run killed before its end: its tables were written without a word, and nothing
    in the export said that it held part of the run."""
    events = run / "events.jsonl"
    lines = events.read_bytes().splitlines(keepends=True)
    assert b'"run_completed"' in lines[-1]
    events.write_bytes(b"".join(lines[:-1]))
    out = tmp_path / "t"
    result = _invoke("export", str(run), "--out", str(out))
    assert result.exit_code == 0, result.output
    told = " ".join(result.output.split())
    planned = load_run(run).settings["years"]
    assert f"the run did not complete (killed): the tables hold {planned} of {planned}" in told
    assert "llmecon resume" in told
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "killed" and record["summary"] == {}


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "t.txt"
    atomic_write_text(target, "old\n")

    def fails(tmp: Path) -> None:
        tmp.write_text("new but cut")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fails)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"


@pytest.mark.slow
def test_sigkill_during_export_never_leaves_a_truncated_table(tmp_path: Path) -> None:
    """The measured failure: killing ``llmecon export`` left a truncated calls.csv."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import numpy as np

    from llmecon.runs import build_config, build_simulation

    config = dict(planner="mock/default", agents=60, years=3, out=str(tmp_path))
    build_simulation(build_config(overrides={**config, "run_id": "big", "reference": False})).run()
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "llmecon", "export", str(tmp_path / "big")]
    out = tmp_path / "tables"
    t0 = time.perf_counter()
    subprocess.run([*command, "--out", str(out)], check=True, env=env, capture_output=True)
    duration = time.perf_counter() - t0
    complete = {p.name: p.read_bytes() for p in out.iterdir()}
    rng = np.random.default_rng(0)
    for _ in range(8):
        proc = subprocess.Popen(
            [*command, "--out", str(out)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(float(rng.uniform(0.5, 1.0)) * duration)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        tables = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")}
        assert tables == complete  # every table whole: the old one or the new one


def test_no_output_writes_into_a_runs_calls_or_template_copies(run: Path, tmp_path: Path) -> None:
    """A run's ``calls/`` (its model calls, paid for) and ``prompts/`` (what replay
    renders) are its record: every command's output refuses them, as it refuses the run's
    top-level files. Before, a file one folder down was not recognised as the run's."""
    (run / "calls").mkdir()
    (run / "calls" / "y0000-s000-000000003-70df66.parquet").write_bytes(b"PAR1 calls")
    (run / "prompts").mkdir()
    (run / "prompts" / "worker_decision.j2").write_text("How many hours?\n")
    before = _snapshot(run)
    for target in (run / "calls" / "y0000-s000-000000003-70df66.parquet",
                   run / "prompts" / "worker_decision.j2", run / "calls" / "new.html"):  # fmt: skip
        for args in (
            ["report", str(run), "--out", str(target)],
            ["personas", "sample", "--n", "5", "--out", str(target)],
            ["probe", "scripted/reference", "--personas", "4", "--out", str(target)],
            ["compare", "--planners", "none", "--agents", "10", "--years", "1", "--csv",
             str(target)],
        ):  # fmt: skip
            result = _invoke(*args)
            assert result.exit_code != 0, (args, result.output)
            said = " ".join(result.output.split())
            assert "of the run in" in said and str(run) in said, (args, said)
    for folder in (run / "calls", run / "prompts"):
        result = _invoke("export", str(run), "--out", str(folder))
        assert result.exit_code == 1, result.output
        said = " ".join(result.output.split())
        assert f"refusing to export into {folder}: it is the {folder.name}/ folder" in said
    assert _snapshot(run) == before


def test_a_symlink_into_a_runs_record_is_refused_and_a_projects_manifest_is_no_run(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A symlink to a run's ``prompts/`` was followed by the writes but not by the check
    (export's CSVs then broke the run's replay); a ``manifest.json`` of the user's own
    project above ``--out`` made every output there "part of a run"."""
    (run / "prompts").mkdir()
    (run / "prompts" / "worker_decision.j2").write_text("How many hours?\n")
    link = tmp_path / "link"
    link.symlink_to(run / "prompts", target_is_directory=True)
    before = _snapshot(run)
    export = _invoke("export", str(run), "--out", str(link))
    assert export.exit_code == 1 and "prompts/ folder of the run" in " ".join(export.output.split())
    small = ["--planner", "none", "--workers", "rational", "--personas", "synthetic",
             "--agents", "10", "--years", "1", "--no-reference"]  # fmt: skip
    nested = _invoke("run", *small, "--out", str(link), "--run-id", "n")
    assert nested.exit_code == 1 and "part of its record" in " ".join(nested.output.split())
    assert _snapshot(run) == before
    # a project with a manifest.json of its own: runs, sweeps and outputs in it are fine
    project = tmp_path / "project"
    (project / "prompts").mkdir(parents=True)
    (project / "manifest.json").write_text('{"app": "x"}\n')
    monkeypatch.chdir(project)
    made = _invoke("run", *small, "--out", "runs", "--run-id", "r")
    assert made.exit_code == 0, made.output
    sample = _invoke("personas", "sample", "--n", "5", "--out", "prompts/bank.jsonl")
    assert sample.exit_code == 0, sample.output
    # a folder of the user's inside a run's folder (not its calls/ or prompts/) is theirs
    swept = _invoke("sweep", "--planners", "none", *small[2:], "--out", "runs/r/analysis",
                    "--name", "s")  # fmt: skip
    assert swept.exit_code == 0, swept.output
    assert (project / "runs" / "r" / "analysis" / "s" / "sweep.json").is_file()


def test_report_refuses_another_runs_or_sweeps_folder(run: Path, tmp_path: Path) -> None:
    """A trial found ``report RUN --out OTHER_RUN`` replaced the other run's report.html
    with a page about RUN; export refused the same --out."""
    other = craft_run(tmp_path / "other", run_id="other", hostile=False, votes=False)
    assert _invoke("report", str(other)).exit_code == 0  # other's own report.html
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text("{}")
    before, before_sweep = _snapshot(other), _snapshot(sweep)
    for out in (other, f"{other}/", other / "report.html", other / "mine.html", sweep):
        result = _invoke("report", str(run), "--out", str(out))
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), out
        said = " ".join(result.output.split())
        assert "refusing to write the report into" in said and "folder" in said, out
        assert "Traceback" not in said
    several = _invoke("report", str(run), str(other), "--out", str(other / "both.html"))
    assert several.exit_code == 1 and "it is a run folder" in " ".join(several.output.split())
    assert _snapshot(other) == before and _snapshot(sweep) == before_sweep
    assert not (run / "report.html").exists()
    assert _invoke("report", str(run), "--out", f"{run}/").exit_code == 0  # its own folder
    assert (run / "report.html").is_file()


def _killed_after_calls(tmp_path: Path, agents: int, years: int, calls: int) -> Path:
    """A run of ``years`` tax years whose log ends after the ``calls``-th model call of
    its last tax year, as a kill there leaves it."""
    from llmecon.runs import RunConfig, build_simulation

    build_simulation(RunConfig(planner="us-federal", workers="scripted/reference",
                               agents=agents, years=years, out=str(tmp_path),
                               run_id="k")).run()  # fmt: skip
    run_dir = tmp_path / "k"
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    started = next(
        i for i, e in enumerate(events) if e["type"] == "year_started" and e["year"] == years - 1
    )
    made = [i for i, e in enumerate(events) if i > started and e["type"] == "llm_call"]
    (run_dir / "events.jsonl").write_text("\n".join(lines[: made[calls - 1] + 1]) + "\n")
    return run_dir


def test_an_export_says_what_its_calls_hold_beyond_the_years_and_why_columns_are_empty(
    tmp_path: Path,
) -> None:
    # A run killed in tax year 3: its calls table also held the calls made in that year,
    # which the warning ("the tables hold 2 of 3 tax years") did not say. And when the
    # population no longer reproduced the log, run.json did not say why the per-agent
    # columns were empty.
    run_dir = _killed_after_calls(tmp_path, agents=4, years=3, calls=2)
    result = _invoke("export", str(run_dir), "--out", str(tmp_path / "t"))
    told = " ".join(result.output.split())
    assert result.exit_code == 0 and "the tables hold 2 of 3 tax years" in told, told
    assert "(calls also holds the 2 model calls made in tax year 3 before it stopped)" in told
    table = pd.read_csv(tmp_path / "t" / "calls.csv")
    assert (table["year"] == 3).sum() == 2
    record = json.loads((tmp_path / "t" / "run.json").read_text())
    assert record["population_note"] == load_run(run_dir).population_note != ""


def test_an_export_of_a_run_stopped_after_one_call_of_its_year_says_one_model_call(
    tmp_path: Path,
) -> None:
    # It said "calls also holds the 1 model calls made in tax year 2", and "years.csv
    # (1 rows)".
    run_dir = _killed_after_calls(tmp_path, agents=3, years=2, calls=1)
    result = _invoke("export", str(run_dir), "--out", str(tmp_path / "t"))
    told = " ".join(result.output.split())
    assert result.exit_code == 0, told
    assert "(calls also holds the 1 model call made in tax year 2 before it stopped)" in told
    assert "years.csv (1 row)" in told and "(1 rows)" not in told, told
