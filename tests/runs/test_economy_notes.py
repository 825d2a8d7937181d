"""What the economy could not settle in a year (a rebate equilibrium that did not
converge, workers who consume nothing under CRRA) is said in the summary, at the
terminal and in the report, not only in the years table."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from llmecon import load_run
from llmecon.cli import main

# Found by a search of random schedules: under CRRA η = 2 the first 50 personas' rebate
# has no exact fixed point here (a worker's best response jumps over it).
UNSETTLED = "fixed:31%,49%,89%,93%,36%,57%,32%"


def test_unconverged_years_are_in_the_summary_the_terminal_and_the_report(
    tmp_path: Path,
) -> None:
    # The instructor's trial: a year flagged rebate_converged 0.0 in the years table,
    # and nothing in the summary, the terminal's summary or the report.
    args = ["run", "--planner", UNSETTLED, "--workers", "rational", "--agents", "50",
            "--crra", "2", "--years", "2", "--out", str(tmp_path), "--run-id", "r"]  # fmt: skip
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    said = " ".join(done.output.split())
    summary = load_run(tmp_path / "r").summary
    years = summary["unconverged_years"]
    assert years == [0, 1]  # the fixed schedule from tax year 1
    residual = summary["unconverged_residual_max_usd"]
    assert residual > 1.0
    assert "the rebate equilibrium of 2 tax years (1, 2) did not converge" in said
    assert f"up to ${residual:,.2f} a year" in said
    report = CliRunner().invoke(main, ["report", str(tmp_path / "r")])
    assert report.exit_code == 0, report.output
    html = " ".join((tmp_path / "r" / "report.html").read_text().split())
    assert "Economy: the rebate equilibrium of 2 tax years (1, 2) did not converge" in html


def test_a_run_whose_years_converged_says_nothing_of_it(tmp_path: Path) -> None:
    args = ["run", "--planner", "us-federal", "--workers", "rational", "--agents", "50",
            "--crra", "2", "--years", "2", "--out", str(tmp_path), "--run-id", "r"]  # fmt: skip
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    summary = load_run(tmp_path / "r").summary
    assert "unconverged_years" not in summary
    assert "did not converge" not in done.output


def test_a_year_in_which_workers_consume_nothing_is_said(tmp_path: Path) -> None:
    # flat:100% under CRRA η = 2: nobody works, nothing is rebated, every worker's
    # utility is −∞, scored at a hidden floor: "final SWF −1,000,000,000", "gain closed
    # −9,106,635,840,606,490.0 %" and not a word of why.
    args = ["run", "--planner", "flat:100%", "--workers", "rational", "--agents", "20",
            "--crra", "2", "--years", "1", "--out", str(tmp_path), "--run-id", "r"]  # fmt: skip
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    said = " ".join(done.output.split())
    summary = load_run(tmp_path / "r").summary
    assert summary["zero_consumption_years"] == [0]
    assert summary["zero_consumption_workers_max"] == 20
    assert "in 1 tax year (1) up to 20 workers consumed nothing" in said
    assert "scored at a consumption of $1e-09" in said
    # a 90 % flat tax leaves the rebate: nobody consumes nothing, and nothing is said
    args[2] = "flat:90%"
    args[-1] = "r90"
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    assert "zero_consumption_years" not in load_run(tmp_path / "r90").summary
    assert "consumed nothing" not in done.output
