from __future__ import annotations

import numpy as np
import pytest

from llmecon.economy import (
    US_FEDERAL_2025_EDGES,
    US_FEDERAL_2025_RATES,
    ScheduleError,
    TaxSchedule,
    parse_brackets,
)


def reference_tax(z: float, edges: tuple[float, ...], rates: tuple[float, ...]) -> float:
    """DESIGN §2 literally: Σ_b τ_b · clip(z − m_b, 0, m_{b+1} − m_b)."""
    total = 0.0
    for b, (m, r) in enumerate(zip(edges, rates, strict=True)):
        width = edges[b + 1] - m if b + 1 < len(edges) else float("inf")
        total += r * min(max(z - m, 0.0), width)
    return total


@pytest.fixture
def federal() -> TaxSchedule:
    return TaxSchedule(US_FEDERAL_2025_EDGES, US_FEDERAL_2025_RATES)


def test_tax_at_and_around_every_edge(federal: TaxSchedule) -> None:
    points = []
    for m in US_FEDERAL_2025_EDGES:
        points += [m, m + 0.01, m + 1.0, max(m - 0.01, 0.0), max(m - 1.0, 0.0)]
    points += [5_000.0, 1e6, 1e8]
    got = federal.tax(np.array(points))
    want = [reference_tax(z, US_FEDERAL_2025_EDGES, US_FEDERAL_2025_RATES) for z in points]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_known_tax_values(federal: TaxSchedule) -> None:
    # 10 % of 11 925 + 12 % of (48 475 − 11 925) = 1 192.50 + 4 386.00
    assert federal.tax(48_475.0) == pytest.approx(5_578.50)
    assert federal.tax(0.0) == 0.0
    # One dollar above the top edge pays 37 cents on it.
    assert federal.tax(626_351.0) - federal.tax(626_350.0) == pytest.approx(0.37)


def test_marginal_rate_at_edges_belongs_above(federal: TaxSchedule) -> None:
    edges = np.array(US_FEDERAL_2025_EDGES)
    np.testing.assert_array_equal(federal.marginal_rate(edges), US_FEDERAL_2025_RATES)
    np.testing.assert_array_equal(
        federal.marginal_rate(edges[1:] - 0.01), US_FEDERAL_2025_RATES[:-1]
    )


def test_tax_is_continuous_at_edges(federal: TaxSchedule) -> None:
    edges = np.array(US_FEDERAL_2025_EDGES[1:])
    np.testing.assert_allclose(federal.tax(edges - 1e-6), federal.tax(edges), atol=1e-5)


def test_top_bracket_is_open(federal: TaxSchedule) -> None:
    big = np.array([1e7, 2e7])
    assert np.diff(federal.tax(big))[0] == pytest.approx(0.37 * 1e7)


@pytest.mark.parametrize(
    ("edges", "rates", "match"),
    [
        ((), (), "at least one"),
        ((1.0, 10.0), (0.1, 0.2), "must be 0"),
        ((0.0, 10.0, 10.0), (0.1, 0.2, 0.3), "strictly increasing"),
        ((0.0, 10.0, 5.0), (0.1, 0.2, 0.3), "strictly increasing"),
        ((0.0, 10.0), (0.1,), "one rate per bracket"),
        ((0.0, 10.0), (0.1, 1.2), r"\[0, 1\]"),
        ((0.0, 10.0), (-0.1, 0.2), r"\[0, 1\]"),
        ((0.0, float("inf")), (0.1, 0.2), "finite"),
        ((0.0, 10.0), (0.1, float("nan")), r"\[0, 1\]"),
    ],
)
def test_schedule_validation(edges: tuple, rates: tuple, match: str) -> None:
    with pytest.raises(ScheduleError, match=match):
        TaxSchedule(edges, rates)


def test_negative_income_rejected(federal: TaxSchedule) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        federal.tax(-1.0)


def test_presets_and_custom_brackets() -> None:
    assert parse_brackets("us-federal-2025") == US_FEDERAL_2025_EDGES
    assert parse_brackets("flat") == (0.0,)
    assert parse_brackets("us-three-2025") == (0.0, 48_475.0, 197_300.0)
    assert parse_brackets("llm-economist-2025") == (0.0, 90_000.0, 159_100.0)
    assert len(parse_brackets("us-federal-2018")) == 7
    with pytest.raises(ScheduleError, match=r"us-three-2025.*llm-economist-2025"):
        parse_brackets("three")
    assert parse_brackets("0,50000,200000") == (0.0, 50_000.0, 200_000.0)
    with pytest.raises(ScheduleError, match="unknown bracket set"):
        parse_brackets("federal-ish")
    with pytest.raises(ScheduleError, match="must be 0"):
        parse_brackets("100,200")


def test_status_quo_projection() -> None:
    assert TaxSchedule.status_quo().rates == US_FEDERAL_2025_RATES
    three = TaxSchedule.status_quo("us-three-2025")
    assert three.rates == (0.10, 0.22, 0.32)
    assert TaxSchedule.status_quo("llm-economist-2025").rates == (0.10, 0.22, 0.24)
    law_2018 = (0.10, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37)
    assert TaxSchedule.status_quo("us-federal-2018").rates == law_2018
    assert TaxSchedule.status_quo(parse_brackets("us-federal-2018")).rates == law_2018
    assert TaxSchedule.flat(0.3).tax(100.0) == pytest.approx(30.0)


def test_round_trip(federal: TaxSchedule) -> None:
    assert TaxSchedule.from_dict(federal.to_dict()) == federal
