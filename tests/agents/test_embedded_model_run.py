"""A short real run with the embedded SmolLM2 model (planner and workers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmecon.runs import build_config, build_simulation, read_events
from llmecon.runs.events import LLMCall, ScheduleSet, WorkerStep
from llmecon.runs.replay import replay_run
from tests.conftest import require_local_model


@pytest.mark.local_model
def test_bare_default_run_with_the_embedded_model(tmp_path: Path) -> None:
    require_local_model()
    config = build_config(overrides=dict(agents=3, years=2, out=str(tmp_path), run_id="local"))
    assert config.planner == config.workers == "local/smollm2-135m"
    result = build_simulation(config).run()
    assert result.status == "completed"
    events = read_events(tmp_path / "local")
    calls = [e for e in events if isinstance(e, LLMCall)]
    workers = [c for c in calls if c.role == "worker"]
    assert len(workers) == 3 * 2 and sum(c.role == "planner" for c in calls) == 1
    # Constrained decoding: every worker reply is a schema-valid decision.
    assert all(c.error_type is None and 0 <= c.parsed["hours"] <= 80 for c in workers)
    assert all(c.input_tokens > 0 and c.output_tokens > 0 for c in calls)
    planner_set = [e for e in events if isinstance(e, ScheduleSet)][1]
    assert planner_set.source in ("planner", "fallback")
    steps = [e for e in events if isinstance(e, WorkerStep)]
    assert steps[-1].weekly_hours == [float(c.parsed["hours"]) for c in workers if c.year == 1]
    # ... and the run replays offline, exactly, without the model.
    assert replay_run(tmp_path / "local").ok
    assert "oracle_swf" in result.summary and result.summary["calls"] == len(calls)


def _readme_run_command() -> list[str]:
    """The `llmecon …` part of the README's run command (after the install steps)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- run-command -->", 1)[1].split("```bash", 1)[1].split("```")[0]
    command = block.strip().split("&&")[-1].split()
    assert command[0].endswith("llmecon"), command
    return command[1:]


@pytest.mark.local_model
@pytest.mark.slow
def test_the_readme_run_command_completes_on_a_cpu_starved_machine(tmp_path: Path) -> None:
    """A busy sibling process takes a core while the README's run command runs: calls
    are slower (some may time out and restart the model process), and the run must
    still complete (no native abort, no failure)."""
    import subprocess
    import sys

    require_local_model()
    args = _readme_run_command()
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(1)]
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "llmecon", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=3000,
        )
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    events = read_events(run_dir)
    ends = [e for e in events if e.type == "run_completed"]
    assert [e.status for e in ends] == ["completed"]
    assert sum(e.type == "year_completed" for e in events) == 5
    assert "run written to" in output
