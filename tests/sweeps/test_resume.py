"""A sweep killed half way (SIGKILL) and run again finishes only the missing cells:
completed cells are skipped untouched, the cell in flight is resumed, the rest run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from click.testing import CliRunner

import llmecon
from llmecon.cli import main
from llmecon.testing.fake_servers import FakeOpenAIServer
from tests.sweeps.conftest import GRID, SMALL, metrics_of

#: A sweep that SIGKILLs itself once the 4th cell has completed 2 of its 4 years.
KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import llmecon
    from llmecon.sweeps import SweepProgress

    class Killer(SweepProgress):
        def __init__(self):
            self.started = []
        def cell_started(self, cell):
            self.started.append(cell.cell_id)
        def year(self, cell_id, record):
            if len(self.started) == 4 and record.year == 1:
                os.kill(os.getpid(), signal.SIGKILL)

    llmecon.sweep(grid={grid!r}, out=sys.argv[1], jobs=1, progress=Killer(), **{small!r})
    """
)


def test_killed_sweep_reruns_only_the_missing_cells(tmp_path: Path) -> None:
    script = tmp_path / "killer.py"
    script.write_text(KILLER.format(grid=GRID, small=SMALL), encoding="utf-8")
    out = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == -9, proc.stderr  # killed by SIGKILL

    (folder,) = out.iterdir()
    cell_ids = [c["cell_id"] for c in llmecon.load_sweep(folder).manifest["cells"]]
    statuses = {c: llmecon.load_run(folder / c).status for c in cell_ids[:4]}
    assert [statuses[c] for c in cell_ids[:3]] == ["completed"] * 3
    assert statuses[cell_ids[3]] == "incomplete"  # load_run: no run_completed event
    assert not any((folder / c).exists() for c in cell_ids[4:])
    before = {c: (folder / c / "events.jsonl").read_bytes() for c in cell_ids[:3]}

    again = llmecon.sweep(grid=GRID, out=str(out), jobs=1, **SMALL)
    assert again.directory == folder and again.complete
    assert list(again.cells.action) == ["skipped"] * 3 + ["resumed", "ran", "ran"]
    for c in cell_ids[:3]:  # finished cells are not touched
        assert (folder / c / "events.jsonl").read_bytes() == before[c]
    # the resumed cell kept its 2 logged years and appended the other 2, none twice
    assert list(llmecon.load_run(folder / cell_ids[3]).years.year) == [1, 2, 3, 4]

    # the result is the uninterrupted sweep's, cell by cell
    fresh = llmecon.sweep(grid=GRID, out=str(tmp_path / "fresh"), jobs=1, **SMALL)
    assert metrics_of(again.cells) == metrics_of(fresh.cells)
    # and a third run has nothing left to do
    third = llmecon.sweep(grid=GRID, out=str(out), jobs=1, **SMALL)
    assert set(third.cells.action) == {"skipped"}
    assert metrics_of(third.cells) == metrics_of(fresh.cells)


def test_a_cell_that_failed_after_every_year_is_set_aside_and_run_again(tmp_path: Path) -> None:
    # The planner's server fails every call: the cell runs both years and ends failed
    # (its one planner call failed), which no resume can continue. Run again once the
    # server works, the sweep moves that folder to .aborted/ and runs the cell afresh.
    out = tmp_path / "runs"
    with FakeOpenAIServer(fault_rates={"500": 1.0}) as server:
        settings = {**SMALL, "years": 2, "api_base": server.base_url, "max_retries": 0}
        grid = {"planner": ["saez", "openai/fake"]}
        first = llmecon.sweep(grid=grid, out=str(out), jobs=1, **settings)
        assert not first.complete
        assert list(first.cells.status) == ["completed", "failed"]
        # the sweep's report says which cell stopped and why
        (folder,) = out.iterdir()
        assert CliRunner().invoke(main, ["report", str(folder)]).exit_code == 0
        page = (folder / "report.html").read_text(encoding="utf-8")
        failed_id = first.cells.cell_id.iloc[1]
        assert f'<p class="warn">{failed_id} ended failed: 1 of 1 planner calls' in page
        server.fault_rates = {}
        again = llmecon.sweep(grid=grid, out=str(out), jobs=1, **settings)
    assert again.complete and list(again.cells.action) == ["skipped", "ran"]
    (kept,) = (folder / ".aborted").iterdir()  # the failed run, kept
    assert kept.name.startswith(failed_id)
    assert llmecon.load_run(kept).status == "failed"
    assert llmecon.load_run(folder / failed_id).status == "completed"
