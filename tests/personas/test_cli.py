"""``llmecon personas`` through click's runner."""

from __future__ import annotations

from pathlib import Path

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


def test_validate_passes_for_census_and_fails_for_gb2() -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["personas", "validate", "--n", "100000", "--seed", "1"])
    assert ok.exit_code == 0, ok.output
    assert "23.80" in ok.output and "60.44" in ok.output and "all targets met" in ok.output
    bad = runner.invoke(main, ["personas", "validate", "--n", "20000", "--mode", "gb2"])
    assert bad.exit_code == 1 and "missed" in bad.output
