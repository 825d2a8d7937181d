"""What the LLM planner is told (noise interval, change against the previous year, the
bracket breakdown, the exploration note), that the scripted reference planner uses the
interval, and what a run's summary says about its workers."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from llmecon.agents.calls import PlannerAsk
from llmecon.agents.planner_prompts import (
    PlannerPromptSettings,
    bracket_income_quartiles,
    bracket_shares,
    planner_prompt,
    welfare_noise_sd,
)
from llmecon.agents.scripted import climb
from llmecon.cli import main
from llmecon.cli._common import out
from llmecon.cli.run import _print_summary
from llmecon.planners import YearRecord
from llmecon.prompts import PromptLibrary
from llmecon.runs import build_config, build_simulation
from llmecon.runs.reference import (
    DEGENERATE_SHARE,
    MIN_ALIKE_ANSWERS,
    identical_answer_share,
    worker_notes,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Four years of the scripted reference (30 workers, ±2 h noise)."""
    out_dir = tmp_path_factory.mktemp("runs")
    name = "scripted/reference-noise2"
    cfg = build_config(
        overrides=dict(agents=30, years=4, planner=name, workers=name, out=str(out_dir), run_id="r")
    )
    sim = build_simulation(cfg)
    return sim, sim.run()


def _with(records: list[YearRecord], rates_pct: list[list[int]], swf: list[float]) -> list[Any]:
    """The run's years with other rates and welfare (the workers' incomes kept)."""
    out_records = []
    for rec, rates, w in zip(records, rates_pct, swf, strict=True):
        schedule = dataclasses.replace(rec.schedule, rates=tuple(r / 100 for r in rates))
        metrics = dataclasses.replace(rec.metrics, swf=w)
        out_records.append(dataclasses.replace(rec, schedule=schedule, metrics=metrics))
    return out_records


def _user_text(sim: Any, history: list[Any], settings: PlannerPromptSettings) -> str:
    prompt = planner_prompt(
        PromptLibrary(),
        ctx=sim.planner_context,
        history=history,
        settings=settings,
        year=len(history),
    )
    return prompt.messages[1].content


A = [10, 12, 22, 24, 32, 35, 37]
B = [10, 12, 22, 24, 32, 35, 42]
C = [10, 12, 22, 29, 32, 35, 37]


def test_the_interval_is_twice_the_spread_of_repeated_rates(run: Any) -> None:
    sim, result = run
    history = _with(result.records, [A, A, B, A], [100.0, 110.0, 104.0, 120.0])
    # Schedule A was enacted three times: welfare 100, 110, 120 → sd 10 (two dof).
    assert welfare_noise_sd(history) == pytest.approx(10.0)
    # welfare near 100: three decimals give its six significant digits
    text = _user_text(sim, history, PlannerPromptSettings())
    assert "uncertain by ± 20.000 (95% interval)" in text
    assert "mean of 3 years with these rates 110.000 ± 11.547" in text  # 2·10/√3
    assert "change from previous year: bracket 7 +5, welfare -6.000" in text
    assert "change from previous year: bracket 7 -5, welfare +16.000" in text
    assert "change from previous year: none" in text
    old = _user_text(sim, history, PlannerPromptSettings(welfare_digits=None))  # rendering 5
    assert "uncertain by ± 20.0 (95% interval)" in old and "welfare -6.0;" in old


def test_welfare_of_any_size_is_shown_with_its_significant_digits(run: Any) -> None:
    # Under CRRA with η = 2 the welfare is about −2.5e-5: every year, every change and
    # the best year read "-0.0", and the hints "+0.00": nothing to learn from.
    sim, result = run
    swf = [-2.587402e-05, -2.512345e-05, -2.498765e-05, -2.587402e-05]
    history = _with(result.records, [A, B, C, A], swf)
    settings = PlannerPromptSettings(hints=True)
    text = _user_text(sim, history, settings)
    assert "welfare -0.0000258740" in text and "welfare -0.0000249877" in text
    assert "welfare +0.0000007506" in text  # year 2's change, B against A
    assert "Best welfare so far: -0.0000249877 in year 3" in text
    slopes = re.findall(r"bracket \d: ([+-]0\.\d+)", text)
    assert slopes and any(float(x) != 0 for x in slopes), text
    old = _user_text(sim, history, PlannerPromptSettings(hints=True, welfare_digits=None))
    assert "welfare -0.0," in old and "welfare -0.0000" not in old  # rendering 5's text
    # the scripted planners read the welfare as shown: the same decimals
    from llmecon.agents.planner_prompts import shown_swf, welfare_decimals

    assert welfare_decimals(history, settings) == 10
    assert shown_swf(history[2], 10) == pytest.approx(-2.49877e-05, abs=1e-15)
    assert welfare_decimals(result.records, settings) == 1  # welfare in the ten thousands


def test_before_any_repeat_the_prompt_says_the_noise_is_unknown(run: Any) -> None:
    sim, result = run
    history = _with(result.records[:3], [A, B, C], [100.0, 104.0, 90.0])
    assert welfare_noise_sd(history) is None
    text = _user_text(sim, history, PlannerPromptSettings())
    assert "not known yet" in text and "±" not in text


def test_bracket_breakdown_counts_every_worker(run: Any) -> None:
    sim, result = run
    record = result.records[-1]
    counts, shares = bracket_shares(record)
    assert sum(map(int, counts)) == 30 and abs(sum(shares) - 100) <= len(shares)
    edges = np.array(record.schedule.edges)
    top = int(np.sum(record.income_usd >= edges[-3]))  # workers in the three top brackets
    assert sum(map(int, counts[-3:])) == top
    text = _user_text(sim, list(result.records), PlannerPromptSettings(weighted_breakdown=False))
    assert f"workers per bracket {'/'.join(counts)}, income share" in text


def test_income_shares_are_shown_to_a_tenth_of_a_point(run: Any) -> None:
    # Whole percents left a bracket with 4 % of the income with its mean income known to
    # ±12 %; the planner reads from it whether those above a bracket keep paying.
    sim, result = run
    record = result.records[-1]
    edges = np.array(record.schedule.edges)
    which = np.searchsorted(edges, record.income_usd, side="right") - 1
    true = 100 * np.bincount(which, weights=record.income_usd, minlength=edges.size)
    true /= record.income_usd.sum()
    text = _user_text(sim, list(result.records), PlannerPromptSettings(weighted_breakdown=False))
    shown = text.rsplit("income share % ", 1)[1].split()[0].split("/")
    assert all(re.fullmatch(r"\d+\.\d", x) for x in shown), shown
    assert np.abs(np.array(shown, dtype=float) - true).max() <= 0.05 + 1e-9


def test_bracket_breakdown_counts_the_people_workers_stand_for(tmp_path: Path) -> None:
    # The default bank is survey-weighted: high earners are oversampled and weighted
    # down (the first 100 personas' top earner stands for 0.18 of a worker). The welfare
    # and revenue beside the breakdown count the weights; the breakdown counted heads,
    # overstating the income the top rates tax.
    cfg = build_config(
        overrides=dict(agents=100, years=1, planner="scripted/reference", workers="rational",
                       out=str(tmp_path), run_id="w")
    )  # fmt: skip
    sim = build_simulation(cfg)
    result = sim.run()
    weight = sim.economy.population.survey_weight
    assert weight is not None and weight.min() < 0.5
    record = result.records[-1]
    counts, shares = bracket_shares(record, weight)
    heads, head_shares = bracket_shares(record)
    assert abs(sum(map(float, counts)) - 100) < 0.5  # weights have mean 1
    edges = np.array(record.schedule.edges)
    top = record.income_usd >= edges[4]  # brackets 5-7
    assert abs(sum(map(float, counts[4:])) - float(weight[top].sum())) < 0.2
    income = record.income_usd * weight
    assert abs(sum(shares[4:]) - 100 * income[top].sum() / income.sum()) <= 2
    assert sum(shares[4:]) < sum(head_shares[4:]) - 5  # the top's share, weighted, is smaller
    text = _user_text(sim, list(result.records), PlannerPromptSettings())
    assert f"workers per bracket {'/'.join(counts)} (survey-weighted), income share" in text
    assert f"income share % {'/'.join(map(str, shares))}" in text
    sample = _user_text(sim, list(result.records), PlannerPromptSettings(weighted_breakdown=False))
    assert f"workers per bracket {'/'.join(heads)}, income share" in sample


def test_the_quartiles_of_each_brackets_incomes_count_survey_weights(run: Any) -> None:
    _, result = run
    rec = result.records[-1]
    edges = (0.0, 20e3, 50e3, 100e3)
    schedule = dataclasses.replace(rec.schedule, edges=edges, rates=(0.1, 0.2, 0.3, 0.4))
    income = np.array([5e3, 30e3, 40e3, 120e3, 130e3, 140e3, 150e3, 200e3])
    rec = dataclasses.replace(rec, schedule=schedule, income_usd=income)
    # one worker: its income twice; two equal weights: the two incomes; none: None
    assert bracket_income_quartiles(rec) == [(5e3, 5e3), (30e3, 40e3), None, (127.5e3, 162.5e3)]
    # weights move the quartiles towards the heavy worker, and an unweighted worker is out
    weight = np.array([1.0, 3.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    assert bracket_income_quartiles(rec, weight)[1] == (30e3, 37.5e3)
    assert bracket_income_quartiles(rec, weight)[3] == (135e3, 175e3)


def test_the_prompt_shows_the_middle_half_of_each_brackets_incomes(run: Any) -> None:
    # A mean income does not say whether a bracket's few workers are spread far apart:
    # those near the slice's edge give it up at a lower rate than those far above.
    sim, result = run
    history = list(result.records)
    quartiles = bracket_income_quartiles(history[-1], sim.economy.population.survey_weight)
    text = _user_text(sim, history, PlannerPromptSettings())
    line = next(x for x in text.splitlines() if x.startswith("Incomes within each bracket"))
    assert f"in year {len(history)}," in line
    shown = re.findall(r"\$([\d,]+)-\$([\d,]+)|none", line.split(": ", 1)[1])
    assert len(shown) == len(quartiles)
    for (low, high), q in zip(shown, quartiles, strict=True):
        assert (q is None and not low) or (
            float(low.replace(",", "")),
            float(high.replace(",", "")),
        ) == q
    # a run logged before prompt rendering 8 replays without it, as its prompts were
    for settings in (
        PlannerPromptSettings(income_spread=False),
        PlannerPromptSettings(uncertainty=False),
    ):
        assert "Incomes within each bracket" not in _user_text(sim, history, settings)


def test_uncertainty_off_shows_bare_outcomes(run: Any) -> None:
    sim, result = run
    history = _with(result.records, [A, A, B, A], [100.0, 110.0, 104.0, 120.0])
    full = _user_text(sim, history, PlannerPromptSettings())
    bare = _user_text(sim, history, PlannerPromptSettings(uncertainty=False))
    for said in ("±", "workers per bracket", "change from previous year", "noise"):
        assert said in full and said not in bare
    assert len(bare) < len(full)


def test_the_exploration_note_is_optional(run: Any) -> None:
    sim, result = run
    history = list(result.records)
    assert "Early on" not in _user_text(sim, history, PlannerPromptSettings())
    assert "Early on" in _user_text(sim, history, PlannerPromptSettings(explore=True))


def test_the_reference_planner_does_not_trust_a_gain_within_the_noise(run: Any) -> None:
    """A enacted three times (mean 110, σ̂ 10), then C once at 114: within the noise. With
    the interval shown, A stays the schedule to improve on (every proposal is A with one
    bracket changed); without, C is taken as the new best and its move is repeated."""
    sim, result = run
    history = _with(result.records, [A, A, A, C], [100.0, 110.0, 120.0, 114.0])

    def proposals(settings: PlannerPromptSettings) -> list[Any]:
        return climb(PlannerAsk(sim.planner_context, history, settings), 3)

    def one_bracket_from(base: list[int], rates: list[int]) -> bool:
        return int(np.count_nonzero(np.array(rates) - np.array(base))) == 1

    careful = proposals(PlannerPromptSettings())
    assert all(one_bracket_from(A, p.rates) and "repeat" not in p.why for p in careful)
    naive = proposals(PlannerPromptSettings(uncertainty=False))
    assert "repeat the move in bracket 4" in naive[0].why
    assert all(one_bracket_from(C, p.rates) for p in naive)


def test_a_new_best_within_the_noise_is_enacted_again(run: Any) -> None:
    sim, result = run
    history = _with(result.records, [A, A, C, A], [100.0, 110.0, 114.0, 105.0])
    ask = PlannerAsk(sim.planner_context, history, PlannerPromptSettings())
    first = climb(ask)[0]
    assert first.rates == C and "confirm" in first.why


def test_a_new_best_well_beyond_the_noise_is_not_confirmed(run: Any) -> None:
    sim, result = run
    history = _with(result.records[:3], [A, A, C], [100.0, 110.0, 200.0])  # σ̂ ≈ 7
    first = climb(PlannerAsk(sim.planner_context, history, PlannerPromptSettings()))[0]
    assert "confirm" not in first.why and "repeat the move in bracket 4" in first.why


def test_the_flags_reach_the_planner(tmp_path: Path) -> None:
    cfg = build_config(
        overrides=dict(
            agents=4,
            years=1,
            planner="scripted/reference",
            out=str(tmp_path),
            run_id="r",
            reference=False,
            planner_uncertainty=False,
            planner_explore=True,
        )
    )
    settings = build_simulation(cfg).planner.settings  # type: ignore[attr-defined]
    assert settings.uncertainty is False and settings.explore is True
    help_text = CliRunner().invoke(main, ["run", "--help"]).output
    assert "--no-planner-uncertainty" in help_text and "--planner-explore" in help_text


def test_identical_answers() -> None:
    assert identical_answer_share([40, 40, 40, 38]) == 0.75
    assert identical_answer_share([]) == 0.0


def test_summary_names_the_references_workers_and_degenerate_years(run: Any) -> None:
    sim, result = run
    notes = worker_notes(result.records, "scripted/reference-noise2", sim.planner_context)
    assert notes["references_assume"] == "rational workers, not this run's"
    first = result.records[0]  # the LLM planner enacts the status quo in year 0
    assert notes["status_quo_same_workers_swf"] == first.metrics.swf
    assert notes["identical_answers_max"] < DEGENERATE_SHARE and notes["degenerate_years"] == []
    anchored = [
        dataclasses.replace(r, weekly_hours=np.where(np.arange(30) < 28, 40.0, 35.0))
        for r in result.records
    ]
    notes = worker_notes(anchored, "local/smollm2-135m", sim.planner_context)
    assert notes["degenerate_years"] == [0, 1, 2, 3]
    assert notes["identical_answers_max"] == pytest.approx(28 / 30)
    rational = worker_notes(result.records, "rational", sim.planner_context)
    assert rational["references_assume"] == "rational workers, as in this run"
    assert "degenerate_years" not in rational


def test_answers_alike_because_the_rational_ones_are_are_not_degenerate() -> None:
    """Under LLM Economist's utility nearly every worker's best response at no tax is
    the 100-hour cap: a model answering it exactly is not flagged as ignoring its
    persona (the summary compares with the rational answers, as the report does); the
    same share at an answer the rational workers do not give is flagged."""
    sim = build_simulation(
        build_config(
            overrides=dict(
                preset="llm-economist-2025",
                planner="fixed:0,0,0",
                workers="scripted/reference",
                agents=100,
                years=1,
                worker_steps=1,
                reference=False,
            )
        ),
        write_log=False,
    )
    result = sim.run()
    record = result.records[0]
    share = identical_answer_share(record.weekly_hours)
    assert share >= DEGENERATE_SHARE  # the rational corner: ~91 % at 100 h
    assert result.summary["degenerate_years"] == []
    assert (
        worker_notes([record], "scripted/reference", sim.planner_context)["degenerate_years"] == []
    )
    copied = dataclasses.replace(
        record, weekly_hours=np.where(record.weekly_hours == 100, 40.0, record.weekly_hours)
    )  # the same share, at an answer no rational worker gives
    notes = worker_notes([copied], "local/smollm2-135m", sim.planner_context)
    assert notes["degenerate_years"] == [0]


def test_the_gain_over_the_status_quo_of_these_workers_comes_with_its_noise() -> None:
    """A planner that changes nothing still shows a final − status-quo difference with
    noisy workers (one year's draw each): the summary gives one year's σ̂ from the
    repeated rates and the CLI the difference's 95 % band; unknown without repeats."""
    sim = build_simulation(
        build_config(
            overrides=dict(
                planner="us-federal",
                workers="scripted/reference-noise2",
                agents=40,
                years=3,
                reference=False,
            )
        ),
        write_log=False,
    )
    summary = sim.run().summary
    swf = [round(r.metrics.swf, 1) for r in sim.records]
    assert summary["final_minus_status_quo_same_workers"] != 0  # noise alone
    assert summary["year_noise_sd"] == pytest.approx(np.std(swf, ddof=1), rel=1e-9)
    with out.capture() as captured:
        _print_summary(summary, sim.records[-1].schedule)
    # 3 years at one schedule: σ̂ has 2 degrees of freedom, so the band is Student's
    # t(0.975, 2) = 4.30 times √2·σ̂, not the normal 1.96 (the difference is one draw each)
    assert summary["year_noise_dof"] == 2
    band = 4.302652729 * np.sqrt(2) * summary["year_noise_sd"]
    printed = re.sub(r"\s+", " ", captured.get())
    assert f"its noise (95 %) │ ±{band:,.2f} (one year's σ̂" in printed
    assert "2 degrees of freedom" in printed
    del summary["year_noise_dof"]  # a summary written before ν was recorded
    with out.capture() as captured:
        _print_summary(summary, sim.records[-1].schedule)
    band = 2 * np.sqrt(2) * summary["year_noise_sd"]
    printed = re.sub(r"\s+", " ", captured.get())
    assert f"±{band:,.2f}" in printed and "normal approximation" in printed
    del summary["year_noise_sd"]
    with out.capture() as captured:
        _print_summary(summary, sim.records[-1].schedule)
    assert "unknown: no rates were enacted twice" in re.sub(r"\s+", " ", captured.get())


def test_a_single_runs_gain_closed_comes_with_its_noise() -> None:
    """The final year's welfare is one draw of noisy workers' answers and the references
    are exact, so each gain closed the CLI prints has a 95 % band of t·σ̂ over its gap;
    rational workers, without noise, print none."""
    overrides = dict(planner="us-federal", workers="scripted/reference-noise2", agents=40,
                     years=3)  # fmt: skip
    sim = build_simulation(build_config(overrides=overrides), write_log=False)
    summary = sim.run().summary
    with out.capture() as captured:
        _print_summary(summary, sim.records[-1].schedule)
    printed = re.sub(r"\s+", " ", captured.get())
    t = 4.302652729  # t(0.975, 2): 3 years at one schedule
    assert summary["year_noise_dof"] == 2
    for low, label in (("none_swf", "none → oracle"), ("status_quo_swf", "status quo → oracle")):
        band = 100 * t * summary["year_noise_sd"] / (summary["oracle_swf"] - summary[low])
        row = re.search(rf"gain closed \({label}\) │ [^│]* │ │ its noise \(95 %\) │ ±([0-9.]+) pp",
                        printed)  # fmt: skip
        assert row is not None, printed
        assert float(row.group(1)) == pytest.approx(band, abs=0.051)
    rational = build_simulation(
        build_config(overrides={**overrides, "workers": "rational"}), write_log=False
    )
    with out.capture() as captured:
        _print_summary(rational.run().summary, rational.records[-1].schedule)
    assert "its noise" not in captured.get()


def test_the_run_summary_and_cli_say_so(run: Any) -> None:
    _, result = run
    summary = dict(result.summary)
    assert summary["references_assume"] == "rational workers, not this run's"
    summary.update(degenerate_years=[0, 2], identical_answers_max=1.0)
    with out.capture() as captured:
        _print_summary(summary, result.records[-1].schedule)
    text = re.sub(r"\s+", " ", captured.get())
    assert "references assume" in text and "not this run's" in text
    assert "status quo, these workers (tax year 1)" in text
    assert "in 2 tax years (1, 3)" in text and "gave the same answer" in text  # as shown


def test_a_gain_beyond_the_whole_reference_range_is_explained(run: Any) -> None:
    """LLM workers whose welfare differs from rational workers' by more than the whole
    no-tax → oracle range made a headline of −5,328 % with no word on why."""
    _, result = run
    summary = dict(result.summary)
    for gain, noted in ((-53.281, True), (2.5, True), (-0.4, False), (1.3, False)):
        summary["gain_closed"] = gain
        with out.capture() as captured:
            _print_summary(summary, result.records[-1].schedule)
        text = re.sub(r"\s+", " ", captured.get())
        said = "computed for rational workers; their welfare differs from rational workers'"
        assert (said in text) == noted, gain
        assert ("read 'final − status quo, these workers' for the planner" in text) == noted
    summary.update(gain_closed=-53.281, workers="rational")
    with out.capture() as captured:
        _print_summary(summary, result.records[-1].schedule)
    assert "computed for rational workers;" not in captured.get()


def test_the_reference_planner_moves_every_bracket_the_evidence_favours(run: Any) -> None:
    """A twice (σ̂ ≈ 7), then +10 points in bracket 2 gains clearly, then +10 in bracket 3
    on top gains clearly again: both brackets' pooled effects exceed their standard
    errors, so the next proposal moves both at once (the welfare is close to additive
    over brackets)."""
    sim, result = run
    b2 = [10, 22, 22, 24, 32, 35, 37]
    b23 = [10, 22, 32, 24, 32, 35, 37]
    history = _with(result.records, [A, A, b2, b23], [100.0, 110.0, 200.0, 300.0])
    first = climb(PlannerAsk(sim.planner_context, history, PlannerPromptSettings()))[0]
    assert first.rates == [10, 32, 42, 24, 32, 35, 37]
    assert "every move the evidence favours" in first.why
    # the same history with a gain within the noise in bracket 3: no joint move
    weak = _with(result.records, [A, A, b2, b23], [100.0, 110.0, 200.0, 205.0])
    proposal = climb(PlannerAsk(sim.planner_context, weak, PlannerPromptSettings()))[0]
    assert "every move" not in proposal.why


def test_a_bracket_that_barely_matters_is_not_tried_again(run: Any) -> None:
    """Without noise (σ̂ = 0 from an exact repeat), bracket 1's move changed welfare by
    3/1000 of bracket 4's per point: the planner treats it as flat and does not try it."""
    sim, result = run
    b1 = [20, 12, 22, 24, 32, 35, 37]
    history = _with(result.records, [A, A, b1, C], [100.0, 100.0, 100.3, 150.0])
    proposals = climb(PlannerAsk(sim.planner_context, history, PlannerPromptSettings()), 12)
    assert proposals and all(p.rates[0] == 10 for p in proposals[:10])


def test_the_planner_is_told_the_horizon_and_uses_its_last_year(run: Any) -> None:
    sim, result = run
    history = list(result.records)  # four years: the next is year 5
    settings = PlannerPromptSettings(horizon=5)
    text = _user_text(sim, history, settings)
    assert "year 5 of 5, the last year of the run" in text
    assert "of 6." in _user_text(sim, history, PlannerPromptSettings(horizon=6))
    assert " of " not in _user_text(sim, history, PlannerPromptSettings()).split("Propose")[1]
    last = climb(PlannerAsk(sim.planner_context, history, settings))[0]
    assert "last year" in last.why
    shown = [[round(100 * r) for r in rec.schedule.rates] for rec in history]
    assert last.rates in shown  # a measured schedule, not one more trial


def test_a_run_logged_before_the_weighted_breakdown_replays_as_it_ran(tmp_path: Path) -> None:
    # A log written before `planner_breakdown` existed has head counts in its planner
    # prompts and no such field in its manifest: restoring it must take `sample`, or
    # replay, resume and fork would render other prompts than the log holds.
    import json

    from llmecon.runs.replay import replay_run
    from llmecon.runs.restore import restore_run

    cfg = build_config(
        overrides=dict(agents=100, years=2, planner="scripted/reference", workers="rational",
                       planner_breakdown="sample", reference=False, out=str(tmp_path),
                       run_id="old")
    )  # fmt: skip
    build_simulation(cfg).run()
    path = tmp_path / "old" / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["config"]["planner_breakdown"]
    path.write_text(json.dumps(manifest))
    assert restore_run(tmp_path / "old").config().planner_breakdown == "sample"
    report = replay_run(tmp_path / "old")
    assert report.differences == [], report.differences


def test_the_summary_gives_the_share_of_the_gap_left_by_the_status_quo() -> None:
    # docs/agents.md measures planners by (W − W_sq) / (W_oracle − W_sq); the terminal gave
    # only no tax → oracle, most of which the status quo closes by doing nothing.
    sim = build_simulation(
        build_config(overrides=dict(planner="flat:0.3", workers="rational", agents=30, years=1)),
        write_log=False,
    )
    summary = sim.run().summary
    share = (summary["final_swf"] - summary["status_quo_swf"]) / (
        summary["oracle_swf"] - summary["status_quo_swf"]
    )
    assert share != pytest.approx(summary["gain_closed"], abs=0.01)  # a different number
    with out.capture() as captured:
        _print_summary(summary, sim.records[-1].schedule)
    printed = re.sub(r"\s+", " ", captured.get())
    assert f"gain closed (status quo → oracle) │ {100 * share:.1f} %".replace("-", "−") in printed


def test_answers_of_a_handful_of_workers_are_not_called_degenerate(run: Any) -> None:
    """One worker's answers are always "100 % alike", and a few noisy workers agree by
    chance: the summary said such a model was not responding to its persona or taxes."""
    sim, result = run

    def alike(n: int) -> list[int]:
        records = [dataclasses.replace(r, weekly_hours=np.full(n, 33.0)) for r in result.records]
        return worker_notes(records, "local/smollm2-135m", sim.planner_context)["degenerate_years"]

    assert alike(1) == alike(5) == alike(MIN_ALIKE_ANSWERS - 1) == []
    assert alike(MIN_ALIKE_ANSWERS) == alike(30) == [r.year for r in result.records]
