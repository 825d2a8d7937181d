from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from llmecon.runs import (
    LOG_FORMAT_VERSION,
    ConfigError,
    RunConfig,
    RunLogError,
    build_config,
    build_simulation,
    read_events,
    read_manifest,
)
from llmecon.runs.events import RunCompleted, ScheduleSet, WorkerStep, YearCompleted


def _config(tmp_path: Path, **kw: object) -> RunConfig:
    base = dict(
        planner="saez", personas="synthetic", agents=200, years=4, out=str(tmp_path), run_id="r"
    )
    base.update(kw)
    return build_config(overrides=base)


def test_run_writes_manifest_events_and_table(tmp_path: Path) -> None:
    result = build_simulation(_config(tmp_path)).run()
    run_dir = tmp_path / "r"
    assert result.run_dir == run_dir and result.status == "completed"
    manifest = read_manifest(run_dir)
    assert manifest.format_version == LOG_FORMAT_VERSION
    assert manifest.config["planner"] == "saez" and manifest.seed == 0
    assert {"python", "numpy", "llmecon"} <= set(manifest.package_versions)
    events = read_events(run_dir)
    assert [e.seq for e in events] == list(range(len(events)))
    assert events[0].type == "run_started" and isinstance(events[-1], RunCompleted)
    years = [e for e in events if isinstance(e, YearCompleted)]
    assert [e.year for e in years] == [0, 1, 2, 3]
    steps = [e for e in events if isinstance(e, WorkerStep)]
    assert all(len(s.weekly_hours) == 200 for s in steps)
    with open(run_dir / "years.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4
    assert float(rows[-1]["swf"]) == pytest.approx(years[-1].metrics["swf"])
    assert "rate_6" in rows[0]
    summary = events[-1].summary
    assert summary["oracle_swf"] >= summary["final_swf"] - 1e-6 * abs(summary["final_swf"])


def test_every_line_is_flushed_json(tmp_path: Path) -> None:
    build_simulation(_config(tmp_path, years=2)).run()
    lines = (tmp_path / "r" / "events.jsonl").read_text().splitlines()
    assert all(json.loads(line)["type"] for line in lines)


def _metrics(run_dir: Path) -> list[dict[str, float]]:
    return [e.metrics for e in read_events(run_dir) if isinstance(e, YearCompleted)]


def test_runs_are_deterministic_for_a_seed(tmp_path: Path) -> None:
    for rid in ("a", "b"):
        build_simulation(_config(tmp_path, planner="thompson", run_id=rid, reference=False)).run()
    build_simulation(
        _config(tmp_path, planner="thompson", run_id="c", seed=1, reference=False)
    ).run()
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")
    assert _metrics(tmp_path / "a") != _metrics(tmp_path / "c")


def test_refuses_to_overwrite_a_run(tmp_path: Path) -> None:
    build_simulation(_config(tmp_path, years=1, reference=False)).run()
    with pytest.raises(RunLogError, match="already holds a run"):
        build_simulation(_config(tmp_path, years=1, reference=False))


def test_planner_failure_is_a_recorded_fallback(tmp_path: Path) -> None:
    sim = build_simulation(_config(tmp_path, years=3, reference=False))

    class Broken:
        name = "broken"
        calls = 0

        def propose(self, history: object) -> object:
            self.calls += 1
            if self.calls == 2:
                raise ValueError("model said 'lol'")
            return sim.planner_context.schedule([0.2] * 7)

    sim.planner = Broken()
    result = sim.run()
    events = read_events(tmp_path / "r")
    sets = [e for e in events if isinstance(e, ScheduleSet)]
    assert [s.source for s in sets] == ["planner", "fallback", "planner"]
    assert sets[1].rates == sets[0].rates  # the schedule was kept
    fallbacks = [e for e in events if e.type == "fallback"]
    assert len(fallbacks) == 1 and "lol" in fallbacks[0].reason
    assert result.fallbacks == 1


def test_torn_last_line_is_ignored_but_corruption_elsewhere_is_not(tmp_path: Path) -> None:
    build_simulation(_config(tmp_path, years=2, reference=False)).run()
    path = tmp_path / "r" / "events.jsonl"
    n = len(read_events(tmp_path / "r"))
    with open(path, "a") as fh:
        fh.write('{"seq": 99, "type": "year_sta')
    assert len(read_events(tmp_path / "r")) == n
    lines = path.read_text().splitlines()
    lines[2] = "{garbage"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RunLogError, match="line 3"):
        read_events(tmp_path / "r")


def test_newer_log_format_is_refused(tmp_path: Path) -> None:
    build_simulation(_config(tmp_path, years=1, reference=False)).run()
    mpath = tmp_path / "r" / "manifest.json"
    data = json.loads(mpath.read_text())
    data["format_version"] = LOG_FORMAT_VERSION + 1
    mpath.write_text(json.dumps(data))
    with pytest.raises(RunLogError, match="newer than this llmecon supports"):
        read_manifest(tmp_path / "r")


def test_config_file_yaml_and_toml_with_overrides(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("planner: oracle\nagents: 50\nworker-steps: 2\nswf: rawlsian\n")
    cfg = build_config(y, {"agents": 70, "seed": None})
    assert (cfg.planner, cfg.agents, cfg.worker_steps, cfg.swf, cfg.seed) == (
        "oracle",
        70,
        2,
        "rawlsian",
        0,
    )
    t = tmp_path / "c.toml"
    t.write_text('planner = "ucb"\nyears = 3\n')
    assert build_config(t).years == 3


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("agents: -5\n", "agents"),
        ("swf: happiness\n", "swf"),
        ("brackets: 5,10\n", "brackets"),
        ("plannr: saez\n", "plannr"),
        ("min_rate: 0.6\nmax_rate: 0.5\n", "min_rate"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    y = tmp_path / "bad.yaml"
    y.write_text(text)
    with pytest.raises(ConfigError, match=field):
        build_config(y)


def test_unparseable_or_missing_config_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("planner: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot parse") as caught:
        build_config(bad)
    # PyYAML's own wording pointed at 'in "<unicode string>", line 2'
    assert 'in "bad.yaml", line 2' in str(caught.value)
    assert "<unicode string>" not in str(caught.value)
    with pytest.raises(ConfigError, match="not found"):
        build_config(tmp_path / "nope.toml")


def test_a_run_and_a_probe_run_outside_any_exception_handler(tmp_path: Path) -> None:
    # `asyncio.run` was called inside `except RuntimeError:` (no running loop), so every
    # exception of the run carried "no running event loop" as its context, and a
    # litellm connection failure was reported as that RuntimeError.
    import sys

    import llmecon
    from llmecon.runs import RunConfig
    from llmecon.runs.wiring import build_simulation

    config = RunConfig(planner="flat:0.2", workers="rational", agents=4, years=2,
                       out=str(tmp_path), reference=False)  # fmt: skip
    sim = build_simulation(config)
    seen: list[object] = []

    class Watched:
        name = "watched"

        def __init__(self, planner: Any) -> None:
            self.planner = planner

        def propose(self, history: Any) -> Any:
            seen.append(sys.exc_info()[1])
            return self.planner.propose(history)

    sim.planner = Watched(sim.planner)
    assert sim.run().status == "completed"
    assert seen == [None, None]
    calls: list[object] = []
    llmecon.probe("scripted/reference", personas=2, bootstrap=100, save=False,
                  on_call=lambda call: calls.append(sys.exc_info()[1]))  # fmt: skip
    assert calls and set(calls) == {None}
