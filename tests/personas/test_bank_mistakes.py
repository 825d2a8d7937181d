"""Persona files with mistakes a person makes writing one by hand (contradictory fields,
booleans for numbers, huge numbers, repeated ids, a CSV file) are refused when loaded,
naming the file, the line, every field at fault and why."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmecon.cli import main
from llmecon.personas import PersonaError, default_bank_path, load_bank

ROOT = Path(__file__).resolve().parents[2]


def _records(n: int = 3) -> list[dict[str, object]]:
    lines = default_bank_path().read_text(encoding="utf-8").splitlines()[:n]
    return [json.loads(line) for line in lines]


def _bank(tmp_path: Path, records: list[dict[str, object]], name: str = "mine.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _refusal(path: Path) -> str:
    with pytest.raises(PersonaError) as info:
        load_bank(path)
    return str(info.value)


#: (fields changed on line 2, the field named, what the message says)
CONTRADICTIONS = [
    ({"annual_earnings_usd": 5}, "annual_earnings_usd", "disagrees with 52 weeks"),
    ({"age": 30, "age_band": "65+"}, "age_band", "age 30 is not in the age band 65+"),
    ({"age": 70, "age_band": "16-19"}, "age_band", "age 70 is not in the age band 16-19"),
    ({"state": "Atlantis", "state_code": "ZZ"}, "state_code", "'ZZ' is not a US state"),
    ({"state": "Atlantis", "state_code": "OH"}, "state", "'Atlantis' is not the state of"),
    ({"state": "Texas", "state_code": "CA"}, "state", "not the state of state_code CA"),
    ({"usual_weekly_hours": True}, "usual_weekly_hours", "a number, not true"),
    ({"age": False}, "age", "a number, not false"),
    ({"weight": True}, "weight", "a number, not true"),
]


@pytest.mark.parametrize(("change", "field", "problem"), CONTRADICTIONS)
def test_contradictory_fields_are_refused_naming_the_field(
    tmp_path: Path, change: dict[str, object], field: str, problem: str
) -> None:
    records = _records()
    records[1].update(change)
    path = _bank(tmp_path, records)
    message = _refusal(path)
    assert message.startswith(f"{path}, line 2: {field}: "), message
    assert problem in message, message


def test_earnings_within_rounding_of_wage_times_hours_load(tmp_path: Path) -> None:
    # 52 · $24.04 · 40 h = $50 003.20: the dollar, or three significant figures, is fine.
    records = _records()
    records[0].update(hourly_wage_usd=24.04, usual_weekly_hours=40)
    for stated in (50_003, 50_000, 50_300):
        records[0]["annual_earnings_usd"] = stated
        assert load_bank(_bank(tmp_path, records))[0].annual_earnings_usd == stated
    records[0]["annual_earnings_usd"] = 51_000  # 2 % off
    assert "annual_earnings_usd: 51,000 disagrees" in _refusal(_bank(tmp_path, records))


def test_the_district_of_columbia_may_drop_its_article(tmp_path: Path) -> None:
    records = _records()
    records[0].update(state="District of Columbia", state_code="DC")
    records[1].update(state="the District of Columbia", state_code="DC")
    assert [p.state_code for p in load_bank(_bank(tmp_path, records))][:2] == ["DC", "DC"]


def test_an_occupation_code_the_tables_lack_is_accepted(tmp_path: Path) -> None:
    # Runs read the occupation's title, not the tables: a user may bring occupations.
    records = _records()
    records[1]["occupation_code"] = "99-9999"
    assert load_bank(_bank(tmp_path, records))[1].occupation_code == "99-9999"


def test_a_run_refuses_earnings_its_prompt_would_contradict(tmp_path: Path) -> None:
    records = _records(4)
    records[3]["annual_earnings_usd"] = 5
    path = _bank(tmp_path, records)
    args = ["run", "--planner", "saez", "--workers", "rational", "--agents", "4"]
    result = CliRunner().invoke(main, [*args, "--personas", str(path), "--out", str(tmp_path)])
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    assert f"{path}, line 4: annual_earnings_usd: 5 disagrees" in result.output
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # no run folder started


def test_every_problem_of_a_line_is_named_at_once(tmp_path: Path) -> None:
    records = _records()
    records[0] = {"id": "me-0", "hourly_wage_usd": 20.0, "usual_weekly_hours": 120}
    message = _refusal(_bank(tmp_path, records))
    missing = message.split("missing fields ")[1].split(";")[0].split(", ")
    assert "occupation_code" in missing and "state_code" in missing and len(missing) == 14
    assert "usual_weekly_hours: Input should be less than or equal to 80" in message
    records = _records()
    records[2].update(age=30, age_band="65+", state="Texas", state_code="CA")
    message = _refusal(_bank(tmp_path, records))
    assert "line 3: age_band: age 30" in message and "; state: 'Texas'" in message


@pytest.mark.parametrize("field", ["hourly_wage_usd", "weight", "children"])
def test_a_number_beyond_4300_digits_is_refused_cleanly(tmp_path: Path, field: str) -> None:
    lines = default_bank_path().read_text(encoding="utf-8").splitlines()[:3]
    record = json.loads(lines[2])
    record[field] = "__VALUE__"
    lines[2] = json.dumps(record).replace('"__VALUE__"', "9" * 5000)
    path = tmp_path / "huge.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert f"{path}, line 3: a number has more than 4,300 digits" in _refusal(path)
    for command in (["personas", "show", str(path), "0"], ["personas", "validate", str(path)]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
        assert "more than 4,300 digits" in result.output


def test_a_long_number_is_shortened_in_the_message(tmp_path: Path) -> None:
    lines = default_bank_path().read_text(encoding="utf-8").splitlines()[:3]
    record = json.loads(lines[0])
    record["usual_weekly_hours"] = "__VALUE__"
    lines[0] = json.dumps(record).replace('"__VALUE__"', "9" * 400)
    path = tmp_path / "long.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    message = _refusal(path)
    assert "(got a 400-digit number)" in message and "9" * 50 not in message


def test_repeated_ids_are_named_with_their_lines(tmp_path: Path) -> None:
    records = _records(6)
    records[4]["id"] = records[1]["id"]
    records[5]["id"] = records[1]["id"]
    message = _refusal(_bank(tmp_path, records))
    assert f"repeats persona ids: '{records[1]['id']}' on lines 2, 5 and 6" in message


def test_a_csv_file_is_told_persona_files_are_json_lines(tmp_path: Path) -> None:
    records = _records()
    path = tmp_path / "mine.csv"
    header = ",".join(records[0])
    path.write_text(header + "\n" + ",".join(str(v) for v in records[0].values()) + "\n")
    message = _refusal(path)
    assert message.startswith(f"{path}, line 1: not valid JSON")
    assert "a persona file is JSON Lines" in message and "to_json(" in message


def test_the_documented_csv_conversion_reads_empty_optional_cells(tmp_path: Path) -> None:
    # A CSV that sets `weight` or `wage_floor` in some rows only: pandas writes the empty
    # cells as null, which was refused ("weight: Input should be a valid number")
    # although both are optional (docs/personas.md's one-line conversion).
    import pandas as pd

    frame = pd.DataFrame(_records(4))
    frame["weight"] = frame["weight"].astype(object)
    frame.loc[1, "weight"] = None
    frame["wage_floor"] = [True, None, True, None]
    frame["narrative"] = [None, "Grew up in Ohio.", None, "NA"]
    frame["id"] = ["007", "008", "009", "010"]  # pandas read these as numbers, refused
    frame.to_csv(tmp_path / "in.csv", index=False)
    documented = re.search(r"`python -c \"(.+?)\"`", (ROOT / "docs" / "personas.md").read_text())
    assert documented is not None
    code = documented.group(1).replace("'in.csv'", repr(str(tmp_path / "in.csv")))
    exec(code.replace("'out.jsonl'", repr(str(tmp_path / "out.jsonl"))))  # the docs' line
    assert "null" in (tmp_path / "out.jsonl").read_text()
    personas = load_bank(tmp_path / "out.jsonl")
    assert [p.id for p in personas] == ["007", "008", "009", "010"]
    assert personas[3].narrative == "NA"
    assert [p.weight for p in personas][1] == 1.0 and personas[0].weight == frame["weight"][0]
    assert all(p.wage_floor for p in personas)
    assert personas[1].narrative == "Grew up in Ohio." and personas[0].narrative is None
    # a required field's null is still refused, by name
    records = _records(1)
    records[0]["age"] = None
    assert "age: Input should be a valid integer" in _refusal(_bank(tmp_path, records))
