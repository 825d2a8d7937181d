"""The HTML report: well-formed, images embedded, sections present, model text escaped."""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from llmecon.report import render_report, write_report
from llmecon.runs import RunConfig, build_simulation
from llmecon.runs.dataframes import load_run
from llmecon.runs.log import RunLogError
from tests.report.crafted import GOLDEN_V1, HOSTILE, IMG, SCRIPT, craft_run
from tests.report.htmlcheck import parse, png_payload

ALL_SECTIONS = [
    "summary",
    "welfare",
    "schedules",
    "final-schedule",
    "distributions",
    "lorenz",
    "votes",
    "calls",
    "fallbacks",
]


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return craft_run(tmp_path_factory.mktemp("runs") / "crafted", run_id="crafted <$x$>")


@pytest.fixture(scope="module")
def crafted_html(crafted: Path) -> str:
    return render_report([load_run(crafted)])


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("baseline")
    config = RunConfig(
        planner="saez", personas="synthetic", agents=40, years=3, out=str(out), run_id="saez"
    )
    result = build_simulation(config).run()
    assert result.run_dir is not None
    return result.run_dir


def test_report_is_well_formed_with_embedded_pngs(crafted_html: str) -> None:
    page = parse(crafted_html)
    assert page.errors == []
    assert crafted_html.startswith("<!DOCTYPE html>")
    assert len(page.images) == 7  # welfare, schedules, final, distributions, lorenz, votes, calls
    for img in page.images:
        assert len(png_payload(img["src"])) > 1000
        assert img["alt"]
    assert page.section_ids == ALL_SECTIONS


def test_hostile_model_output_is_escaped(crafted_html: str) -> None:
    for hostile in HOSTILE:
        assert hostile not in crafted_html
        assert html.escape(hostile, quote=True) in crafted_html
    page = parse(crafted_html)
    assert "script" not in page.tags
    assert all(str(img["src"]).startswith("data:image/png;base64,") for img in page.images)
    assert not any("onerror" in img for img in page.images)
    text = "".join(page.text)
    assert f"second try {IMG}" in text  # the text is shown, as text
    assert f"ParseError: bad json {SCRIPT}" in text
    assert "mock/<b>bold</b>" in text
    assert "<b>bold</b>" not in crafted_html
    assert "crafted <$x$>" in text  # run id with mathtext and markup characters


def test_report_summary_has_references(crafted_html: str) -> None:
    text = "".join(parse(crafted_html).text)
    for row in (
        "gain closed, no tax → oracle",
        "no-tax SWF",
        "status-quo SWF",
        "Saez SWF",
        "oracle SWF",
        "final, % of oracle",
    ):
        assert row in text
    assert "US federal 2025" in text
    assert "reproduces the logged metrics" in text


def test_baseline_run_has_no_llm_sections(baseline: Path) -> None:
    out = write_report([baseline], baseline / "report.html")
    page = parse(out.read_text())
    assert page.errors == []
    assert page.section_ids == ALL_SECTIONS[:6]
    assert len(page.images) == 5


def test_multi_run_report_compares_side_by_side(crafted: Path, baseline: Path) -> None:
    runs = [load_run(baseline), load_run(crafted), load_run(baseline)]
    text_html = render_report(runs, title="three runs")
    page = parse(text_html)
    assert page.errors == []
    text = "".join(page.text)
    assert "three runs" in text
    assert "saez #2" in text  # duplicate run ids get distinct labels
    assert page.section_ids == ALL_SECTIONS
    for img in page.images:
        png_payload(img["src"])
    summary_header = text_html.split("<tbody>")[0]
    assert summary_header.count("<th>") == 1 + len(runs)  # one column per run


def test_population_unavailable_omits_distributions_and_saez(tmp_path: Path) -> None:
    run = craft_run(
        tmp_path / "lost",
        hostile=False,
        votes=False,
        manifest_updates={"seed": 5},  # the synthetic redraw no longer matches the log
    )
    page = parse(render_report([load_run(run)]))
    text = "".join(page.text)
    assert "distributions" not in page.section_ids and "lorenz" not in page.section_ids
    assert "Saez reference omitted" in text
    assert "Distributions omitted" in text
    assert "welfare" in page.section_ids


def test_unknown_event_types_are_listed(tmp_path: Path) -> None:
    from llmecon.runs.dataframes import OtherEvent
    from llmecon.runs.log import RunLog

    run_dir = craft_run(tmp_path / "other", hostile=False, votes=False)
    manifest = load_run(run_dir).manifest
    next_seq = len((run_dir / "events.jsonl").read_text().splitlines())
    with RunLog(run_dir, manifest, open(run_dir / "events.jsonl", "a"), next_seq) as log:
        log.append(OtherEvent(type="audit_<i>", note="x"))  # type: ignore[arg-type]
    text = "".join(parse(render_report([load_run(run_dir)])).text)
    assert "Events of types this report does not tabulate: audit_<i> (1)." in text


def test_report_refuses_future_versions(tmp_path: Path) -> None:
    run = craft_run(tmp_path / "future", manifest_updates={"format_version": 99})
    with pytest.raises(RunLogError, match="log format 99 is newer"):
        write_report([run], tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_golden_report_renders() -> None:
    page = parse(render_report([load_run(GOLDEN_V1)]))
    assert page.errors == [] and "calls" in page.section_ids and "votes" not in page.section_ids
