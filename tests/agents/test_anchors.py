"""Answer anchors: format instructions must not show a value the reply schema accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from llmecon.agents.anchors import find_anchors
from llmecon.agents.llm_planner import candidates_schema, planner_schema
from llmecon.agents.llm_workers import worker_schema
from llmecon.cli import main
from llmecon.personas import default_bank_path, load_bank, persona_text
from llmecon.prompts import PromptLibrary
from llmecon.runs.prompt_examples import (
    KNOWN_TEMPLATES,
    ExampleWorld,
    TemplateNotUsed,
    template_anchors,
)
from llmecon.voting import ballot_schema, vote_rule_names

HOURS = worker_schema(80)
RATES = planner_schema(7, 0, 100)
VOTE = ballot_schema("plurality", ["A", "B", "C"])
RANKING = ballot_schema("borda", ["A", "B", "C"])


@pytest.mark.parametrize(
    ("text", "schema", "value"),
    [
        ('Answer with JSON only, like {"hours": 40}.', HOURS, '{"hours": 40}'),
        ("Answer with JSON only, like {'hours': 37}.", HOURS, "{'hours': 37}"),
        ('Reply in JSON, for example {"hours": 40, "note": "x"}.', HOURS, "40"),
        ("Answer with JSON only, for example 37 hours.", HOURS, "37"),
        ('Answer with JSON only: {"rates": [7 whole numbers]}.', RATES, "7"),
        ('Propose the rates for year 4 as JSON: {"rates": [...]}.', RATES, "4"),
        ('Answer with JSON only, like {"vote": "C"}.', VOTE, '{"vote": "C"}'),
        ('Answer with JSON only, like {"ranking": ["C", "B", "A"]}.', RANKING, None),
        ("Answer with JSON only. Use only the labels A, B, C.", VOTE, "B"),
        ("Answer with JSON. For example:\n\nhours: 40", HOURS, "40"),  # on the next line
    ],
)
def test_examples_that_are_valid_answers_are_found(
    text: str, schema: type[BaseModel], value: str | None
) -> None:
    anchors = find_anchors(text, schema)
    assert anchors, text
    if value is not None:
        assert value in {a.value for a in anchors}


@pytest.mark.parametrize(
    ("text", "schema"),
    [
        ('Answer with JSON only, like {"hours": 400}.', HOURS),  # not a valid answer
        (
            'Answer with JSON only: an object with one key, "hours", whose value is the '
            "whole number of hours a week you choose, at least 0 and at most 80.",
            HOURS,
        ),
        ("How many hours a week will you work this year (0 to 80)?", HOURS),
        ("You usually work 40 hours a week.", HOURS),  # content, not a format instruction
        ("Answer with JSON: an object.\nYou usually work 40 hours a week.", HOURS),
        ("Answer with JSON: each rate within this year's range: 0-20, 2-22, 12-32.", RATES),
        ("Reply in JSON with a rate between 0 and 100 for each bracket.", RATES),
        ('A JSON object with one key, "vote", whose value is the label you choose.', VOTE),
        (
            "That reply was invalid: hours: Input should be less than or equal to 80\n"
            "Reply again with only a JSON object that matches the requested format.",
            HOURS,
        ),
    ],
)
def test_bounds_and_content_are_not_anchors(text: str, schema: type[BaseModel]) -> None:
    assert find_anchors(text, schema) == []


def test_shipped_templates_have_no_anchors() -> None:
    assert template_anchors(PromptLibrary()) == {}


def _schema_for(name: str, world: ExampleWorld, rule: str) -> type[BaseModel]:
    ctx = world.sim.planner_context
    if name in ("vote.j2",):
        return ballot_schema(rule, ["A", "B", "C"])
    if name == "planner_candidates.j2":
        return candidates_schema(2, ctx.n_brackets, 0, 100)
    if name.startswith("planner") or name == "platform.j2":
        return planner_schema(ctx.n_brackets, 0, 100)
    return worker_schema(80)


@pytest.mark.parametrize("year", [0, 3])
def test_rendered_prompts_hold_no_format_example_that_is_a_valid_answer(year: int) -> None:
    world = ExampleWorld(PromptLibrary(), year=year)
    checked = 0
    for name in KNOWN_TEMPLATES:
        for rule in vote_rule_names() if name == "vote.j2" else ("borda",):
            try:
                example = world.example(name, 1, rule)
            except TemplateNotUsed:
                continue
            schema = _schema_for(name, world, rule)
            for message in example.messages:
                if message.role == "assistant":  # the model's own bad reply (repair)
                    continue
                assert find_anchors(message.content, schema) == [], (name, rule)
                checked += 1
    assert checked >= 12


def test_an_override_with_an_example_answer_fails_check_naming_the_template(
    tmp_path: Path,
) -> None:
    shipped = PromptLibrary().source("worker_system.j2")
    lines = [ln for ln in shipped.splitlines() if not ln.startswith("Answer with")]
    (tmp_path / "worker_system.j2").write_text(
        "\n".join(lines) + '\nAnswer with JSON only, like {"hours": 40}.\n'
    )
    found = template_anchors(PromptLibrary(tmp_path))
    assert list(found) == ["worker_system.j2"]
    assert '{"hours": 40}' in found["worker_system.j2"][0]
    result = CliRunner().invoke(main, ["prompts", "check", "--prompts", str(tmp_path)])
    assert result.exit_code != 0
    assert "answer anchors in worker_system.j2" in result.output


def test_a_vote_example_label_is_an_anchor(tmp_path: Path) -> None:
    shipped = PromptLibrary().source("vote.j2")
    (tmp_path / "vote.j2").write_text(shipped + 'Answer with JSON only, like {"vote": "C"}.\n')
    found = template_anchors(PromptLibrary(tmp_path))
    assert list(found) == ["vote.j2"]
    assert any('"C"' in problem for problem in found["vote.j2"])


def test_persona_text_names_the_reference_schedule_and_individual_taxes() -> None:
    bank = load_bank(default_bank_path())
    texts = {p.filing_status: persona_text(p) for p in bank[:300]}
    assert "married_joint" in texts and "single" in texts
    for text in texts.values():
        assert "under the current US federal income tax schedule" in text
        assert "file jointly" not in text and "file separately" not in text
    assert "Income tax here is individual" in texts["married_joint"]
    assert "married" not in texts["single"]


@pytest.mark.parametrize(
    ("name", "line", "example"),
    [
        ("worker_decision.j2", "How many hours a week will you work", '{"hours": 40}'),
        (
            "worker_decision_rational.j2",
            "Choose the hours a week with the highest value",
            '{"hours": 40}',
        ),
        ("vote_rule_plurality.j2", "Vote for the one schedule", '{"vote": "A"}'),
    ],
)
def test_every_template_is_checked_and_named_where_its_example_is(
    tmp_path: Path, name: str, line: str, example: str
) -> None:
    """The workers' user message (rendered staged, once per step) and a template that
    ``vote.j2`` includes are checked too, and the example is blamed on its own file."""
    shipped = PromptLibrary().source(name)
    assert line in shipped
    edited = shipped.replace(line, f"Answer like {example}. {line}", 1)
    (tmp_path / name).write_text(edited)
    found = template_anchors(PromptLibrary(tmp_path))
    assert list(found) == [name]
    assert example in found[name][0]


def test_a_long_instruction_is_cut_around_the_value_it_flags() -> None:
    # The message kept the first 117 characters: a value further on was cut off, and
    # the reader was told of a number the message did not show.
    from llmecon.agents.anchors import SNIPPET_CHARS, Anchor

    line = "Answer in JSON. " + "Think about the schedule and your family. " * 4 + "e.g. 55."
    said = Anchor("55", line, "a valid hours value").describe()
    shown = said.split(" in '", 1)[1].rsplit("': ", 1)[0]
    assert "55" in shown and shown.startswith("...")
    assert len(shown) <= SNIPPET_CHARS + 6
    short = Anchor("40", 'like {"hours": 40}', "r").describe()
    assert short == "40 in 'like {\"hours\": 40}': r"


@pytest.mark.parametrize("key", ["hour", "Hours", "hours_per_week"])
def test_an_example_under_a_misspelt_key_still_anchors(key: str) -> None:
    # Only the values of the answer's own keys were checked: `{"hour": 40}` passed,
    # and a model copies its 40 into the "hours" it is asked for.
    from llmecon.agents.anchors import find_anchors
    from llmecon.agents.llm_workers import worker_schema

    found = find_anchors(f'Answer with JSON only, like {{"{key}": 40}}.', worker_schema(80))
    assert [a.value for a in found] == ["40"]
    assert f'(given under "{key}", not a field)' in found[0].reason


def test_a_runs_own_grid_moves_are_what_an_example_move_is_checked_against(
    tmp_path: Path,
) -> None:
    # The delta query's anchors were checked against the example grid (moves of 10 and
    # 20 points) whatever the run's: "e.g. 5" passed for a run moving by 5.
    from llmecon.prompts import PromptLibrary
    from llmecon.runs.config import RunConfig
    from llmecon.runs.prompt_examples import prompt_economy, template_anchors

    folder = tmp_path / "mine"
    folder.mkdir()
    query = PromptLibrary(None).source("planner_query_delta.j2")
    query = query.replace(
        "each one of the allowed moves.", "each one of the allowed moves, e.g. 5."
    )
    (folder / "planner_query_delta.j2").write_text(query, encoding="utf-8")
    library = PromptLibrary(folder)

    def flagged(moves: str) -> list[str]:
        config = RunConfig(planner="mock/default", workers="mock/default", planner_moves=moves)
        return template_anchors(library, prompt_economy(config.resolved())).get(
            "planner_query_delta.j2", []
        )

    assert any(item.startswith("5 in") for item in flagged("grid:5,10"))
    # moving by 10 and 20, 5 is no answer: it was flagged, read against the rates schema
    assert not any(item.startswith("5 in") for item in flagged("grid:10,20"))


def test_an_example_built_from_a_variable_or_in_an_included_file_is_blamed_on_its_file(
    tmp_path: Path,
) -> None:
    # Blamed on vote.j2 (which includes the rule's file) and on worker_system.j2 (which
    # includes parts/format.txt): the search looked for the rendered value in known
    # templates only, and a value built from a variable is in no source.
    rule = PromptLibrary().source("vote_rule_plurality.j2")
    (tmp_path / "vote_rule_plurality.j2").write_text(
        rule + 'Answer with JSON only, like {"vote": "{{ labels[0] }}"}\n'
    )
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "format.txt").write_text('Answer with JSON only, like {"hours": 40}\n')
    system = PromptLibrary().source("worker_system.j2")
    (tmp_path / "worker_system.j2").write_text(system + '{% include "parts/format.txt" %}\n')
    found = template_anchors(PromptLibrary(tmp_path))
    assert sorted(found) == ["parts/format.txt", "vote_rule_plurality.j2"], found
    assert '{"vote": "A"}' in found["vote_rule_plurality.j2"][0]


def test_a_ballot_example_is_checked_against_the_runs_own_labels(tmp_path: Path) -> None:
    # The check built every ballot with labels A–C whatever the run's `candidates`: in
    # a Borda run of 5 candidates (ballots A–F), an example ranking ["E", "D"] passed.
    shipped = PromptLibrary().source("vote_rule_borda.j2")
    (tmp_path / "vote_rule_borda.j2").write_text(shipped + 'For example {"ranking": ["E", "D"]}.\n')
    library = PromptLibrary(tmp_path)
    assert template_anchors(library) == {}  # labels A–C by default: E is no answer
    found = template_anchors(library, {"vote_rule": "borda", "candidates": 5})
    assert list(found) == ["vote_rule_borda.j2"]
    assert '"E"' in found["vote_rule_borda.j2"][0]
    config = tmp_path / "run.yaml"
    config.write_text("vote_every: 1\nvote_rule: borda\ncandidates: 5\n")
    result = CliRunner().invoke(
        main, ["prompts", "check", "--prompts", str(tmp_path), "--config", str(config)]
    )
    assert result.exit_code != 0 and "answer anchors in vote_rule_borda.j2" in result.output
