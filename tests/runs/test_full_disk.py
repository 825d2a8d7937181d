"""A disk that fills up (or a folder that cannot be written) stops a run with one clear
line, keeps every year the log holds, releases the log, and the run resumes once the
disk has room; a run whose folder cannot even be set up leaves no folder behind.

The full disk is simulated by making the log's writes raise ``ENOSPC`` (tests cannot
mount a small file system); ``llmecon.runs.log`` and ``llmecon.runs.wiring`` are patched
where they write.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from llmecon.cli import main
from llmecon.runs import build_config, build_simulation, read_events, wiring
from llmecon.runs import log as run_log
from llmecon.runs.events import RunCompleted, RunStarted, YearCompleted
from llmecon.runs.log import RunLock, RunLogWarning

RUN = ["run", "--planner", "saez", "--workers", "rational", "--agents", "20", "--years", "5",
       "--personas", "synthetic", "--no-reference"]  # fmt: skip


def _no_space(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _flat(output: str) -> str:
    return " ".join(output.split())


def _fails_from_call(count: int, real: Any) -> Any:
    """``real``, until its ``count``-th call, which and every later one fails: no space."""
    calls = 0

    def write(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls >= count:
            _no_space()
        return real(*args, **kwargs)

    return write


def test_a_full_disk_mid_run_says_so_keeps_the_years_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # years.csv is rewritten after every year: the disk is full from the third on
    monkeypatch.setattr(run_log, "write_csv", _fails_from_call(3, run_log.write_csv))
    result = CliRunner().invoke(main, [*RUN, "--out", str(tmp_path), "--run-id", "r"])
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, OSError)  # handled, not a traceback
    text = _flat(result.output)
    assert "run failed: run stopped: No space left on device" in text
    assert f"llmecon resume {tmp_path / 'r'}" in text
    events = read_events(tmp_path / "r")
    assert [e.year for e in events if e.type == "year_completed"] == [0, 1, 2]
    (end,) = [e for e in events if e.type == "run_completed"]
    assert end.status == "failed" and "No space left on device" in (end.error or "")
    RunLock(tmp_path / "r").release()  # the run let go of its log

    monkeypatch.undo()  # room again
    resumed = CliRunner().invoke(main, ["resume", str(tmp_path / "r")])
    assert resumed.exit_code == 0, resumed.output
    years = [e.year for e in read_events(tmp_path / "r") if e.type == "year_completed"]
    assert years == [0, 1, 2, 3, 4]


def test_a_run_whose_last_event_cannot_be_written_still_lets_go_of_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = run_log.RunLog.append

    def append(self: run_log.RunLog, event: Any) -> Any:
        if isinstance(event, RunCompleted):
            _no_space()
        return real(self, event)

    monkeypatch.setattr(run_log.RunLog, "append", append)
    config = build_config(
        overrides=dict(planner="saez", workers="rational", personas="synthetic", agents=20,
                       years=2, reference=False, out=str(tmp_path), run_id="r")
    )  # fmt: skip
    sim = build_simulation(config)
    with pytest.raises(OSError, match="No space left"):
        sim.run()
    assert sim.log is not None and sim.log.events_path.exists()
    RunLock(tmp_path / "r").release()  # released although the last write failed
    years = [e.year for e in read_events(tmp_path / "r") if e.type == "year_completed"]
    assert years == [0, 1]


def _fail_event(monkeypatch: pytest.MonkeyPatch, kind: type, after: int = 0) -> None:
    """The log's writes of events of ``kind`` fail (no space) after ``after`` of them."""
    real, seen = run_log.RunLog.append, [0]

    def append(self: run_log.RunLog, event: Any) -> Any:
        if isinstance(event, kind):
            seen[0] += 1
            if seen[0] > after:
                _no_space()
        return real(self, event)

    monkeypatch.setattr(run_log.RunLog, "append", append)


@pytest.mark.parametrize("where", ["personas", "first event"])
def test_a_run_folder_that_cannot_be_set_up_is_removed_and_the_run_starts_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    if where == "personas":
        monkeypatch.setattr(wiring, "_write_personas", _no_space)
    else:
        _fail_event(monkeypatch, RunStarted)
    args = [*RUN, "--out", str(tmp_path), "--run-id", "r"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and not isinstance(result.exception, OSError)
    text = _flat(result.output)
    assert f"cannot write the run folder {tmp_path / 'r'}: No space left on device" in text
    assert "nothing was run, and the folder was removed" in text and "resume" not in text
    assert not (tmp_path / "r").exists()

    monkeypatch.undo()
    again = CliRunner().invoke(main, args)  # the same --run-id: nothing is in the way
    assert again.exit_code == 0, again.output


def test_a_fork_whose_copied_years_cannot_be_written_leaves_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = CliRunner().invoke(main, [*RUN, "--out", str(tmp_path), "--run-id", "src"])
    assert source.exit_code == 0, source.output
    _fail_event(monkeypatch, YearCompleted, after=1)  # the second copied year
    fork = ["run", "--fork", str(tmp_path / "src"), "--from-year", "3", "--planner", "ucb",
            "--out", str(tmp_path), "--run-id", "f"]  # fmt: skip
    result = CliRunner().invoke(main, fork)
    assert result.exit_code == 1 and "nothing was run" in _flat(result.output)
    assert not (tmp_path / "f").exists()
    monkeypatch.undo()
    assert CliRunner().invoke(main, fork).exit_code == 0


def test_a_failed_end_never_hides_how_the_run_went(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmecon.runs.loop import Simulation

    settings = dict(planner="saez", workers="rational", personas="synthetic", agents=20,
                    years=3, reference=False, out=str(tmp_path))  # fmt: skip
    # An error in tax year 2, then no room for the run's last event: the error is what
    # the caller gets (with a warning that the log was not finished), not the disk's.
    real_year = Simulation.run_year

    async def broken_year(self: Simulation, year: int) -> Any:
        if year == 1:
            raise RuntimeError("a bug in tax year 2")
        return await real_year(self, year)

    with monkeypatch.context() as patch:
        patch.setattr(Simulation, "run_year", broken_year)
        _fail_event(patch, RunCompleted)
        sim = build_simulation(build_config(overrides={**settings, "run_id": "a"}))
        with (
            pytest.warns(RunLogWarning, match="No space left"),
            pytest.raises(RuntimeError, match="a bug in tax year 2"),
        ):
            sim.run()
    RunLock(tmp_path / "a").release()

    # A run whose end is logged but whose log then cannot be synced still completed.
    real_close = run_log.RunLog.close

    def close_then_fail(self: run_log.RunLog) -> None:
        real_close(self)
        _no_space()

    with monkeypatch.context() as patch:
        patch.setattr(run_log.RunLog, "close", close_then_fail)
        sim = build_simulation(build_config(overrides={**settings, "run_id": "b"}))
        with pytest.warns(RunLogWarning, match="No space left"):
            result = sim.run()
    assert result.status == "completed" and len(result.records) == 3
    (end,) = [e for e in read_events(tmp_path / "b") if e.type == "run_completed"]
    assert end.status == "completed"


def test_a_manifest_that_cannot_be_written_leaves_an_empty_folder_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "r").mkdir()  # the user's own empty folder: kept, and left empty
    monkeypatch.setattr(run_log, "atomic_write_text", _no_space)
    result = CliRunner().invoke(main, [*RUN, "--out", str(tmp_path), "--run-id", "r"])
    assert result.exit_code == 1
    assert "nothing was run, and the folder was emptied" in _flat(result.output)
    assert (tmp_path / "r").is_dir() and not any((tmp_path / "r").iterdir())


def test_a_persona_bank_rewritten_on_a_full_disk_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bank = tmp_path / "bank.jsonl"
    sample = ["personas", "sample", "--out", str(bank), "--seed", "1"]
    assert CliRunner().invoke(main, [*sample, "--n", "100"]).exit_code == 0
    before = bank.read_bytes()
    real = Path.write_text

    def half_then_full(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
        real(self, data[: len(data) // 2], *args, **kwargs)  # what fitted
        _no_space()
        return 0

    monkeypatch.setattr(Path, "write_text", half_then_full)
    result = CliRunner().invoke(main, [*sample, "--n", "200"])
    assert result.exit_code == 1 and not isinstance(result.exception, OSError)
    assert f"cannot write {bank}: No space left on device" in _flat(result.output)
    assert bank.read_bytes() == before  # the old bank, whole
    assert [p.name for p in tmp_path.iterdir()] == ["bank.jsonl"]  # no temporary left


def test_a_run_whose_last_table_could_not_be_written_resumes_without_running_a_year(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # years.csv is rewritten after every year: the last one (year 5) finds the disk full,
    # after year 5 is logged. No year is left to run, but the run is not a result either.
    monkeypatch.setattr(run_log, "write_csv", _fails_from_call(5, run_log.write_csv))
    run = CliRunner().invoke(main, [*RUN, "--out", str(tmp_path), "--run-id", "r"])
    assert run.exit_code == 1 and "llmecon resume" in _flat(run.output)
    monkeypatch.undo()
    resumed = CliRunner().invoke(main, ["resume", str(tmp_path / "r")])
    assert resumed.exit_code == 0, resumed.output
    events = read_events(tmp_path / "r")
    assert [e.year for e in events if e.type == "year_started"] == [0, 1, 2, 3, 4]  # none again
    assert [e.status for e in events if e.type == "run_completed"] == ["completed"]
    aside = (tmp_path / "r" / "events.interrupted-1.jsonl").read_text()
    assert '"status":"failed"' in aside  # the failed ending, kept aside
    rows = (tmp_path / "r" / "years.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["1", "2", "3", "4", "5"]


def test_a_disk_full_for_a_moment_leaves_a_readable_log_that_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Half of one event's line reaches the disk, then it is full; by the next write there
    # is room again. The half line must not stay (a later event would follow it, or take
    # its seq: the log could no longer be read).
    real, writes = run_log._write_all, [0]

    def once_half(fd: int, data: bytes) -> None:
        writes[0] += 1
        if writes[0] == 12:
            real(fd, data[: len(data) // 2])
            _no_space()
        real(fd, data)

    monkeypatch.setattr(run_log, "_write_all", once_half)
    run = CliRunner().invoke(main, [*RUN, "--out", str(tmp_path), "--run-id", "r"])
    assert run.exit_code == 1 and "No space left on device" in _flat(run.output)
    events = read_events(tmp_path / "r")  # complete lines, seq 0, 1, 2, … without a gap
    assert [e.seq for e in events] == list(range(len(events)))
    assert events[-1].type == "run_completed"  # written once there was room
    monkeypatch.undo()
    assert CliRunner().invoke(main, ["resume", str(tmp_path / "r")]).exit_code == 0
    replayed = CliRunner().invoke(main, ["replay", str(tmp_path / "r")])
    assert replayed.exit_code == 0 and "replay matches" in replayed.output


def test_the_python_api_raises_run_failed_with_the_partial_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llmecon
    from llmecon.runs import RunFailedError

    monkeypatch.setattr(run_log, "write_csv", _fails_from_call(3, run_log.write_csv))
    with pytest.raises(RunFailedError, match="No space left on device") as caught:
        llmecon.run(planner="saez", workers="rational", personas="synthetic", agents=20,
                    years=5, reference=False, out=str(tmp_path), run_id="r")  # fmt: skip
    assert isinstance(caught.value.__cause__, OSError)
    assert [r.year for r in caught.value.result.records] == [0, 1, 2]
    assert caught.value.result.status == "failed"


def test_a_resume_without_room_leaves_the_log_as_it_was_and_piles_up_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmecon.runs import resume

    with monkeypatch.context() as patch:
        patch.setattr(run_log, "write_csv", _fails_from_call(3, run_log.write_csv))
        run = CliRunner().invoke(main, [*RUN, "--out", str(tmp_path), "--run-id", "r"])
    assert run.exit_code == 1
    log = tmp_path / "r" / "events.jsonl"
    before = log.read_bytes()
    monkeypatch.setattr(resume, "atomic_write", _no_space)  # no room for the new log
    for _ in range(2):
        refused = CliRunner().invoke(main, ["resume", str(tmp_path / "r")])
        assert refused.exit_code == 1 and not isinstance(refused.exception, OSError)
        said = _flat(refused.output)
        assert "No space left on device; its log is unchanged" in said
        assert f"needs room for a copy of it, {len(before):,} bytes" in said
    assert log.read_bytes() == before
    assert not list((tmp_path / "r").glob("events.interrupted-*"))
    monkeypatch.undo()
    assert CliRunner().invoke(main, ["resume", str(tmp_path / "r")]).exit_code == 0


def test_a_sweep_whose_tables_cannot_be_written_says_to_run_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmecon.sweeps import engine

    real = engine.atomic_write_text

    def tables_fail(path: Path, text: str) -> Path:
        if Path(path).name in ("results.csv", "cells.csv"):
            _no_space()
        return real(path, text)

    sweep = ["sweep", "--planners", "saez,ucb", "--workers", "rational", "--seeds", "0",
             "--agents", "20", "--years", "2", "--personas", "synthetic", "--no-reference",
             "--out", str(tmp_path), "--name", "s", "--jobs", "1"]  # fmt: skip
    monkeypatch.setattr(engine, "atomic_write_text", tables_fail)
    failed = CliRunner().invoke(main, sweep)
    assert failed.exit_code == 1 and not isinstance(failed.exception, OSError)
    said = _flat(failed.output)
    assert "cannot write the sweep's tables" in said and "run the same command again" in said
    monkeypatch.undo()
    again = CliRunner().invoke(main, sweep)
    assert again.exit_code == 0, again.output
    assert (tmp_path / "s" / "results.csv").exists() and (tmp_path / "s" / "cells.csv").exists()
