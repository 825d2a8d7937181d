"""``llmecon personas`` through click's runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from llmecon.cli import main
from llmecon.personas import load_bank


def test_sample_then_show(tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    runner = CliRunner()
    result = runner.invoke(
        main, ["personas", "sample", "--n", "40", "--seed", "3", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    bank = load_bank(out)
    assert len(bank) == 40
    shown = runner.invoke(main, ["personas", "show", str(out), "5"])
    assert shown.exit_code == 0, shown.output
    assert bank[5].id in shown.output and f"You are a {bank[5].age}-year-old" in shown.output


def test_show_without_arguments_shows_the_shipped_banks_first_persona() -> None:
    """A newcomer's `llmecon personas show` was "Missing argument 'FILE'"."""
    from llmecon.personas import default_bank_path

    shown = CliRunner().invoke(main, ["personas", "show"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert load_bank(default_bank_path())[0].id in shown.output


def test_sample_is_deterministic(tmp_path: Path) -> None:
    runner = CliRunner()
    for name in ("a", "b"):
        args = [
            "personas",
            "sample",
            "--n",
            "30",
            "--seed",
            "9",
            "--mode",
            "gb2",
            "--out",
            str(tmp_path / name),
        ]
        assert runner.invoke(main, args).exit_code == 0
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_show_errors_name_the_file(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(main, ["personas", "show", str(tmp_path / "gone.jsonl"), "0"])
    assert missing.exit_code != 0 and "gone.jsonl" in missing.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n", encoding="utf-8")
    corrupt = runner.invoke(main, ["personas", "show", str(bad), "0"])
    assert corrupt.exit_code != 0 and "bad.jsonl, line 1" in corrupt.output
    out = tmp_path / "p.jsonl"
    runner.invoke(main, ["personas", "sample", "--n", "3", "--out", str(out)])
    oob = runner.invoke(main, ["personas", "show", str(out), "7"])
    assert oob.exit_code != 0 and "out of range" in oob.output


def test_show_refuses_a_negative_index(tmp_path: Path) -> None:
    """`personas show default -- -1` showed the last persona under the title "[-1]"; the
    index is 0-based (as prompts render --persona), so a negative one is refused."""
    out = tmp_path / "p.jsonl"
    CliRunner().invoke(main, ["personas", "sample", "--n", "3", "--out", str(out)])
    negative = CliRunner().invoke(main, ["personas", "show", str(out), "--", "-1"])
    assert negative.exit_code == 2, negative.output
    assert "-1 is not in the range x>=0" in negative.output
    assert load_bank(out)[-1].id not in negative.output
    last = CliRunner().invoke(main, ["personas", "show", str(out), "3"])
    assert last.exit_code == 1 and "index 3 is out of range (give 0 to 2)" in last.output


def test_validate_passes_for_census_and_fails_for_gb2() -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["personas", "validate", "--n", "100000", "--seed", "1"])
    assert ok.exit_code == 0, ok.output
    assert "23.80" in ok.output and "60.44" in ok.output and "all targets met" in ok.output
    bad = runner.invoke(main, ["personas", "validate", "--n", "20000", "--mode", "gb2"])
    assert bad.exit_code == 1 and "missed" in bad.output


def test_sample_reports_survey_weighted_figures_and_bounds_n(tmp_path: Path) -> None:
    import numpy as np

    from llmecon.personas._validate import weighted_quantile

    out = tmp_path / "p.jsonl"
    args = ["personas", "sample", "--n", "50", "--seed", "1", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    bank = load_bank(out)
    wage = np.array([p.hourly_wage_usd for p in bank])
    weight = np.array([p.weight for p in bank])
    median = weighted_quantile(wage, weight, 0.5)
    said = " ".join(result.output.split())
    assert f"survey-weighted median wage ${median:.2f}/h" in said
    assert abs(median - np.median(wage)) > 1.0  # the oversampled top brackets moved it
    huge = CliRunner().invoke(main, ["personas", "sample", "--n", "10000000", "--out", str(out)])
    assert huge.exit_code == 2 and "Traceback" not in huge.output


def test_a_gb2_sample_is_not_told_its_size_misses_the_wage_targets(tmp_path: Path) -> None:
    """gb2 wages are LLM Economist's fit, not the OEWS tables the wage targets come from:
    its misses are by design, where the message blamed "this size"."""
    out = tmp_path / "g.jsonl"
    args = ["personas", "sample", "--n", "2000", "--mode", "gb2", "--simple", "--out", str(out)]
    said = " ".join(CliRunner().invoke(main, args).output.split())
    assert "not all validation targets met: gb2 draws wages from LLM Economist's fit" in said
    assert "at this size" not in said


def test_validate_of_a_file_refuses_the_options_of_a_fresh_sample(tmp_path: Path) -> None:
    from llmecon.personas import default_bank_path

    args = ["personas", "validate", "--file", str(default_bank_path()), "--mode", "gb2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "--mode set how a fresh sample is drawn" in result.output


def test_validate_takes_the_bank_as_show_does(tmp_path: Path) -> None:
    # `personas show FILE I` takes the bank as an argument, `validate FILE` said
    # "unexpected extra argument"; `default` names the shipped bank for both.
    bank = tmp_path / "b.jsonl"
    CliRunner().invoke(main, ["personas", "sample", "--n", "60", "--seed", "2", "--out", str(bank)])
    by_argument = CliRunner().invoke(main, ["personas", "validate", str(bank)])
    by_option = CliRunner().invoke(main, ["personas", "validate", "--file", str(bank)])
    assert "Traceback" not in by_argument.output
    assert by_argument.exit_code == by_option.exit_code
    assert by_argument.output == by_option.output and "effective size" in by_argument.output
    shipped = CliRunner().invoke(main, ["personas", "validate", "default"])
    assert shipped.exit_code == 0 and "all targets met" in shipped.output, shipped.output
    both = CliRunner().invoke(main, ["personas", "validate", str(bank), "--file", "x.jsonl"])
    assert both.exit_code == 2 and "two banks given" in both.output


def test_a_run_on_a_smaller_bank_uses_all_of_it(tmp_path: Path) -> None:
    import llmecon

    bank = tmp_path / "b.jsonl"
    CliRunner().invoke(main, ["personas", "sample", "--n", "40", "--out", str(bank)])
    result = llmecon.run(planner="saez", personas=str(bank), years=1, out=str(tmp_path))
    assert result.config.agents == 40  # the default 1 000 rational workers, capped


def test_a_run_beyond_the_shipped_bank_says_its_personas_are_a_simple_sample(
    tmp_path: Path,
) -> None:
    # --agents 1001 drew 1 001 unweighted personas (few top earners) instead of the
    # stratified, weighted bank, and only the manifest's `selection` said so.
    import warnings

    from llmecon import load_run
    from llmecon.runs.wiring import FreshPersonasWarning

    args = ["run", "--planner", "us-federal", "--workers", "rational", "--years", "1"]
    with pytest.warns(FreshPersonasWarning) as caught:
        result = CliRunner().invoke(main, [*args, "--agents", "1001", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    said = " ".join(str(w.message) for w in caught if w.category is FreshPersonasWarning)
    assert "the shipped persona bank holds 1,000 personas" in said
    assert "draws 1,001 fresh ones from the Census sampler by simple random sampling" in said
    assert "`llmecon personas sample --n 1001 --seed 0 --out personas-1001.jsonl`" in said
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    note = load_run(run_dir).population_note
    assert "1001 fresh draws" in note and "a simple random sample, every weight 1" in note
    with warnings.catch_warnings():
        warnings.simplefilter("error", FreshPersonasWarning)
        quiet = CliRunner().invoke(main, [*args, "--agents", "1000", "--out", str(tmp_path)])
    assert quiet.exit_code == 0, quiet.output


def test_sample_refuses_to_replace_a_file_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "mine.jsonl"
    out.write_text("my own, hand-written bank\n", encoding="utf-8")
    args = ["personas", "sample", "--n", "1", "--seed", "2", "--out", str(out)]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1 and "exists" in refused.output and "--force" in refused.output
    assert out.read_text(encoding="utf-8") == "my own, hand-written bank\n"
    forced = CliRunner().invoke(main, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    assert len(load_bank(out)) == 1
    assert "wrote 1 persona to" in " ".join(forced.output.split())


def test_implausible_records_counts_personas_not_their_problems(tmp_path: Path) -> None:
    import json

    from llmecon.personas import default_bank_path, validate

    record = json.loads(default_bank_path().read_text(encoding="utf-8").splitlines()[0])
    wage, hours = 30.0, 40
    record.update(
        occupation_code="29-1141",
        occupation_title="Registered Nurses",
        age=16,
        age_band="16-19",
        filing_status="married_joint",
        children=2,
        household_size=4,
        hourly_wage_usd=wage,
        usual_weekly_hours=hours,
        annual_earnings_usd=52 * wage * hours,
    )
    path = tmp_path / "teen.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    report = validate(load_bank(path))
    assert len(report.implausible) == 3  # below the nurses' minimum age, married, parent
    assert report.row("implausible records").sample == 1
