"""Piecewise-linear marginal tax schedules (docs/design.md §2).

A schedule is a list of bracket lower edges ``m_0 = 0 < m_1 < … < m_{B-1}`` in annual
USD and one marginal rate per bracket in ``[0, 1]``; the top bracket is open-ended.
``T(z) = Σ_b τ_b · clip(z − m_b, 0, m_{b+1} − m_b)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

#: US federal 2025 single-filer bracket lower edges (annual USD), applied to labour
#: income directly (no deductions). Source: IRS Rev. Proc. 2024-40.
US_FEDERAL_2025_EDGES: tuple[float, ...] = (
    0.0,
    11_925.0,
    48_475.0,
    103_350.0,
    197_300.0,
    250_525.0,
    626_350.0,
)
#: Status-quo marginal rates for :data:`US_FEDERAL_2025_EDGES`.
US_FEDERAL_2025_RATES: tuple[float, ...] = (0.10, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37)

#: US federal 2018 single-filer bracket lower edges (annual USD), the set *The AI
#: Economist* (Zheng et al. 2020) used. Source: IRS Rev. Proc. 2018-18 (TCJA rates).
US_FEDERAL_2018_EDGES: tuple[float, ...] = (
    0.0,
    9_525.0,
    38_700.0,
    82_500.0,
    157_500.0,
    200_000.0,
    500_000.0,
)
#: Marginal rates in force in 2018 for :data:`US_FEDERAL_2018_EDGES`.
US_FEDERAL_2018_RATES: tuple[float, ...] = (0.10, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37)

#: *LLM Economist*'s ``three`` bracket set (Karten et al. 2025, code
#: ``utils/bracket.py``): lower edges 0, 90 000 and 159 100 USD.
LLM_ECONOMIST_2025_EDGES: tuple[float, ...] = (0.0, 90_000.0, 159_100.0)

#: Named bracket sets (edges only). ``us-three-2025`` keeps three of the federal 2025
#: edges; ``llm-economist-2025`` and ``us-federal-2018`` are the reference papers' sets.
BRACKET_PRESETS: dict[str, tuple[float, ...]] = {
    "us-federal-2025": US_FEDERAL_2025_EDGES,
    "flat": (0.0,),
    "us-three-2025": (0.0, 48_475.0, 197_300.0),
    "llm-economist-2025": LLM_ECONOMIST_2025_EDGES,
    "us-federal-2018": US_FEDERAL_2018_EDGES,
}

#: Named sets whose status quo is their own law rather than the 2025 federal rates
#: projected onto their edges.
STATUS_QUO_RATES: dict[str, tuple[float, ...]] = {
    "us-federal-2018": US_FEDERAL_2018_RATES,
}

#: Retired names, refused with a message naming what replaced them.
RETIRED_BRACKET_NAMES: dict[str, str] = {
    "three": (
        "'three' is ambiguous and no longer accepted: use 'us-three-2025' (edges 0, "
        "48 475, 197 300 USD: three of the federal 2025 edges, the old 'three') or "
        "'llm-economist-2025' (edges 0, 90 000, 159 100 USD: LLM Economist's 'three')"
    ),
}


class ScheduleError(ValueError):
    """A tax schedule or bracket specification is invalid."""


def parse_brackets(spec: str | Sequence[float]) -> tuple[float, ...]:
    """Resolve a bracket specification to validated lower edges (annual USD).

    ``spec`` is a name from :data:`BRACKET_PRESETS` (``us-federal-2025``, ``flat``,
    ``us-three-2025``, ``llm-economist-2025``, ``us-federal-2018``), a comma-separated
    list of edges (``"0,50000,200000"``) or a sequence of numbers.
    """
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in RETIRED_BRACKET_NAMES:
            raise ScheduleError(RETIRED_BRACKET_NAMES[key])
        if key in BRACKET_PRESETS:
            return BRACKET_PRESETS[key]
        try:
            edges = tuple(float(x) for x in key.replace("_", "").split(","))
        except ValueError:
            known = ", ".join(sorted(BRACKET_PRESETS))
            raise ScheduleError(
                f"unknown bracket set {spec!r}: use one of {known} or a comma-separated "
                "list of lower edges in annual USD starting at 0"
            ) from None
    else:
        edges = tuple(float(x) for x in spec)
    _validate_edges(np.asarray(edges, dtype=float))
    return edges


def _validate_edges(edges: FloatArray) -> None:
    if edges.ndim != 1 or edges.size == 0:
        raise ScheduleError("a schedule needs at least one bracket edge")
    if not np.all(np.isfinite(edges)):
        raise ScheduleError(f"bracket edges must be finite, got {edges.tolist()}")
    if edges[0] != 0.0:
        raise ScheduleError(f"the first bracket edge must be 0, got {edges[0]:g}")
    if np.any(np.diff(edges) <= 0):
        raise ScheduleError(f"bracket edges must be strictly increasing, got {edges.tolist()}")


@dataclass(frozen=True)
class TaxSchedule:
    """A validated piecewise-linear marginal tax schedule.

    Attributes:
        edges: bracket lower edges, annual USD, ``edges[0] == 0``, strictly increasing.
        rates: marginal rate of each bracket, fractions in ``[0, 1]``.
    """

    edges: tuple[float, ...]
    rates: tuple[float, ...]
    _cum: FloatArray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        edges = np.asarray(self.edges, dtype=float)
        rates = np.asarray(self.rates, dtype=float)
        _validate_edges(edges)
        if rates.shape != edges.shape:
            raise ScheduleError(
                f"need one rate per bracket: {edges.size} edges but {rates.size} rates"
            )
        if not np.all(np.isfinite(rates)) or np.any(rates < 0) or np.any(rates > 1):
            raise ScheduleError(f"marginal rates must lie in [0, 1], got {rates.tolist()}")
        object.__setattr__(self, "edges", tuple(float(x) for x in edges))
        object.__setattr__(self, "rates", tuple(float(x) for x in rates))
        object.__setattr__(self, "_cum", cumulative_tax_at_edges(edges, rates))

    @classmethod
    def from_rates(cls, rates: ArrayLike, brackets: str | Sequence[float]) -> TaxSchedule:
        """Build a schedule from rates on a named or explicit bracket set."""
        return cls(parse_brackets(brackets), tuple(np.asarray(rates, dtype=float).ravel()))

    @classmethod
    def status_quo(cls, brackets: str | Sequence[float] = "us-federal-2025") -> TaxSchedule:
        """The US federal 2025 schedule projected onto ``brackets``.

        Each bracket takes the federal marginal rate in force at its lower edge, so the
        federal bracket set gives exactly 10, 12, 22, 24, 32, 35, 37 %. A named set with
        its own law (:data:`STATUS_QUO_RATES`: the ``us-federal-2018`` edges, by name or
        by value) takes that law's rates.
        """
        edges = parse_brackets(brackets)
        for name, rates in STATUS_QUO_RATES.items():
            if edges == BRACKET_PRESETS[name]:
                return cls(edges, rates)
        federal = cls(US_FEDERAL_2025_EDGES, US_FEDERAL_2025_RATES)
        return cls(edges, tuple(federal.marginal_rate(np.asarray(edges)).tolist()))

    @classmethod
    def flat(cls, rate: float, brackets: str | Sequence[float] = "flat") -> TaxSchedule:
        """The same marginal rate in every bracket."""
        edges = parse_brackets(brackets)
        return cls(edges, (float(rate),) * len(edges))

    @property
    def n_brackets(self) -> int:
        return len(self.edges)

    @property
    def edges_array(self) -> FloatArray:
        return np.asarray(self.edges, dtype=float)

    @property
    def rates_array(self) -> FloatArray:
        return np.asarray(self.rates, dtype=float)

    def with_rates(self, rates: ArrayLike) -> TaxSchedule:
        """A copy on the same brackets with new rates."""
        return TaxSchedule(self.edges, tuple(np.asarray(rates, dtype=float).ravel()))

    def bracket_index(self, income: ArrayLike) -> NDArray[np.intp]:
        """Index of the bracket each annual income falls in (an edge belongs above)."""
        z = np.asarray(income, dtype=float)
        return np.searchsorted(self.edges_array, z, side="right") - 1

    def workers_per_bracket(self, income: ArrayLike, weight: ArrayLike | None = None) -> FloatArray:
        """How many workers earn in each bracket: each income in its bracket
        (:meth:`bracket_index`; an income below the first edge in the first), counted
        once, or by its ``weight`` when given (survey weights of mean 1 keep the sum the
        number of workers; weights ``income`` give each bracket's income)."""
        which = np.clip(self.bracket_index(income), 0, self.n_brackets - 1)
        w = None if weight is None else np.asarray(weight, dtype=float)
        return np.bincount(which, weights=w, minlength=self.n_brackets).astype(float)

    def tax(self, income: ArrayLike) -> FloatArray:
        """Annual tax ``T(z)`` in USD for annual pre-tax incomes ``z >= 0``."""
        z = np.asarray(income, dtype=float)
        if np.any(z < 0):
            raise ValueError("income must be non-negative")
        idx = self.bracket_index(z)
        return self._cum[idx] + self.rates_array[idx] * (z - self.edges_array[idx])

    def marginal_rate(self, income: ArrayLike) -> FloatArray:
        """Marginal rate in force at each income (the rate just above it)."""
        return self.rates_array[self.bracket_index(income)]

    def average_rate(self, income: ArrayLike) -> FloatArray:
        """``T(z)/z``, and the bottom marginal rate at ``z = 0``."""
        z = np.asarray(income, dtype=float)
        t = self.tax(z)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(z > 0, t / np.where(z > 0, z, 1.0), self.rates[0])

    def to_dict(self) -> dict[str, list[float]]:
        return {"edges": list(self.edges), "rates": list(self.rates)}

    @classmethod
    def from_dict(cls, data: dict[str, Sequence[float]]) -> TaxSchedule:
        return cls(tuple(data["edges"]), tuple(data["rates"]))


def cumulative_tax_at_edges(edges: FloatArray, rates: FloatArray) -> FloatArray:
    """Tax owed at each bracket's lower edge; works on batches of rates ``(..., B)``."""
    widths = np.diff(edges)
    full = rates[..., :-1] * widths
    zeros = np.zeros((*rates.shape[:-1], 1))
    return np.concatenate([zeros, np.cumsum(full, axis=-1)], axis=-1)


def tax_of_rates(edges: FloatArray, rates: FloatArray, income: FloatArray) -> FloatArray:
    """``T(z)`` for a batch of rate vectors ``(S, B)`` and incomes ``(S, N)`` (annual USD).

    The same arithmetic as :meth:`TaxSchedule.tax`, one row per schedule.
    """
    idx = np.searchsorted(edges, income, side="right") - 1
    cum = cumulative_tax_at_edges(edges, rates)
    return np.take_along_axis(cum, idx, axis=1) + np.take_along_axis(rates, idx, axis=1) * (
        income - edges[idx]
    )
