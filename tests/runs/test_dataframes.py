"""``llmecon.load_run``: golden logs, migrations, derived tables, tolerance, refusal."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import llmecon
from llmecon.runs.dataframes import OtherEvent, load_run
from llmecon.runs.event_tables import votes_table
from llmecon.runs.events import LOG_FORMAT_VERSION, LLMCall
from llmecon.runs.log import MIGRATIONS, RunLogError, RunLogWarning, migrate_log, read_log
from tests.report.crafted import GOLDEN_V0, GOLDEN_V1, IMG, SCRIPT, craft_run
from tests.runs.conftest import small_run


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _set_manifest(run: Path, **fields: object) -> None:
    path = run / "manifest.json"
    data = json.loads(path.read_text())
    data.update(fields)
    path.write_text(json.dumps(data))


# -- golden logs ------------------------------------------------------------------------------


def test_golden_v1_loads_with_years_matching_years_csv() -> None:
    run = llmecon.load_run(GOLDEN_V1)
    csv = pd.read_csv(GOLDEN_V1 / "years.csv")
    assert run.manifest.format_version == LOG_FORMAT_VERSION
    assert run.status == "completed"
    assert list(run.years["year"]) == [1, 2, 3]  # tax years as users see them
    assert list(csv["year"]) == [0, 1, 2]  # years.csv keeps the log's 0-based index
    np.testing.assert_array_equal(run.years["swf"].to_numpy(), csv["swf"].to_numpy())
    rates = run.rates.pivot(index="year", columns="bracket", values="rate")
    for column in csv.columns:  # every column of years.csv, same values
        if column == "source":
            assert list(run.years[column]) == list(csv[column])
        elif column == "year":
            continue
        elif column.startswith("rate_"):  # the long rates table holds them
            bracket = int(column.removeprefix("rate_"))
            np.testing.assert_allclose(rates[bracket], csv[column], rtol=1e-12)
        else:
            np.testing.assert_allclose(run.years[column], csv[column], rtol=1e-12)
    assert not [c for c in run.years.columns if c.startswith("rate_")]
    assert list(run.years["llm_calls"]) == [0, 1, 1]
    assert run.years["planner"].eq("mock/default").all()


def test_golden_v1_agents_recomputed_from_the_population() -> None:
    run = load_run(GOLDEN_V1)
    assert run.economy is not None and "reproduces the logged metrics" in run.population_note
    agents = run.agents
    assert len(agents) == 3 * 20
    assert list(agents.columns[:5]) == ["run_id", "seed", "year", "agent", "agent_index"]
    assert agents["agent"].iloc[0] == "synthetic-000000"
    assert agents["occupation_group"].isna().all()  # a synthetic population has no personas
    np.testing.assert_allclose(
        agents["income_usd"], 52 * agents["hourly_wage_usd"] * agents["weekly_hours"]
    )
    means = agents.groupby("year")[["income_usd", "weekly_hours"]].mean()
    np.testing.assert_allclose(means["income_usd"], run.years["mean_income_usd"], rtol=1e-9)
    np.testing.assert_allclose(means["weekly_hours"], run.years["mean_weekly_hours"], rtol=1e-9)
    revenue = agents.groupby("year")["tax_usd"].sum()
    np.testing.assert_allclose(revenue, run.years["revenue_usd"], rtol=1e-9)
    consumption = agents["income_usd"] - agents["tax_usd"] + agents["rebate_usd"]
    np.testing.assert_allclose(agents["consumption_usd"], consumption)


def test_golden_v1_calls_and_message_resolution() -> None:
    run = load_run(GOLDEN_V1, resolve_messages=True)
    calls = run.calls
    assert len(calls) == 2 and set(calls["role"]) == {"planner"}
    assert list(calls["year"]) == [2, 3]  # the log's years 1 and 2
    first = calls.iloc[0]
    assert json.loads(first["parsed_json"])["rates"] == json.loads(first["raw_output"])["rates"]
    texts = json.loads(first["messages_text_json"])
    refs = json.loads(first["messages_json"])
    assert [t["role"] for t in texts] == ["system", "user"]
    for text, ref in zip(texts, refs, strict=True):
        assert hashlib.sha256(text["content"].encode()).hexdigest() == ref["sha256"]
    assert run.messages(int(first["seq"]))[0][1] == texts[0]["content"]
    assert "messages_text_json" not in load_run(GOLDEN_V1).calls.columns


def test_golden_v0_is_migrated_to_the_same_tables() -> None:
    old, new = load_run(GOLDEN_V0), load_run(GOLDEN_V1)
    assert old.manifest.format_version == LOG_FORMAT_VERSION
    assert old.manifest.created == new.manifest.created
    pd.testing.assert_frame_equal(old.years, new.years)
    pd.testing.assert_frame_equal(old.agents, new.agents)
    pd.testing.assert_frame_equal(old.calls, new.calls)


def test_migrate_log_is_the_identity_on_the_current_version() -> None:
    manifest = {"format_version": LOG_FORMAT_VERSION, "created_utc": "kept as is"}
    events = [{"type": "worker_step", "hours": [1.0]}]
    assert migrate_log(manifest, events) == (manifest, events)


def test_migrate_log_renames_v0_fields() -> None:
    manifest, events = migrate_log(
        {"format_version": 0, "created_utc": "t"},
        [{"type": "worker_step", "hours": [1.0]}, {"type": "run_started", "run_id": "r"}],
    )
    # 0 -> 1 renames the fields; 1 -> 2 only added optional fields; 2 -> 3 moved large
    # runs' worker calls to files (older logs need no change).
    assert manifest == {"format_version": 3, "created": "t"}
    assert events == [
        {"type": "worker_step", "weekly_hours": [1.0]},
        {"type": "run_started", "run_id": "r", "format_version": 3},
    ]


def test_missing_migration_step_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MIGRATIONS, 0, MIGRATIONS[0])
    monkeypatch.delitem(MIGRATIONS, 0)
    with pytest.raises(RunLogError, match="no migration from log format 0"):
        load_run(GOLDEN_V0)


def test_future_version_is_refused_clearly(tmp_path: Path) -> None:
    run = _copy(GOLDEN_V1, tmp_path / "future")
    _set_manifest(run, format_version=LOG_FORMAT_VERSION + 1)
    with pytest.raises(RunLogError) as info:
        load_run(run)
    message = str(info.value)
    assert str(run) in message
    assert f"log format {LOG_FORMAT_VERSION + 1} is newer" in message and "upgrade" in message


# -- crafted logs -----------------------------------------------------------------------------


def test_vote_rounds_are_tabulated(tmp_path: Path) -> None:
    run = load_run(craft_run(tmp_path / "crafted"))
    votes = run.votes
    assert len(votes) == 4
    year1 = votes[votes["year"] == 2].set_index("label")  # the log's year 1
    assert year1.loc[IMG, "share"] == pytest.approx(0.75)
    assert year1.loc[IMG, "score"] == pytest.approx(15.0)
    assert bool(year1.loc[IMG, "is_winner"]) and not bool(year1.loc["status quo", "is_winner"])
    assert year1.loc[IMG, "origin"] == f"platform of {SCRIPT}"
    assert year1.loc[IMG, "ballots"] == 1 and year1.loc[IMG, "abstentions"] == 1
    assert json.loads(year1.loc[IMG, "rates_json"]) == [0.3] * 7
    assert len(run.events_of_type("vote_round")) == 2


def test_votes_are_tabulated_from_untyped_events_too() -> None:
    event = OtherEvent(
        type="vote_round",
        seq=4,
        year=0,
        rule="borda",
        candidates=[{"label": "A", "rates": [0.2]}, "B"],
        shares={"A": 0.4, "B": 0.6},
        winner="B",
        turnout=1.0,
        ballots=12,
    )
    votes = votes_table([event])
    assert votes["label"].tolist() == ["A", "B"]
    assert votes["share"].tolist() == [0.4, 0.6]
    assert votes["is_winner"].tolist() == [False, True]
    assert votes["ballots"].tolist() == [12, 12]
    assert np.isnan(votes["score"]).all()


def test_unknown_event_types_are_kept_generically(tmp_path: Path) -> None:
    run_dir = craft_run(tmp_path / "crafted", hostile=False, votes=False)
    seq = len((run_dir / "events.jsonl").read_text().splitlines())  # the next one
    with (run_dir / "events.jsonl").open("a") as fh:
        fh.write(json.dumps({"type": "audit_note", "seq": seq, "time": 1.0, "note": "hi"}) + "\n")
    run = load_run(run_dir)
    others = [e for e in run.events if isinstance(e, OtherEvent)]
    assert [e.type for e in others] == ["audit_note"]
    assert others[0].model_extra == {"note": "hi"}
    assert run.events_of_type("audit_note")[0]["note"] == "hi"
    assert len(run.years) == 3  # the known events are tabulated as before


def test_hostile_model_output_is_kept_verbatim(tmp_path: Path) -> None:
    run = load_run(craft_run(tmp_path / "crafted"), resolve_messages=True)
    failed = run.calls[run.calls["error_type"].notna()].iloc[0]
    assert json.loads(failed["raw_outputs_json"]) == [f"first try {SCRIPT}", f"second try {IMG}"]
    assert failed["raw_output"] == f"second try {IMG}"
    assert failed["attempts"] == 2 and bool(failed["fallback"])
    assert SCRIPT in json.loads(failed["messages_text_json"])[0]["content"]
    assert run.fallbacks["agent"].tolist() == [IMG]
    assert run.years.loc[run.years["year"] == 3, "fallbacks"].item() == 1
    assert run.fallbacks["year"].tolist() == [3]


def test_torn_last_line_is_ignored_but_a_corrupt_middle_line_is_not(tmp_path: Path) -> None:
    run = _copy(GOLDEN_V1, tmp_path / "torn")
    events = run / "events.jsonl"
    lines = events.read_text().splitlines()
    events.write_text("\n".join(lines) + "\n" + lines[-1][:25])  # no final newline
    assert len(read_log(run, tolerant=True).events) == len(lines)
    events.write_text("\n".join([*lines[:3], lines[3][:25], *lines[4:]]) + "\n")
    with pytest.raises(RunLogError, match="line 4: corrupt event"):
        load_run(run)


def test_invalid_known_event_names_the_event(tmp_path: Path) -> None:
    run = _copy(GOLDEN_V1, tmp_path / "bad")
    events = run / "events.jsonl"
    lines = events.read_text().splitlines()
    bad = json.loads(lines[3])
    bad["weekly_hours"] = "many"
    lines[3] = json.dumps(bad)
    events.write_text("\n".join(lines) + "\n")
    with pytest.raises(RunLogError, match=r"invalid event seq 3 \(worker_step\)"):
        load_run(run)


def test_fresh_draws_a_run_kept_no_copy_of_are_redrawn_with_their_attributes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run of more personas than the bank holds draws them afresh, and above
    PERSONA_COPY_MAX keeps no copy: load_run drew them again with the run's seed for the
    economy but left every attribute empty (and said they came from the bank), so no
    incidence by occupation, age or state. It now gives the attributes of the same
    draws, and says where they came from."""
    import llmecon.runs.wiring as wiring

    monkeypatch.setattr(wiring, "PERSONA_COPY_MAX", 1_000)  # 100 000 in earnest
    result = llmecon.run(
        planner="us-federal", workers="rational", agents=1_200, years=1, seed=3,
        out=str(tmp_path), run_id="big", reference=False,
    )  # fmt: skip
    assert not (result.run_dir / "personas.jsonl").exists()
    data = load_run(result.run_dir)
    assert "redrawn from the Census sampler with seed 3" in data.population_note
    assert "1200 fresh draws" in data.population_note
    personas = data.personas
    assert personas["occupation_code"].notna().all() and personas["state"].notna().all()
    drawn = wiring.build_population(
        wiring.RunConfig(agents=1_200, seed=3), wiring.RunStreams.from_seed(3).population
    ).sample.frame
    assert list(personas["agent"]) == list(drawn["id"])
    assert list(personas["occupation_code"].astype(str)) == list(
        drawn["occupation_code"].astype(str)
    )
    by_state = data.incidence("state")
    assert len(by_state) > 10


def test_population_that_cannot_be_rebuilt_leaves_incomes_empty(tmp_path: Path) -> None:
    run = _copy(GOLDEN_V1, tmp_path / "lost")
    config = json.loads((run / "manifest.json").read_text())["config"]
    config["personas"] = str(tmp_path / "gone.jsonl")
    _set_manifest(run, config=config)
    data = load_run(run)
    assert data.economy is None and "not found" in data.population_note
    assert len(data.agents) == 60 and data.agents["income_usd"].isna().all()
    assert data.agents["weekly_hours"].notna().all()


def test_population_that_does_not_reproduce_the_log_is_dropped(tmp_path: Path) -> None:
    run = _copy(GOLDEN_V1, tmp_path / "reseeded")
    _set_manifest(run, seed=1)  # another synthetic draw: other wages
    data = load_run(run)
    assert data.economy is None and "does not reproduce" in data.population_note
    assert data.agents["income_usd"].isna().all()


def test_the_warning_names_what_a_population_that_does_not_reproduce_leaves_out(
    tmp_path: Path,
) -> None:
    """The run's copy of its personas still gives the persona attributes: the warning
    says the outcomes are left out, not the personas."""
    run = small_run(tmp_path, "r", workers="rational")
    events = run / "events.jsonl"
    lines = events.read_text().splitlines()
    last = max(i for i, line in enumerate(lines) if '"year_completed"' in line)
    event = json.loads(lines[last])
    event["metrics"]["swf"] *= 2
    lines[last] = json.dumps(event)
    events.write_text("\n".join(lines) + "\n")
    said = "per-agent incomes, taxes and utilities omitted"
    with pytest.warns(RunLogWarning, match=said) as seen:
        data = load_run(run)
    assert not any("personas omitted" in str(w.message) for w in seen)
    assert data.economy is None and "does not reproduce the logged swf" in data.population_note
    assert data.agents["utility"].isna().all()
    assert data.agents["agent"].notna().all() and data.agents["occupation_code"].notna().all()


def test_missing_and_non_run_folders(tmp_path: Path) -> None:
    with pytest.raises(RunLogError, match="run folder not found"):
        load_run(tmp_path / "nope")
    with pytest.raises(RunLogError, match=r"not a run folder \(no manifest.json\)"):
        load_run(tmp_path)


def test_load_run_is_exported_lazily() -> None:
    assert llmecon.load_run is load_run
    assert "load_run" in llmecon.__all__
    with pytest.raises(AttributeError):
        _ = llmecon.no_such_thing  # type: ignore[attr-defined]


def test_llm_calls_are_typed_events() -> None:
    run = load_run(GOLDEN_V1)
    assert sum(isinstance(e, LLMCall) for e in run.events) == len(run.calls)
