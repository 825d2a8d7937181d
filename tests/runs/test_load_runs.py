"""``llmecon.load_runs`` and the tidy conventions every table shares: ``run_id`` and
``seed`` first, tax years from 1, the long ``rates`` table, ``settings`` keys."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import llmecon
from llmecon.economy import TaxSchedule
from llmecon.runs.dataframes import TABLE_NAMES, load_run
from llmecon.runs.events import ScheduleSet
from llmecon.runs.log import RunLogError, read_events
from tests.report.crafted import GOLDEN_V1, craft_run

SMALL = {"workers": "rational", "agents": 20, "years": 3, "personas": "synthetic"}


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three runs: ucb with seeds 0 and 1 (same settings), saez with seed 0."""
    out = tmp_path_factory.mktemp("many")
    for run_id, planner, seed in (("ucb-0", "ucb", 0), ("ucb-1", "ucb", 1), ("saez-0", "saez", 0)):
        result = llmecon.run(
            **SMALL, planner=planner, seed=seed, reference=False, out=str(out), run_id=run_id
        )
        assert result.complete
    (out / "notes.txt").write_text("not a run")
    return out


def test_load_runs_is_the_union_with_each_rows_run_id(runs_dir: Path) -> None:
    runs = llmecon.load_runs(runs_dir)  # a folder of runs
    assert runs.run_ids == ["saez-0", "ucb-0", "ucb-1"]  # sorted by folder name
    assert len(runs) == 3
    for name in TABLE_NAMES:
        table = runs.tables()[name]
        parts = [load_run(runs_dir / rid).tables()[name] for rid in runs.run_ids]
        assert len(table) == sum(len(p) for p in parts), name
        if len(table):
            assert list(table.columns[:2]) == ["run_id", "seed"], name
    for rid, seed in (("saez-0", 0), ("ucb-0", 0), ("ucb-1", 1)):
        alone = load_run(runs_dir / rid)
        mine = runs.years[runs.years["run_id"] == rid].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, alone.years)
        assert set(runs.agents.loc[runs.agents["run_id"] == rid, "seed"]) == {seed}
        assert len(runs.agents[runs.agents["run_id"] == rid]) == 3 * 20
        assert runs[rid].path == alone.path
    with pytest.raises(KeyError, match="no run 'nope' loaded"):
        runs["nope"]


def test_glob_and_list_inputs(runs_dir: Path) -> None:
    assert llmecon.load_runs(str(runs_dir / "ucb-*")).run_ids == ["ucb-0", "ucb-1"]
    listed = llmecon.load_runs([runs_dir / "ucb-1", str(runs_dir / "saez-*"), runs_dir / "ucb-1"])
    assert listed.run_ids == ["ucb-1", "saez-0"]  # in the order given, each once


def test_settings_group_runs_that_differ_only_in_seed(runs_dir: Path) -> None:
    runs = llmecon.load_runs(runs_dir)
    key = runs.settings.set_index("run_id")["settings"]
    assert key["ucb-0"] == key["ucb-1"] != key["saez-0"]
    assert key["ucb-0"].startswith("ucb-")
    assert runs.years.groupby("settings")["run_id"].nunique().sort_values().tolist() == [1, 2]
    for banned in ("seed", "run_id", "out"):
        assert banned not in runs["ucb-0"].settings
    assert runs["ucb-0"].settings["agents"] == 20


def test_clear_errors_for_no_match_and_unreadable_runs(runs_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(RunLogError, match=r"nothing-\*: no run folder matches"):
        llmecon.load_runs(str(tmp_path / "nothing-*"))
    with pytest.raises(RunLogError, match="run folder not found"):
        llmecon.load_runs(tmp_path / "missing")
    with pytest.raises(RunLogError, match="not a run folder and holds none"):
        llmecon.load_runs(tmp_path)
    mixed = tmp_path / "mixed"
    shutil.copytree(runs_dir / "ucb-0", mixed / "good")
    shutil.copytree(runs_dir / "ucb-1", mixed / "broken")
    (mixed / "broken" / "manifest.json").write_text("{ not json")
    with pytest.raises(RunLogError, match=r"1 run folder\(s\) unreadable: .*broken"):
        llmecon.load_runs(mixed)
    kept = llmecon.load_runs(mixed, errors="skip")
    assert kept.run_ids == ["ucb-0"]
    assert list(kept.skipped) == [str((mixed / "broken").resolve())]


def test_a_sweep_folder_a_glob_or_a_folder_names_is_left_out_with_a_warning(
    runs_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    shutil.copytree(runs_dir / "saez-0", out / "saez-0")
    sweep = out / "sweep-1"  # a sweep folder: its manifest and a run folder per cell
    shutil.copytree(runs_dir / "ucb-0", sweep / "ucb-s0-1a2b3c4d")
    (sweep / "sweep.json").write_text(json.dumps({"cells": [{"id": "ucb-s0-1a2b3c4d"}]}))
    for given in (str(out / "*"), out):
        with pytest.warns(UserWarning, match=r"skipped 1 sweep folder\(s\): .*sweep-1") as told:
            runs = llmecon.load_runs(given)
        assert runs.run_ids == ["saez-0"]
        assert "llmecon.load_sweep(" in str(told[0].message)
    with warnings.catch_warnings():  # a sweep named itself is read, not skipped
        warnings.simplefilter("error")
        both = llmecon.load_runs([str(out / "*"), sweep])
    assert both.run_ids == ["saez-0", "ucb-0"]
    with pytest.raises(RunLogError, match=r"no run folder matches \(sweep folders: .*sweep-1\)"):
        llmecon.load_runs(str(out / "sweep-*"))


def test_incidence_leaves_out_a_run_without_the_year_and_names_it(
    runs_dir: Path, tmp_path: Path
) -> None:
    short = llmecon.run(
        **{**SMALL, "years": 2}, planner="ucb", seed=5, reference=False, out=str(tmp_path),
        run_id="short",
    )  # fmt: skip
    runs = llmecon.load_runs([runs_dir / "ucb-0", runs_dir / "saez-0", short.run_dir])
    assert runs["short"].completed_years == [1, 2]
    for table in (runs.incidence, runs.welfare_decomposition):
        with pytest.warns(UserWarning, match=r"left out 1 run.*short \(completed tax years 1…2\)"):
            third = table(year=3)
        assert set(third["run_id"]) == {"ucb-0", "saez-0"} and set(third["year"]) == {3}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set(runs.incidence(year=2)["run_id"]) == {"ucb-0", "saez-0", "short"}
        assert set(runs.incidence().groupby("run_id")["year"].first()) == {2, 3}  # each its last
    with pytest.raises(ValueError, match=r"no run completed tax year 4 .*short \(completed"):
        runs.incidence(year=4)
    with pytest.raises(ValueError, match="year must be a whole tax year"):
        runs.incidence(year=2.5)  # type: ignore[arg-type]


def test_a_torn_last_line_is_tolerated(runs_dir: Path, tmp_path: Path) -> None:
    torn = shutil.copytree(runs_dir / "ucb-0", tmp_path / "torn")
    events = torn / "events.jsonl"
    events.write_bytes(events.read_bytes() + b'{"seq": 99, "type": "ye')
    assert llmecon.load_runs(torn).years["year"].tolist() == [1, 2, 3]


def test_the_same_run_id_twice_is_refused(runs_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(runs_dir / "ucb-0", tmp_path / "copy")
    with pytest.raises(RunLogError, match=r"copy is a copy of the run in .* 'ucb-0'"):
        llmecon.load_runs([runs_dir / "ucb-0", tmp_path / "copy"])
    # another run under the same id (the same cell of two sweeps): its rows could not be
    # told apart either
    other = shutil.copytree(runs_dir / "ucb-0", tmp_path / "other")
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["created"] = "2031-01-01T00:00:00Z"
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunLogError, match="two runs with the same run_id 'ucb-0'"):
        llmecon.load_runs([runs_dir / "ucb-0", other])
    # errors="skip": the copy is left out and said why; so is a name matching no folder
    kept = llmecon.load_runs(
        [runs_dir / "ucb-0", tmp_path / "copy", tmp_path / "missing", tmp_path / "x-*"],
        errors="skip",
    )
    assert kept.run_ids == ["ucb-0"]
    assert "a copy of the run" in kept.skipped[str((tmp_path / "copy").resolve())]
    assert "run folder not found" in kept.skipped[str(tmp_path / "missing")]
    assert "no run folder matches" in kept.skipped[str(tmp_path / "x-*")]
    with pytest.raises(RunLogError, match="no run could be read"):
        llmecon.load_runs([tmp_path / "missing"], errors="skip")


def test_a_report_draws_a_copied_run_once_not_as_another_seed(
    runs_dir: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from llmecon.cli import main

    shutil.copytree(runs_dir / "ucb-0", tmp_path / "copy")
    out = tmp_path / "r.html"
    args = ["report", str(runs_dir / "ucb-0"), str(tmp_path / "copy"), "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "is a copy of the run in" in " ".join(result.output.split())
    assert not out.exists()
    # two runs under one id (the same cell of two sweeps) are drawn, labelled apart
    other = shutil.copytree(runs_dir / "ucb-0", tmp_path / "other")
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["created"] = "2031-01-01T00:00:00Z"
    (other / "manifest.json").write_text(json.dumps(manifest))
    args = ["report", str(runs_dir / "ucb-0"), str(other), "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "ucb-0 #2" in out.read_text()


def test_the_long_rates_table_is_each_years_schedule(runs_dir: Path) -> None:
    run = load_run(runs_dir / "ucb-0")
    logged = {e.year: e for e in read_events(run.path) if isinstance(e, ScheduleSet)}
    assert sorted(run.rates["year"].unique()) == run.years["year"].tolist() == [1, 2, 3]
    assert not [c for c in run.years.columns if c.startswith("rate_")]  # one representation
    for year, brackets in run.rates.groupby("year"):
        schedule = logged[int(year) - 1]  # the log counts from 0
        assert brackets["bracket"].tolist() == list(range(len(schedule.edges)))
        np.testing.assert_array_equal(brackets["rate"], schedule.rates)
        np.testing.assert_array_equal(brackets["lower"], schedule.edges)
        np.testing.assert_array_equal(brackets["upper"], [*schedule.edges[1:], np.inf])
        # the taxes in agents are that schedule's
        rebuilt = TaxSchedule(tuple(brackets["lower"]), tuple(brackets["rate"]))
        agents = run.agents[run.agents["year"] == year]
        np.testing.assert_allclose(rebuilt.tax(agents["income_usd"].to_numpy()), agents["tax_usd"])
    assert run.rates["rate"].nunique() > 1  # ucb moved the rates


def test_years_are_numbered_from_1_everywhere(tmp_path: Path) -> None:
    run = load_run(craft_run(tmp_path / "crafted"), resolve_messages=True)  # calls, votes, …
    assert run.years["year"].tolist() == [1, 2, 3]
    for name in ("rates", "agents", "calls", "votes", "fallbacks"):
        table = run.tables()[name]
        assert len(table) and set(table["year"]) <= {1, 2, 3}, name
    assert set(run.votes["year"]) == {2, 3}  # held in the log's years 1 and 2
    # the planner's prompt asks for the rates of the year its call is numbered with
    planner = run.calls[(run.calls["role"] == "planner") & run.calls["error_type"].isna()]
    for _, call in planner.iterrows():
        text = json.loads(call["messages_text_json"])[-1]["content"]
        assert re.search(rf"rates for year {call['year']}\b", text), text[-200:]
    # the log itself keeps its 0-based index
    assert min(e.year for e in read_events(run.path) if isinstance(e, ScheduleSet)) == 0


def test_load_runs_is_exported() -> None:
    from llmecon.runs.collection import RunsData, load_runs

    assert llmecon.load_runs is load_runs and llmecon.RunsData is RunsData
    assert {"load_runs", "RunsData"} <= set(llmecon.__all__)


def test_golden_tables_start_with_run_id_and_seed() -> None:
    run = load_run(GOLDEN_V1)
    for name, table in run.tables().items():
        assert list(table.columns[:2]) == ["run_id", "seed"], name
        if len(table):
            assert set(table["run_id"]) == {"tiny-mock-planner"} and set(table["seed"]) == {0}


def test_runs_whose_prompts_were_worded_differently_are_different_settings(tmp_path: Path) -> None:
    """Editing a template in the same ``--prompts`` folder between two runs makes them two
    settings, not two seeds of one; equal wording stays one setting; the report lists
    the templates' digest among the settings that differ."""
    from click.testing import CliRunner

    from llmecon.cli import main

    folder = tmp_path / "mine"
    folder.mkdir()
    shipped = (Path(llmecon.__file__).parent.parent / "prompts" / "worker_system.j2").read_text()
    (folder / "worker_system.j2").write_text(shipped)
    small = {"planner": "scripted/reference", "workers": "scripted/reference", "agents": 6}
    common = {**small, "years": 2, "reference": False, "prompts": str(folder), "out": str(tmp_path)}
    first = llmecon.run(**common, run_id="a", seed=0)
    again = llmecon.run(**common, run_id="b", seed=1)
    (folder / "worker_system.j2").write_text(shipped + "Think it over.\n")
    edited = llmecon.run(**common, run_id="c", seed=2)
    runs = llmecon.load_runs([first.run_dir, again.run_dir, edited.run_dir])
    keys = runs.years.groupby("run_id").settings.first()
    assert keys["a"] == keys["b"] != keys["c"]
    for result in (first, edited):  # the run's own table agrees with its log's
        assert result.years.settings.iloc[0] == keys[result.run_dir.name]
    rational = llmecon.run(**SMALL, planner="saez", out=str(tmp_path), run_id="r")
    assert "templates" not in load_run(rational.run_dir).settings  # no model, no prompt
    assert "templates" in runs.settings.columns
    out = tmp_path / "r.html"
    report = CliRunner().invoke(
        main, ["report", str(first.run_dir), str(edited.run_dir), "--out", str(out)]
    )
    assert report.exit_code == 0, report.output
    assert ">templates<" in out.read_text()


def test_each_call_names_every_template_its_messages_came_from(tmp_path: Path) -> None:
    """The persona text is rendered from persona.j2 once and pasted into prompts, and
    vote.j2 includes its rule's template: the calls' templates name both."""
    folder = tmp_path / "mine"
    folder.mkdir()
    shipped = (Path(llmecon.__file__).parent.parent / "prompts" / "persona.j2").read_text()
    (folder / "persona.j2").write_text(shipped + "You like your work.\n")
    result = llmecon.run(
        planner="scripted/reference",
        workers="scripted/reference",
        agents=6,
        years=2,
        vote_every=1,
        vote_rule="borda",
        reference=False,
        prompts=str(folder),
        out=str(tmp_path),
        run_id="v",
    )
    calls = load_run(result.run_dir).calls
    persona_sha = result.templates["persona.j2"]
    for role in ("worker", "voter"):
        used = [json.loads(t) for t in calls[calls.role == role].templates_json]
        assert used and all(u.get("persona.j2") == persona_sha for u in used), role
    voter = [json.loads(t) for t in calls[calls.role == "voter"].templates_json]
    assert all("vote_rule_borda.j2" in u for u in voter)
    proposer = [json.loads(t) for t in calls[calls.role == "proposer"].templates_json]
    assert proposer and all("persona.j2" not in u for u in proposer)  # no persona in it


def test_the_same_bank_and_templates_spelled_otherwise_are_one_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A persona bank and a templates folder are settings by content: a relative, a
    ``./`` and an absolute spelling, or a copy elsewhere, give one setting key (seeds of
    one setting); another bank is another setting."""
    from llmecon.personas import default_bank_path

    lines = default_bank_path().read_text().splitlines(keepends=True)
    bank = tmp_path / "bank.jsonl"
    bank.write_text("".join(lines[:8]))
    (tmp_path / "copy").mkdir()
    shutil.copy(bank, tmp_path / "copy" / "bank.jsonl")
    other = tmp_path / "other.jsonl"
    other.write_text("".join(lines[8:16]))
    for folder in ("mine", "copy/mine"):
        (tmp_path / folder).mkdir()
        shipped = Path(llmecon.__file__).parent.parent / "prompts" / "worker_system.j2"
        (tmp_path / folder / "worker_system.j2").write_text(shipped.read_text())
    monkeypatch.chdir(tmp_path)
    small = {"planner": "scripted/reference", "workers": "scripted/reference", "agents": 6}
    common = {**small, "years": 2, "reference": False, "out": str(tmp_path / "runs")}
    spellings = [
        ("bank.jsonl", "mine"),
        ("./bank.jsonl", "./mine/"),
        (str(bank), str(tmp_path / "mine")),
        ("copy/bank.jsonl", "copy/mine"),
    ]
    results = [
        llmecon.run(**common, personas=personas, prompts=prompts, run_id=f"r{k}", seed=k)
        for k, (personas, prompts) in enumerate(spellings)
    ]
    results.append(llmecon.run(**common, personas=str(other), prompts="mine", run_id="o", seed=9))
    runs = llmecon.load_runs([r.run_dir for r in results])
    keys = runs.years.groupby("run_id").settings.first()
    assert keys["r0"] == keys["r1"] == keys["r2"] == keys["r3"] != keys["o"]
    for result in results:  # the run's own table agrees with its log's
        assert result.years.settings.iloc[0] == keys[result.run_dir.name]
    assert runs["r0"].settings["personas"].startswith("sha256:")
    assert "prompts" not in runs["r0"].settings  # the templates' digest stands for them
    # the report shows the bank by name and digest, as the settings compare it
    from llmecon.report import write_report

    page = write_report([r.run_dir for r in results], tmp_path / "r.html").read_text()
    bank_digest = runs["r0"].settings["personas"][:15]
    other_digest = runs["o"].settings["personas"][:15]
    assert f"bank.jsonl ({bank_digest})" in page and f"other.jsonl ({other_digest})" in page
    assert "./bank.jsonl" not in page
