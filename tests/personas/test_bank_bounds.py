"""Persona banks with impossible numbers (1e308 wages, NaN, negative or huge hours) are
refused when loaded, naming the file, the line and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmecon.cli import main
from llmecon.personas import PersonaError, default_bank_path, load_bank


def _bank_lines(n: int = 3) -> list[str]:
    return default_bank_path().read_text(encoding="utf-8").splitlines()[:n]


def _with_field(line: str, field: str, raw_value: str) -> str:
    """``line`` with ``field`` set to the raw JSON text ``raw_value`` (NaN, Infinity, …
    are what Python's json module writes for non-finite floats)."""
    record = json.loads(line)
    record[field] = "__VALUE__"
    return json.dumps(record).replace('"__VALUE__"', raw_value)


#: (field, raw JSON value, what the message says about it)
IMPOSSIBLE = [
    ("hourly_wage_usd", "1e308", "less than or equal to 100000"),
    ("hourly_wage_usd", "NaN", "finite number"),
    ("hourly_wage_usd", "Infinity", "finite number"),
    ("hourly_wage_usd", "-12.5", "greater than 0"),
    ("hourly_wage_usd", "0", "greater than 0"),
    ("usual_weekly_hours", "-1", "greater than or equal to 1"),
    ("usual_weekly_hours", "169", "less than or equal to 80"),
    ("usual_weekly_hours", "NaN", "finite number"),
    ("usual_weekly_hours", "Infinity", "finite number"),
    ("annual_earnings_usd", "Infinity", "finite number"),
    ("annual_earnings_usd", "1e300", "less than or equal to 1000000000"),
    ("spouse_earnings_usd", "NaN", "finite number"),
    ("spouse_earnings_usd", "-1", "greater than or equal to 0"),
    ("children", "1000000", "less than or equal to 20"),
    ("household_size", "1000", "less than or equal to 40"),
    ("household_size", "1e300", "integer"),
]


@pytest.mark.parametrize(("field", "raw", "problem"), IMPOSSIBLE)
def test_impossible_values_are_refused_naming_file_line_and_field(
    tmp_path: Path, field: str, raw: str, problem: str
) -> None:
    lines = _bank_lines()
    lines[1] = _with_field(lines[1], field, raw)
    bank = tmp_path / "bad-bank.jsonl"
    bank.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(PersonaError) as info:
        load_bank(bank)
    message = str(info.value)
    assert message.startswith(f"{bank}, line 2: {field}: "), message
    assert problem in message.replace(",", ""), message


def test_run_with_an_impossible_persona_is_one_clear_line(tmp_path: Path) -> None:
    lines = _bank_lines(4)
    lines[2] = _with_field(lines[2], "hourly_wage_usd", "1e308")
    bank = tmp_path / "huge.jsonl"
    bank.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["run", "--planner", "saez", "--workers", "rational", "--agents", "4"]
    result = CliRunner().invoke(main, [*args, "--personas", str(bank), "--out", str(tmp_path)])
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    assert f"{bank}, line 3: hourly_wage_usd" in result.output
    assert "(got 1e+308)" in result.output
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # no run folder started


def test_every_shipped_persona_is_within_the_bounds() -> None:
    personas = load_bank(default_bank_path())
    assert len(personas) == 1000
    assert max(p.hourly_wage_usd for p in personas) < 1000


def test_a_bank_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    lines = _bank_lines()
    bank = tmp_path / "latin1.jsonl"
    bank.write_bytes("\n".join(lines).encode() + b'\n{"id": "Jos\xe9"}\n')
    with pytest.raises(PersonaError, match=r"latin1\.jsonl is not UTF-8 text \(line 4"):
        load_bank(bank)
