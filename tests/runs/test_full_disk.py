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
from llmecon.runs.events import RunCompleted
from llmecon.runs.log import RunLock

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
    assert "run failed: No space left on device" in text
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


def test_a_run_folder_that_cannot_be_written_is_removed_and_the_run_starts_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wiring, "_write_personas", _no_space)
    args = [*RUN, "--out", str(tmp_path), "--run-id", "r"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and not isinstance(result.exception, OSError)
    text = _flat(result.output)
    assert f"cannot write the run folder {tmp_path / 'r'}: No space left on device" in text
    assert "nothing was run, and the folder was removed" in text
    assert not (tmp_path / "r").exists()

    monkeypatch.undo()
    again = CliRunner().invoke(main, args)  # the same --run-id: nothing is in the way
    assert again.exit_code == 0, again.output


def test_a_manifest_that_cannot_be_written_leaves_an_empty_folder_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "r").mkdir()  # the user's own empty folder: kept, and left empty
    monkeypatch.setattr(run_log, "atomic_write_text", _no_space)
    result = CliRunner().invoke(main, [*RUN, "--out", str(tmp_path), "--run-id", "r"])
    assert result.exit_code == 1 and "nothing was run" in _flat(result.output)
    assert (tmp_path / "r").is_dir() and not any((tmp_path / "r").iterdir())
