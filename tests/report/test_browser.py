"""The report renders in a real browser: headless Chromium opens the file offline, runs
no failing script, logs no console error, lays the charts out and paints a non-empty
screenshot; for a single run, a comparison and a voting run (docs/testing.md)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from PIL import Image

from llmecon.report import write_report
from tests.report.cdp import Rendered, render_file

#: Evaluated in the page after its load event.
CHECKS = {
    "charts": "document.querySelectorAll('svg.chart').length",
    "laid_out": "[...document.querySelectorAll('svg.chart')]"
    ".filter(s => s.getBoundingClientRect().width > 100).length",
    "sections": "document.querySelectorAll('section').length",
    "title": "document.title",
    # hostile model output must stay text: no element it could have injected exists
    "injected": "document.querySelectorAll('body script, body img').length",
}


def _render(path: Path) -> Rendered:
    return asyncio.run(render_file(path, CHECKS))


def _assert_rendered(result: Rendered, sections: int) -> None:
    assert result.errors == [], result.errors
    assert result.checks["sections"] == sections
    assert result.checks["charts"] >= 6
    assert result.checks["laid_out"] == result.checks["charts"]
    assert result.checks["injected"] == 0
    image = Image.open(io.BytesIO(result.screenshot))
    assert image.size == (1280, 2000)
    colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50  # text, charts: not a blank page


def test_single_run_renders_in_chromium(crafted: Path, tmp_path: Path) -> None:
    out = write_report([crafted], tmp_path / "single.html")
    result = _render(out)
    _assert_rendered(result, sections=11)
    assert result.checks["title"] == "llmecon run crafted <$x$>"


def test_comparison_renders_in_chromium(
    baseline: Path, seed_runs: list[Path], tmp_path: Path
) -> None:
    out = write_report([baseline, *seed_runs], tmp_path / "compare.html")
    _assert_rendered(_render(out), sections=8)


def test_voting_run_renders_in_chromium(vote_run: Path, tmp_path: Path) -> None:
    out = write_report([vote_run], tmp_path / "vote.html")
    _assert_rendered(_render(out), sections=10)


def test_the_driver_sees_exceptions_and_console_errors(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><body><p>x</p><script>"
        "console.error('broken chart'); throw new Error('boom');"
        "</script></body></html>"
    )
    errors = _render(page).errors
    assert any("broken chart" in e for e in errors)
    assert any("boom" in e for e in errors)


def test_missing_chromium_fails_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.report import cdp

    monkeypatch.delenv("LLMECON_CHROMIUM", raising=False)
    monkeypatch.setattr(cdp.os, "access", lambda *_: False)
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        cdp.chromium_path()
