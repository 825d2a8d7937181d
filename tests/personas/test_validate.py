"""The validation report: rows, flags and renderings."""

from __future__ import annotations

import numpy as np
from rich.console import Console

from llmecon.personas import PersonaSample, default_bank_path, load_bank, sample_personas, validate


def test_report_rows_and_flags(large_sample: PersonaSample) -> None:
    report = validate(large_sample)
    p50 = report.row("hourly wage p50")
    assert p50.published == 23.80 and p50.target == "±5%"
    assert p50.difference == (p50.sample - 23.80) / 23.80
    tail = report.row("% earning > $250k/yr")
    assert tail.within_target is None and 1.0 < tail.published < 4.0  # GB2: ~2.3 %
    assert 0 < tail.sample < 5
    frame = report.to_frame()
    assert len(frame) == len(report.rows) and frame["within_target"].notna().sum() == 22


def test_a_missed_target_is_flagged() -> None:
    report = validate(sample_personas(20_000, np.random.default_rng(0), mode="gb2"))
    assert not report.ok
    assert "hourly wage p10" in [r.statistic for r in report.failures]
    assert "target(s) missed" in str(report)


def test_renderings(large_sample: PersonaSample) -> None:
    report = validate(large_sample)
    text = str(report)
    assert "hourly wage p90" in text and "60.44" in text and "all targets met" in text
    console = Console(record=True, width=160)
    console.print(report.to_rich())
    assert "% women" in console.export_text()


def test_validate_accepts_a_persona_list() -> None:
    report = validate(load_bank(default_bank_path()))
    assert report.n == 1000 and report.mode == "census"
