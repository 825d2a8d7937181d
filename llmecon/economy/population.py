"""The worker population interface the economy runs on.

The economy only needs each worker's hourly wage (skill) and usual weekly hours; the
persona layer (:mod:`llmecon.personas`) builds a :class:`Population` from
Census-calibrated personas and keeps the rest of each persona (occupation, household,
text) alongside. :func:`synthetic_population` is a documented stand-in for tests and
quick experiments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

#: Federal minimum wage, USD/h (the floor of every sampled wage).
MIN_WAGE_USD = 7.25

#: OEWS May 2024 all-occupation hourly median and p90/p10 ratio (60.44 / 14.42), used to
#: set the synthetic log-normal: σ = ln(p90/p10) / (2 · 1.2816).
_SYNTH_MEDIAN_WAGE = 23.80
_SYNTH_SIGMA = float(np.log(60.44 / 14.42) / (2 * 1.2815516))


class PopulationError(ValueError):
    """A population's wages or hours are unusable."""


@dataclass(frozen=True)
class Population:
    """Workers as the economy sees them.

    Attributes:
        hourly_wage_usd: skill ``s_i`` (USD per hour), positive.
        usual_weekly_hours: the persona's usual hours ``h_i⁰``, in ``(0, max_hours]``;
            the utility is calibrated so a rational worker chooses exactly these hours
            under the status-quo schedule.
        ids: a stable identifier per worker (persona ids when built from personas).
        source: where the population came from (recorded in run manifests).
        weight: survey weights, how many people each worker stands for; stored
            normalised to mean 1 (only ratios matter), so totals such as revenue stay
            "per ``N`` workers". ``None`` (default) or equal weights: every worker counts
            once and every aggregate is exactly the unweighted one
            (:attr:`survey_weight` is then ``None``). Zero weights are allowed (the
            worker is simulated but counts for nothing); the total must be positive.
    """

    hourly_wage_usd: FloatArray
    usual_weekly_hours: FloatArray
    ids: tuple[str, ...]
    source: str = "custom"
    weight: FloatArray | None = None

    def __post_init__(self) -> None:
        wage = np.asarray(self.hourly_wage_usd, dtype=float)
        hours = np.asarray(self.usual_weekly_hours, dtype=float)
        if wage.ndim != 1 or wage.size == 0:
            raise PopulationError("a population needs a non-empty 1-D array of wages")
        if hours.shape != wage.shape:
            raise PopulationError(f"wages and hours differ in length: {wage.size} vs {hours.size}")
        if len(self.ids) != wage.size:
            raise PopulationError(f"{len(self.ids)} ids for {wage.size} workers")
        if not np.all(np.isfinite(wage)) or np.any(wage <= 0):
            raise PopulationError("every hourly wage must be a positive number")
        if not np.all(np.isfinite(hours)) or np.any(hours <= 0):
            raise PopulationError("every worker's usual weekly hours must be positive")
        wage.setflags(write=False)
        hours.setflags(write=False)
        object.__setattr__(self, "hourly_wage_usd", wage)
        object.__setattr__(self, "usual_weekly_hours", hours)
        if self.weight is None:
            weight = np.ones(wage.size)
        else:
            weight = np.array(self.weight, dtype=float)
            if weight.shape != wage.shape:
                raise PopulationError(f"{weight.size} weights for {wage.size} workers")
            if not np.all(np.isfinite(weight)) or np.any(weight < 0) or weight.sum() <= 0:
                raise PopulationError("survey weights must be finite, ≥ 0 and not all zero")
            weight = weight / weight.mean()
        weight.setflags(write=False)
        object.__setattr__(self, "weight", weight)

    @property
    def survey_weight(self) -> FloatArray | None:
        """The weights (mean 1) when they differ between workers, else ``None`` (the
        economy then takes its unweighted path, bit for bit the pre-weights one)."""
        w = self.weight
        assert w is not None
        return None if bool(np.all(w == w[0])) else w

    @property
    def effective_size(self) -> float:
        """Kish's effective sample size ``(Σ w)² / Σ w²`` (``N`` when unweighted)."""
        w = self.weight
        assert w is not None
        return float(w.sum() ** 2 / (w @ w))

    @property
    def size(self) -> int:
        return int(self.hourly_wage_usd.size)

    def __len__(self) -> int:
        return self.size

    @property
    def potential_income_usd(self) -> FloatArray:
        """Annual income at 40 h/week, ``52·40·s_i`` (fixed across policies)."""
        return 52.0 * 40.0 * self.hourly_wage_usd

    def subset(self, index: ArrayLike) -> Population:
        idx = np.asarray(index)
        return Population(
            self.hourly_wage_usd[idx],
            self.usual_weekly_hours[idx],
            tuple(self.ids[i] for i in np.arange(self.size)[idx]),
            self.source,
            None if self.weight is None else self.weight[idx],
        )


def synthetic_population(n: int, rng: np.random.Generator) -> Population:
    """A quick census-like population: log-normal wages and typical weekly hours.

    Wages: log-normal with the OEWS May 2024 all-occupation median ($23.80/h) and
    p90/p10 ratio, floored at the federal minimum wage. Hours: 58 % exactly 40 (CPS
    ASEC 2023 share), 17 % part time (15–34 h), 25 % long hours (41–70 h), mean ≈ 40.
    For credible personas use :mod:`llmecon.personas` instead.
    """
    if n < 1:
        raise PopulationError("need at least one worker")
    wage = _SYNTH_MEDIAN_WAGE * np.exp(_SYNTH_SIGMA * rng.standard_normal(n))
    wage = np.maximum(wage, MIN_WAGE_USD)
    kind = rng.choice(3, size=n, p=[0.58, 0.17, 0.25])
    part_time = rng.integers(15, 35, size=n)
    long_hours = rng.choice(
        [42, 45, 48, 50, 55, 60, 65, 70], size=n, p=[0.12, 0.28, 0.12, 0.24, 0.08, 0.1, 0.03, 0.03]
    )
    hours = np.where(kind == 0, 40, np.where(kind == 1, part_time, long_hours)).astype(float)
    ids = tuple(f"synthetic-{i:06d}" for i in range(n))
    return Population(wage, hours, ids, source="synthetic")
