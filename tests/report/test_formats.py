"""One format per kind of quantity, in every table, note, tip and axis of the run report
and the sweep page; and the sweep page's bands and axes."""

from __future__ import annotations

import html as html_module
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmecon import load_run
from llmecon.cli import main
from llmecon.report import render_report
from llmecon.report._svg import Axis, Series, integer, line_chart, pct, usd
from tests.report.htmlcheck import parse

WELFARE_RE = r"−?\d{1,3}(,\d{3})*\.\d\d"
MONEY_RE = r"−?\$(\d{1,3}|\d{1,3}\.\dk|\d+\.\d\dM|\d+\.\d\dB)"
PERCENT_RE = r"−?\d{1,3}(,\d{3})*\.\d %"

#: Table headings of the run report by the kind of their cells: a value, or a value
#: followed by its change in brackets (changes against the status quo).
KINDS = {
    "money": (MONEY_RE, ("revenue, all workers", "revenue, all 16 workers", "mean income")),
    "money change": (r"[+−]?" + MONEY_RE.removeprefix("−?"), ("Δ consumption", "Δ tax")),
    "percent": (
        PERCENT_RE,
        ("effective rate", "mean marginal rate", "population share", "gaining", "losing"),
    ),
    "hours": (r"−?\d+\.\d h", ("mean hours", "median", "10 %", "90 %", "most common")),
    "hours change": (r"[+−]?\d+\.\d h", ("Δ weekly hours",)),
    "Gini": (r"0\.\d{3}", ("Gini income", "Gini consumption")),
    "cost": (r"\$\d+\.\d{4}", ("cost",)),
    "seconds": (r"\d+\.\d\d s", ("mean latency", "p95 latency")),
}


@pytest.fixture(scope="module")
def vote_html(vote_run: Path) -> str:
    """Scripted LLM workers (calls, latency, cost), votes, persona incidence."""
    return render_report([load_run(vote_run)])


def _tables(page: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every table of a page: its headings and rows of cell texts (unescaped)."""
    out = []
    for head, body in re.findall(
        r"<thead><tr>(.*?)</tr></thead><tbody>(.*?)</tbody>", page, flags=re.S
    ):
        headers = [html_module.unescape(h) for h in re.findall(r"<th>(.*?)</th>", head)]
        rows = [
            [html_module.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row, flags=re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)
        ]
        out.append((headers, rows))
    return out


def _column(page: str, header: str, within: str | None = None) -> list[str]:
    """Every non-empty cell under ``header``, in every table of the page (that also has
    the heading ``within``)."""
    cells = []
    for headers, rows in _tables(page):
        if header in headers and (within is None or within in headers):
            i = headers.index(header)
            cells += [r[i] for r in rows if len(r) > i and r[i] not in ("", "–")]
    return cells


def _value(cell: str) -> str:
    """``38,992.02 (+63.56)`` → ``38,992.02``."""
    return cell.split(" (")[0]


def test_welfare_reads_the_same_in_every_section(vote_html: str) -> None:
    """The final SWF was ``38,992`` in the tables and ``38,915.06`` in the note; a
    change ``+63.56`` next to a value without decimals; ``16.93`` in one column with
    ``38,992``."""
    final = _column(vote_html, "final SWF")[0]
    assert re.fullmatch(WELFARE_RE, final), final
    years = _column(vote_html, "SWF", within="rates by bracket")
    assert years[-1] == final  # the years table's last tax year
    changes = _column(vote_html, "SWF", within="Gini consumption")
    assert _value(changes[-1]) == final
    decomposition = [_value(c) for h in ("value", "efficiency", "equity") for c in
                     _column(vote_html, h)]  # fmt: skip
    references = [c for h in ("no tax", "oracle") for c in _column(vote_html, h, within="no tax")]
    for cell in [*years, *changes, *decomposition, *references]:
        assert re.fullmatch(WELFARE_RE, _value(cell)), cell
    # (a difference below 1 keeps four significant digits, as a welfare below 1 does:
    # −0.08814, not −0.09)
    small = r"[+−]?0\.0*[1-9]\d{3}"
    for cell in _column(vote_html, "Δ value"):
        assert re.fullmatch(r"[+−]?" + WELFARE_RE.removeprefix("−?"), cell) or re.fullmatch(
            small, cell
        ), cell
    note = re.search(r"scored ([^;]*); the final year (\S+) against it", vote_html)
    assert note is not None
    assert re.fullmatch(WELFARE_RE, note[1]) and re.fullmatch(r"[+−][\d,]+\.\d\d", note[2])


def test_each_kind_has_one_format_in_every_table(vote_html: str) -> None:
    """Dollars were ``$209k`` and ``$190.7k`` in one column, percent ``10 %`` and
    ``9.91 %``, hours ``-0.0001238`` and ``+1.5``, the cost ``0`` and the latency
    ``0.0002905``."""
    for kind, (pattern, headers) in KINDS.items():
        for header in headers:
            cells = _column(vote_html, header)
            assert cells, header
            for cell in cells:
                value, _, change = cell.partition(" (")
                assert re.fullmatch(pattern, value), (kind, header, cell)
                if change and kind == "percent":
                    assert re.fullmatch(r"[+−]?\d+\.\d pp\)", change), cell


def test_negative_numbers_take_one_minus_sign(vote_html: str) -> None:
    """``−$132`` (U+2212) in one column, ``-63.37`` (a hyphen) in the next."""
    for _, rows in _tables(vote_html):
        for cell in (c for row in rows for c in row):
            assert not re.search(r"(^|[\s(\[])-\d", cell), cell


def test_rates_read_the_same_in_tables_and_votes(vote_html: str) -> None:
    """Rates by bracket were ``10 / 12 / 22 %`` in one table and ``10/12/22 %`` in the
    votes', the same rate ``10 %`` there and ``32.4 %`` in the schedules table."""
    by_year = _column(vote_html, "rates by bracket")
    voted = _column(vote_html, "rates")
    assert by_year and voted
    for cell in [*by_year, *voted]:
        assert re.fullmatch(r"\d+\.\d( / \d+\.\d)* %", cell), cell
    for header in ("status quo", "Saez"):
        for cell in _column(vote_html, header, within="bracket (annual income)"):
            assert re.fullmatch(PERCENT_RE, _value(cell)), cell


def _ticks(chart: str) -> list[str]:
    return re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', chart)


def test_an_axis_writes_its_ticks_with_one_number_of_decimals() -> None:
    """``0 %, 2.5 %, 5 %`` on one axis; ``$250``, ``$1k``, ``$1.25k`` on another."""
    years = Axis("tax year", integer, integer=True)
    rates = line_chart([Series("r", [1, 2, 3], [0.0, 0.06, 0.12], "#000")], years,
                       Axis("rate", pct, zero=True))  # fmt: skip
    labels = [t for t in _ticks(rates) if t.endswith("%")]
    assert "2.5 %" in labels and {len(t.split(".")[-1]) for t in labels} == {len("5 %")}
    money = line_chart([Series("m", [1, 2], [0.0, 1200.0], "#000")], years,
                       Axis("USD", usd, zero=True))  # fmt: skip
    labels = [t for t in _ticks(money) if t.startswith("$")]
    assert "$250" in labels and all("k" not in t for t in labels), labels


def test_long_tick_labels_do_not_run_into_the_axis_label() -> None:
    """The plot started at 64 px whatever its ticks: ``1,500,000`` (about 56 px at the
    tick font) reached from 59 px back over the rotated axis label at 6–17 px."""
    chart = line_chart(
        [Series("w", [1, 2, 3], [1.2e6, 1.35e6, 1.5e6], "#000")],
        Axis("tax year", integer, integer=True),
        Axis("SWF", integer),
    )
    left = float(re.search(r'<rect class="plot" x="([\d.]+)"', chart)[1])  # type: ignore[index]
    longest = max(len(t) for t in _ticks(chart))
    assert longest >= len("1,500,000")
    assert left - 5 - 6.2 * longest >= 20


# -- the sweep page ------------------------------------------------------------------------


def _sweep(out: Path, name: str, seeds: str) -> str:
    from llmecon.report._sweep import render_sweep_report
    from llmecon.sweeps import load_sweep

    args = ["--planners", "saez,none", "--seeds", seeds, "--workers", "rational"]
    small = ["--agents", "20", "--years", "3", "--jobs", "1", "--name", name]
    result = CliRunner().invoke(main, ["sweep", *args, *small, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return render_sweep_report(load_sweep(out / name))


@pytest.fixture(scope="module")
def sweep_pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("sweeps")
    return {"two": _sweep(out, "two", "0-1"), "one": _sweep(out, "one", "0")}


def test_sweep_tables_write_each_metric_as_the_run_report(sweep_pages: dict[str, str]) -> None:
    """Gain closed was ``99.03 % [99.03, 99.03]`` in the settings table and ``99 %`` in
    the cells table; revenue per worker ``20,435`` without a unit; cost ``0 [0, 0]``
    there and ``$0.0000`` below."""
    page = sweep_pages["two"]
    gaps = _column(page, "gain closed")
    assert len(gaps) == 2 + 4  # two settings, four cells
    for cell in gaps:
        assert re.fullmatch(rf"{PERCENT_RE}( \[{PERCENT_RE}, {PERCENT_RE}\])?", cell), cell
    for cell in _column(page, "revenue per worker"):
        assert re.fullmatch(rf"{MONEY_RE} \[{MONEY_RE}, {MONEY_RE}\]", cell), cell
    for cell in _column(page, "cost"):
        assert re.fullmatch(r"\$\d+\.\d{4}( \[\$\d+\.\d{4}, \$\d+\.\d{4}\])?", cell), cell
    for cell in _column(page, "final SWF"):
        assert re.fullmatch(rf"{WELFARE_RE}( \[{WELFARE_RE}, {WELFARE_RE}\])?", cell), cell


def test_a_one_seed_sweep_says_it_draws_no_band(sweep_pages: dict[str, str]) -> None:
    """With one seed the page said "shaded: its 95 % band" above charts without any,
    and each point's tip "46,049 [–, –], 1 seeds"."""
    page = parse(sweep_pages["one"])
    text = " ".join(page.text)
    assert "no band" in text and "shaded: its 95 % band" not in text
    assert not any("1 seeds" in t or "[–, –]" in t for t in page.tips)
    assert "<polygon" not in sweep_pages["one"]
    two = parse(sweep_pages["two"])
    assert "<polygon" in sweep_pages["two"] and any("2 seeds" in t for t in two.tips)


def test_sweep_welfare_charts_share_one_named_axis(sweep_pages: dict[str, str]) -> None:
    """Each setting's chart had its own y range (saez's flat line at 46,049 looked as
    high as no tax's at 39,909) and the axis said "social welfare (objective)" without
    naming the objective."""
    page = sweep_pages["two"]
    section = page[page.index('id="swf"') : page.index('id="gain"')]
    charts = re.findall(r"<svg class=\"chart\".*?</svg>", section, flags=re.S)
    assert len(charts) == 2
    y_ticks = [[t for t in _ticks(c) if "," in t] for c in charts]
    assert y_ticks[0] and y_ticks[0] == y_ticks[1]
    assert all("SWF: inverse_income" in c for c in charts)
    gain = page[page.index('id="gain"') :]
    assert any(t.endswith(" %") for t in _ticks(gain))  # the unit on the gain axis


def test_compact_dollars_change_unit_only_when_the_smaller_one_overflows() -> None:
    from llmecon._format import USD, WELFARE

    # $951 was "$1.0k" (5 % off): the unit was chosen at the larger unit's precision.
    assert [USD(x) for x in (949, 951, 999.4, 999.6)] == ["$949", "$951", "$999", "$1.0k"]
    assert [USD(x) for x in (995_000, 999_949, 999_960)] == ["$995.0k", "$999.9k", "$1.00M"]
    assert USD(-11_034) == "\u2212$11.0k"
    # A missing tick is a dash, as a missing value is (it raised ValueError).
    assert WELFARE.ticks([float("nan"), 1.0, 2.5]) == ["–", "1.0", "2.5"]


def test_sweep_charts_leave_out_the_cells_the_table_leaves_out(tmp_path: Path) -> None:
    """Cells that did not complete were shown as failed in the table (seeds 0) while the
    charts still drew "mean, 95 % band … 2 seeds" from their years."""
    from llmecon.report._sweep import render_sweep_report
    from llmecon.sweeps import load_sweep

    _sweep(tmp_path, "f", "0-1")
    data = load_sweep(tmp_path / "f")
    saez = data.cells["cell_id"].str.startswith("saez")
    assert int(saez.sum()) == 2
    before = render_sweep_report(data)
    data.cells.loc[saez, "status"] = "failed"
    page = render_sweep_report(data)
    failed = set(data.cells.loc[saez, "cell_id"])
    assert any(f"seed cell {c}" in before for c in failed)
    assert not any(f"seed cell {c}" in page for c in failed)
    assert "2 cells that did not complete are left out, as in the table." in page


def test_revenue_says_whether_it_is_a_total_or_per_worker(
    vote_html: str, sweep_pages: dict[str, str]
) -> None:
    """The run report's "revenue" was the total of the simulated workers ($1.02M) and the
    sweep page's "revenue/worker" a mean ($20.4k): the labels did not make it plain."""
    headers = {h for hs, _ in _tables(vote_html) for h in hs}
    assert {"revenue, all 16 workers", "revenue, all workers"} <= headers
    assert "revenue" not in headers
    assert "Revenue, all 16 workers (USD/yr)" in vote_html  # the chart says it too
    assert _column(sweep_pages["two"], "revenue per worker")


def test_the_winners_swf_says_it_is_at_rational_responses(vote_html: str) -> None:
    """ "winner's SWF" stood beside the realised SWF of the same year and schedule without
    saying it was computed at rational best responses."""
    headers = {h for hs, _ in _tables(vote_html) for h in hs}
    assert "winner's SWF at rational responses" in headers
    assert "winner's SWF" not in headers


def _round(shares: dict[str, float], rule: str = "plurality") -> object:
    from llmecon.runs.events import VoteRound

    labels = list(shares)
    origins = ["incumbent", *(f"platform of persona-{i}" for i in range(1, len(labels)))]
    return VoteRound(
        year=2, rule=rule, source="platforms", voters="rational",
        candidates=[{"label": k, "rates": [0.1 * i], "origin": o}
                    for i, (k, o) in enumerate(zip(labels, origins, strict=True))],
        ballots=[], scores=dict(shares), shares=shares, turnout=0.68, winner=labels[0],
        tied=[], counts={}, valid_ballots=1, survey_weighted=False,
        candidate_swf=dict.fromkeys(labels, 1.0), winner_swf=1.0,
        best_candidate=labels[0], best_candidate_swf=1.0,
    )  # fmt: skip


def test_the_terminal_tells_a_vote_as_the_report_writes_its_numbers(
    vote_run: Path, tmp_path: Path
) -> None:
    """`llmecon run` printed "turnout 100%" and "A (incumbent) 68%" where the report
    writes "100.0 %" and "68.0 %"; a round with one candidate showed a share of 0 %."""
    from llmecon.voting.rounds import vote_line

    said = vote_line(_round({"A": 0.625, "B": 0.375}))  # type: ignore[arg-type]
    assert "turnout 68.0 %" in said and "A (incumbent) 62.5 %" in said
    assert "B (platform of persona-1) 37.5 %" in said
    alone = vote_line(_round({"A": 0.0}, rule="borda"))  # type: ignore[arg-type]
    assert "uncontested" in alone and "0.0 %" not in alone.split("turnout")[1]
    args = ["run", "--planner", "us-federal", "--workers", "rational", "--agents", "8",
            "--years", "3", "--vote-every", "2", "--out", str(tmp_path)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    line = " ".join(result.output.split()).split("voting round")[1]
    assert re.search(rf"turnout {PERCENT_RE}\)", line), line
    assert not re.search(r"\d%", line), line


def test_sweep_tables_show_model_columns_only_for_models_and_counts_as_counts(
    sweep_pages: dict[str, str], tmp_path: Path
) -> None:
    """Baselines on rational workers showed "cost $0.0000 [$0.0000, $0.0000]" and
    "fallbacks 0.0 [0.0, 0.0]" on the sweep page (the terminal left them out); a count
    of fallbacks read as a measurement to a tenth."""
    from llmecon.report._sweep import render_sweep_report
    from llmecon.sweeps import load_sweep

    headers = {h for hs, _ in _tables(sweep_pages["two"]) for h in hs}
    assert "final SWF" in headers and not {"cost", "fallbacks"} & headers
    args = ["sweep", "--planners", "us-federal", "--workers", "scripted/reference",
            "--agents", "6", "--years", "2", "--seeds", "0-1", "--jobs", "1", "--name", "s",
            "--out", str(tmp_path)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    page = render_sweep_report(load_sweep(tmp_path / "s"))
    fallbacks = _column(page, "fallbacks")  # a scripted model's calls
    assert fallbacks and all(re.fullmatch(r"\d+ \[\d+, \d+\]", c) for c in fallbacks)
    table = result.output[result.output.index("┏") :]
    assert "fallbacks" in table and "0.0 [" not in table


def test_an_uncontested_round_reads_as_uncontested(tmp_path: Path) -> None:
    """Every candidate merged into one (docs/voting.md): Borda gives the only candidate
    no points, and the report showed "winner's share 0.0 %" and an empty bar."""
    from llmecon.runs.dataframes import OtherEvent
    from tests.report.crafted import craft_run

    alone = OtherEvent(  # type: ignore[call-arg]
        type="vote_round", year=3, rule="borda", source="planner", voters="rational",
        candidates=[{"label": "A", "rates": [0.2] * 7, "origin": "incumbent;planner"}],
        ballots=[], scores={"A": 0.0}, shares={"A": 0.0}, turnout=1.0, winner="A",
        candidate_swf={"A": 100.0}, winner_swf=100.0, best_candidate="A",
        best_candidate_swf=100.0,
    )  # fmt: skip
    page = render_report([load_run(craft_run(tmp_path / "r", hostile=False, extra=[alone]))])
    shares = _column(page, "winner's share")
    assert len(shares) == 3 and shares[-1] == "uncontested"
    assert all(re.fullmatch(PERCENT_RE, s) for s in shares[:-1])  # the contested rounds
    tips = parse(page).tips
    assert any("A: uncontested, the only candidate" in t for t in tips)
    assert not any(t.startswith("A: 0.0 %") for t in tips)


def test_the_schedule_says_how_many_workers_earn_in_each_bracket(tmp_path: Path) -> None:
    """Saez set 100 % on a bracket where none of 50 workers earned, and the report and
    `run`'s final schedule showed it as a finding: both now count each bracket's
    workers in the final year (from the logged incomes) and say what an empty
    bracket's rate does."""
    from llmecon.economy import TaxSchedule

    args = ["run", "--planner", "saez", "--workers", "rational", "--agents", "50",
            "--years", "2", "--out", str(tmp_path), "--run-id", "r"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    run = load_run(tmp_path / "r")
    final = run.agents[run.agents["year"] == 2]
    rates = run.rates[run.rates["year"] == 2].sort_values("bracket")["rate"]
    counts = TaxSchedule(run.edges, tuple(rates)).workers_per_bracket(final["income_usd"])
    assert counts.sum() == 50 and (counts == 0).any()  # the first 50 personas: an empty one
    printed = result.output.split("final schedule")[1]
    lines = [line for line in printed.splitlines() if ": " in line and "%" in line][:7]
    assert [int(re.search(r"\((\d+) workers?\)", line)[1]) for line in lines] == [  # type: ignore[index]
        int(n) for n in counts
    ]
    assert "taxes nobody's marginal income" in " ".join(printed.split())
    page = render_report([run])
    column = _column(page, "r: workers in it (final year)")
    assert [int(c) for c in column] == [int(n) for n in counts]
    assert "taxes nobody's marginal income" in html_module.unescape(page)


def test_a_winner_by_survey_weights_is_not_written_level_with_the_one_it_beat() -> None:
    """With the shipped bank's near-1 weights a 3–3 head count is decided by the weights
    (3.0008 to 2.9984 of 8), which the terminal wrote as 37.5 % against 37.5 %."""
    from llmecon.voting.rounds import share_decimals, vote_line

    shares = {"A": 3.0008 / 8, "B": 2.9984 / 8, "C": 2.0008 / 8}
    said = vote_line(_round(shares))  # type: ignore[arg-type]
    assert "A (incumbent) 37.51 %" in said and "B (platform of persona-1) 37.48 %" in said
    assert share_decimals(shares, "A") == 2
    assert share_decimals({"A": 0.625, "B": 0.375}, "A") == 1  # apart at one decimal
    assert share_decimals({"A": 0.5, "B": 0.5}, "A", tied=["B"]) == 1  # a true tie
    assert share_decimals({"A": 0.5, "B": 0.5}, "A") == 1  # an unmarked tie
    assert share_decimals({"A": 0.5 + 1e-9, "B": 0.5}, "A") == 4  # as far as it goes


def test_welfare_too_small_for_two_decimals_keeps_its_significant_digits() -> None:
    # Under CRRA with η = 2 every welfare (about −2e-5) read 0.00 in the terminal and
    # the report: final, best, status quo and oracle alike.
    from llmecon._format import WELFARE

    assert WELFARE(-2.0547495e-05) == "−0.00002055" and WELFARE(-2.1236e-05) == "−0.00002124"
    assert WELFARE.change(6.7e-07) == "+0.0000006700"
    assert WELFARE.ticks([-3e-5, -2.5e-5, -2e-5]) == ["−0.000030", "−0.000025", "−0.000020"]
    assert WELFARE(42651.4665) == "42,651.47" and WELFARE(1.198) == "1.20"  # as before
    assert WELFARE(0.0) == "0.00"
    # η = 1.5: every welfare of a run (−0.0106 … −0.0092) and its references read −0.01
    assert WELFARE(-0.010582) == "−0.01058" and WELFARE(-0.009447) == "−0.009447"
    assert WELFARE(-0.010057) != WELFARE(-0.010834)


def test_a_round_the_survey_weights_decided_says_so_in_the_report(tmp_path: Path) -> None:
    """A 3–3 head count decided by survey weights read as a plain win in the report."""
    from llmecon.runs.dataframes import OtherEvent
    from tests.report.crafted import craft_run

    level = OtherEvent(  # type: ignore[call-arg]
        type="vote_round", year=3, rule="plurality", source="planner", voters="rational",
        candidates=[{"label": "A", "rates": [0.2] * 7, "origin": "incumbent;planner"},
                    {"label": "B", "rates": [0.3] * 7, "origin": "planner"}],
        ballots=[], scores={"A": 3.0008, "B": 2.9984}, counts={"A": 3.0, "B": 3.0},
        shares={"A": 3.0008 / 5.9992, "B": 2.9984 / 5.9992}, turnout=1.0, winner="A",
        tied=[], survey_weighted=True, candidate_swf={"A": 100.0, "B": 90.0},
        winner_swf=100.0, best_candidate="A", best_candidate_swf=100.0,
    )  # fmt: skip
    page = render_report([load_run(craft_run(tmp_path / "r", hostile=False, extra=[level]))])
    shares = _column(page, "winner's share")
    assert shares[-1].endswith("(a 3–3 tie in ballots; the survey weights decided)"), shares
    assert not any("survey weights" in s for s in shares[:-1])  # the crafted run's others


def test_a_run_page_lists_the_settings_it_shares_away_from_their_defaults(
    tmp_path: Path,
) -> None:
    # A CRRA run's page said "Settings: planner = ucb, workers = rational, agents = 60,
    # …": nothing told the reader its utility was CRRA (or its elasticity 0.8), and every
    # welfare on it read −0.01.
    args = ["run", "--planner", "flat:30", "--workers", "rational", "--agents", "12",
            "--years", "2", "--crra", "1.5", "--elasticity", "0.8", "--no-reference",
            "--out", str(tmp_path), "--run-id", "c"]  # fmt: skip
    assert CliRunner().invoke(main, args).exit_code == 0
    page = render_report([load_run(tmp_path / "c")])
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "crra = 1.5" in text and "elasticity = 0.8" in text
    assert "seed = " not in text and "max weekly hours" not in text  # defaults stay out
    swf = load_run(tmp_path / "c").years["swf"].iloc[-1]
    assert -1 < swf < 0 and f"{swf:.4g}".replace("-", "−") in text  # four significant digits


def test_a_satisfaction_runs_page_says_its_welfare_halves_the_dissatisfied(
    tmp_path: Path,
) -> None:
    # Its gain closed read −85 % and every income decile "losing 100 %" under the status
    # quo's own rates: the run's welfare halves the dissatisfied, the references do not,
    # and nothing on the page said so.
    args = ["run", "--planner", "scripted/reference", "--workers", "scripted/reference",
            "--agents", "6", "--years", "1", "--worker-satisfaction", "--no-reference",
            "--out", str(tmp_path), "--run-id", "s"]  # fmt: skip
    assert CliRunner().invoke(main, args).exit_code == 0
    page = html_module.unescape(re.sub(r"<[^>]+>", " ", render_report([load_run(tmp_path / "s")])))
    text = " ".join(page.split())
    assert "counts those who are not at half their utility" in text
    assert "include that halving, not only the tax policy's effect" in text
    assert "worker satisfaction = True" in text  # and the setting is listed


def test_a_year_the_run_stopped_in_is_not_among_the_worker_answers(tmp_path: Path) -> None:
    # A run stopped during tax year 2 showed year 2 in "Worker answers by tax year" (its
    # 100 calls: enough for an anchoring warning naming a year that never completed).
    args = ["run", "--planner", "flat:30", "--workers", "scripted/reference", "--agents",
            "12", "--years", "2", "--no-reference", "--out", str(tmp_path),
            "--run-id", "k"]  # fmt: skip
    assert CliRunner().invoke(main, args).exit_code == 0
    log = tmp_path / "k" / "events.jsonl"
    lines = log.read_text().splitlines()
    done = [i for i, line in enumerate(lines) if '"type":"year_completed"' in line]
    log.write_text("\n".join(lines[: done[0] + 8]) + "\n")  # killed in tax year 2
    run = load_run(tmp_path / "k")
    assert run.years["year"].tolist() == [1] and (run.calls["year"] == 2).sum() > 0
    page = html_module.unescape(re.sub(r"<[^>]+>", " ", render_report([run])))
    text = " ".join(page.split())
    answers = text[text.index("Worker answers by tax year") :]
    assert "the answers of tax year 2, which the run stopped in before it completed" in answers
    calls = run.calls
    n2 = int(((calls["year"] == 2) & (calls["role"] == "worker")).sum())
    assert f" 2 {n2} " not in answers and " 1 12 " in answers  # year, answers


def test_a_run_stopped_by_its_budget_in_year_one_is_not_called_killed(tmp_path: Path) -> None:
    # "Oracle reference not computed: the run did not complete (killed, interrupted or
    # still running)", of a run that ended budget_exceeded before a year completed
    args = ["run", "--planner", "flat:30", "--workers", "mock/default", "--agents", "10",
            "--years", "2", "--price", "1,1", "--max-cost", "0.0001", "--no-reference",
            "--out", str(tmp_path), "--run-id", "b"]  # fmt: skip
    assert CliRunner().invoke(main, args).exit_code == 3
    run = load_run(tmp_path / "b")
    assert run.status == "budget_exceeded" and len(run.years) == 0
    text = " ".join(html_module.unescape(render_report([run])).split())
    assert "the run ended budget_exceeded before it completed a tax year" in text
    assert "killed, interrupted" not in text


def test_the_sweep_page_says_its_intervals_are_clipped(sweep_pages: dict[str, str]) -> None:
    # "95 % Student-t interval" above "$22.8k [$0, $55.8k]": lopsided, without a word
    text = " ".join(html_module.unescape(sweep_pages["two"]).split())
    assert "clipped to the range the quantity can take" in text
