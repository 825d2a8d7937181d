"""GB2 wages without the $7.25 floor (LLM Economist draws none): only a bank that says it
is unfloored (``wage_floor: false`` on each persona) may hold wages below the federal
minimum; the default bank stays floored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from llmecon.cli import main
from llmecon.personas import (
    PersonaError,
    SamplerConfig,
    default_bank_path,
    load_bank,
    sample_personas,
    write_bank,
)
from llmecon.presets import preset_settings


def test_gb2_without_the_floor_draws_wages_below_the_minimum() -> None:
    floored = sample_personas(4000, np.random.default_rng(3), mode="gb2")
    free = sample_personas(
        4000, np.random.default_rng(3), mode="gb2", config=SamplerConfig("gb2", wage_floor=False)
    )
    assert floored.hourly_wage_usd.min() == 7.25
    assert (floored.hourly_wage_usd == 7.25).mean() > 0.15
    wage = free.hourly_wage_usd
    assert (wage < 7.25).mean() > 0.15
    assert not (wage == 7.25).any() or (wage == 7.25).mean() < 0.01
    assert wage.min() >= 0.01
    personas = free.to_personas()
    assert all(not p.wage_floor for p in personas)


def test_census_mode_refuses_to_drop_the_floor() -> None:
    with pytest.raises(PersonaError, match="only in gb2 mode"):
        SamplerConfig("census", wage_floor=False)


def test_a_floored_persona_below_the_minimum_is_refused(tmp_path: Path) -> None:
    line = json.loads(default_bank_path().read_text(encoding="utf-8").splitlines()[0])
    line["hourly_wage_usd"] = 3.5
    line["annual_earnings_usd"] = round(52 * 3.5 * line["usual_weekly_hours"])
    bank = tmp_path / "low.jsonl"
    bank.write_text(json.dumps(line) + "\n", encoding="utf-8")
    with pytest.raises(PersonaError, match=r"below the federal minimum wage \$7.25"):
        load_bank(bank)
    line["wage_floor"] = False
    bank.write_text(json.dumps(line) + "\n", encoding="utf-8")
    assert load_bank(bank)[0].hourly_wage_usd == 3.5


def test_the_field_is_written_only_when_false(tmp_path: Path) -> None:
    floored = sample_personas(5, np.random.default_rng(0), mode="gb2").to_personas()
    free = sample_personas(
        5, np.random.default_rng(0), mode="gb2", config=SamplerConfig("gb2", wage_floor=False)
    ).to_personas()
    text = write_bank(tmp_path / "a.jsonl", floored).read_text(encoding="utf-8")
    assert "wage_floor" not in text
    text = write_bank(tmp_path / "b.jsonl", free).read_text(encoding="utf-8")
    assert text.count('"wage_floor":false') == 5
    assert load_bank(tmp_path / "b.jsonl") == free


def test_the_default_bank_stays_floored() -> None:
    bank = load_bank(default_bank_path())
    assert all(p.wage_floor for p in bank)
    assert min(p.hourly_wage_usd for p in bank) >= 7.25
    assert "wage_floor" not in default_bank_path().read_text(encoding="utf-8")


def test_the_llm_economist_bank_is_unfloored() -> None:
    path = Path(str(preset_settings("llm-economist-2025")["personas"]))
    bank = load_bank(path)
    wage = np.array([p.hourly_wage_usd for p in bank])
    weight = np.array([p.weight for p in bank])
    assert all(not p.wage_floor and p.wage_mode == "gb2" for p in bank)
    below = float(weight[wage < 7.25].sum() / weight.sum())
    assert 0.15 < below < 0.3  # the GB2 fit puts 21.8 % of 40-hour incomes there
    assert not (wage == 7.25).any()  # the floored bank held 21.9 % at exactly $7.25


def test_cli_sample_without_the_floor(tmp_path: Path) -> None:
    out = tmp_path / "le.jsonl"
    args = ["personas", "sample", "--n", "50", "--mode", "gb2", "--simple", "--no-wage-floor"]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    bank = load_bank(out)
    assert all(not p.wage_floor for p in bank)
    assert min(p.hourly_wage_usd for p in bank) < 7.25
    bad = ["personas", "sample", "--n", "5", "--no-wage-floor", "--out", str(tmp_path / "x")]
    result = CliRunner().invoke(main, bad)
    assert result.exit_code != 0 and "only in gb2 mode" in result.output
