"""Compare a persona sample's marginals with the published tables, side by side.

Every statistic is survey-weighted (a persona counts its ``weight``). A target's
tolerance is the wider of its base tolerance (5 % on wages, 3 points on shares: what the
sampler's model error may cost, seen in a 200 000 sample) and :data:`SE_MULTIPLIER`
standard errors of the statistic in a sample of the bank's *effective* size (Kish:
``(Σ w)² / Σ w²``), so a 100-persona bank is judged by what 100 draws can show and a
200 000 sample by the base tolerance.
Implausible records (below the occupation's minimum age, married or with children
under 18) are counted as a target of their own (it must be 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from llmecon.economy.population import MIN_WAGE_USD
from llmecon.personas._gb2 import GB2, LLM_ECONOMIST_GB2
from llmecon.personas._persona import Persona
from llmecon.personas._sampler import ADULT_AGE, PersonaSample
from llmecon.personas._tables import AGE_BANDS, EDUCATION, CensusTables, PersonaError, load_tables

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

#: Relative tolerance on OEWS wage statistics; absolute (points) on shares.
WAGE_TOLERANCE = 0.05
SHARE_TOLERANCE_POINTS = 3.0
TAIL_THRESHOLDS_USD = (250_000.0, 600_000.0)
#: A target's tolerance is at least this many standard errors of the sample.
SE_MULTIPLIER = 3.0
#: Half-width (in probability) of the difference quotient estimating a quantile's
#: sparsity ``1/f(q_p)`` for its standard error.
_QUANTILE_SPAN = 0.05
PLAUSIBILITY_TARGET = "= 0"


@dataclass(frozen=True)
class ValidationRow:
    """One statistic: sample value next to the published one."""

    statistic: str
    sample: float
    published: float
    unit: str  # "$/h", "%", "h", "$"
    source: str
    #: ``"±5%"`` (relative) or ``"±3 pts"`` (absolute), the base tolerance; ``"= 0"``
    #: for a count that must be zero; ``""`` for information only.
    target: str = ""
    #: Standard error of the statistic in a sample of this effective size, in the
    #: units of :attr:`difference` (a fraction for ``±x%`` targets, points otherwise).
    standard_error: float = 0.0

    @property
    def difference(self) -> float:
        """Sample − published (relative for ``±x%`` targets, in points otherwise)."""
        if self.target.endswith("%"):
            return (self.sample - self.published) / self.published
        return self.sample - self.published

    @property
    def tolerance(self) -> float | None:
        """The wider of the base tolerance and :data:`SE_MULTIPLIER` standard errors
        (``None``: an information row)."""
        if not self.target:
            return None
        if self.target == PLAUSIBILITY_TARGET:
            return 0.0
        base = WAGE_TOLERANCE if self.target.endswith("%") else SHARE_TOLERANCE_POINTS
        return max(base, SE_MULTIPLIER * self.standard_error)

    @property
    def within_target(self) -> bool | None:
        tol = self.tolerance
        if tol is None:
            return None
        return abs(self.difference) <= tol


@dataclass(frozen=True)
class ValidationReport:
    """Rows of sample vs published marginals; :attr:`ok` if every target holds."""

    rows: tuple[ValidationRow, ...]
    n: int
    mode: str
    #: Kish's effective sample size ``(Σ w)² / Σ w²`` (``n`` when unweighted).
    n_effective: float = 0.0
    #: One line per implausibility (a persona may have several; the first
    #: :data:`_MAX_LISTED`).
    implausible: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(r.within_target is not False for r in self.rows)

    @property
    def failures(self) -> list[ValidationRow]:
        return [r for r in self.rows if r.within_target is False]

    def row(self, statistic: str) -> ValidationRow:
        for r in self.rows:
            if r.statistic == statistic:
                return r
        raise KeyError(statistic)

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd  # ~0.35 s to import: only when used

        return pd.DataFrame(
            {
                "statistic": [r.statistic for r in self.rows],
                "sample": [r.sample for r in self.rows],
                "published": [r.published for r in self.rows],
                "difference": [r.difference for r in self.rows],
                "target": [r.target for r in self.rows],
                "standard_error": [r.standard_error for r in self.rows],
                "tolerance": [r.tolerance for r in self.rows],
                "within_target": [r.within_target for r in self.rows],
                "source": [r.source for r in self.rows],
            }
        )

    def _cells(self, r: ValidationRow) -> list[str]:
        def fmt(x: float) -> str:
            if r.unit == "$/h":
                return f"{x:,.2f}"
            if r.unit == "%":
                return f"{x:.2f}" if abs(x) < 1 else f"{x:.1f}"
            return f"{x:,.1f}"

        relative = r.target.endswith("%")
        diff = f"{100 * r.difference:+.1f}%" if relative else f"{r.difference:+.2f}"
        if r.target == PLAUSIBILITY_TARGET:
            diff = f"{r.difference:+.0f}"
        tol = r.tolerance
        if tol is None or r.target == PLAUSIBILITY_TARGET:
            tolerance = r.target
        elif relative:
            tolerance = f"±{100 * tol:.1f}%"
        else:
            tolerance = f"±{tol:.2f}"
        se = ""
        if r.target and r.target != PLAUSIBILITY_TARGET:
            se = f"{100 * r.standard_error:.1f}%" if relative else f"{r.standard_error:.2f}"
        flag = {True: "ok", False: "FAIL", None: "info"}[r.within_target]
        return [
            r.statistic,
            r.unit,
            fmt(r.sample),
            fmt(r.published),
            diff,
            r.target,
            se,
            tolerance,
            flag,
            r.source,
        ]

    _HEADER = (
        "statistic",
        "unit",
        "sample",
        "published",
        "diff",
        "target",
        "SE",
        "tolerance",
        "check",
        "source",
    )

    @property
    def title(self) -> str:
        return (
            f"Persona sample (n={self.n:,}, effective n={self.n_effective:,.0f}, "
            f"mode={self.mode}) vs published"
        )

    @property
    def note(self) -> str:
        """How the tolerances are set (printed under the table)."""
        k = f"{SE_MULTIPLIER:g}"
        return (
            f"tolerance = the target or {k} SE, whichever is wider; SE = standard error of "
            f"the (survey-weighted) statistic in a sample of effective size "
            f"{self.n_effective:,.0f} (Kish)"
        )

    def to_rich(self) -> Table:
        from rich.table import Table

        lines = [self.note, *self.implausible]
        table = Table(title=self.title, caption="\n".join(lines), caption_justify="left")
        for h in self._HEADER:
            table.add_column(
                h,
                justify="right" if h in ("sample", "published", "diff") else "left",
                no_wrap=h == "statistic",
            )
        for r in self.rows:
            cells = self._cells(r)
            style = {"FAIL": "bold red", "ok": "green"}.get(cells[8], "dim")
            cells[8] = f"[{style}]{cells[8]}[/]"
            table.add_row(*cells)
        return table

    def __str__(self) -> str:
        lines = [list(self._HEADER)] + [self._cells(r) for r in self.rows]
        widths = [max(len(line[i]) for line in lines) for i in range(len(self._HEADER))]
        out = [self.title]
        for line in lines:
            out.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        out.append(self.note)
        out.extend(self.implausible)
        out.append("all targets met" if self.ok else f"{len(self.failures)} target(s) missed")
        return "\n".join(out)


_MAX_LISTED = 10


def _frame(sample: PersonaSample | Sequence[Persona]) -> tuple[pd.DataFrame, str]:
    if isinstance(sample, PersonaSample):
        return sample.frame, sample.config.mode
    if not sample:
        raise PersonaError("cannot validate an empty persona sample")
    import pandas as pd

    frame = pd.DataFrame([p.model_dump() for p in sample])
    return frame, str(frame["wage_mode"].iloc[0])


def _weights(frame: pd.DataFrame) -> np.ndarray:
    if "weight" not in frame:
        return np.ones(len(frame))
    w = frame["weight"].to_numpy(dtype=float)
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise PersonaError("survey weights must be finite, ≥ 0 and not all zero")
    return w


def kish_size(weight: np.ndarray) -> float:
    """Kish's effective sample size ``(Σ w)² / Σ w²``."""
    return float(weight.sum() ** 2 / (weight @ weight)) if weight.size else 0.0


def weighted_quantile(values: np.ndarray, weight: np.ndarray, q: float) -> float:
    """The ``q`` quantile (``0 ≤ q ≤ 1``); with equal weights exactly
    ``np.percentile(values, 100 q)``, else interpolated between the mid-points of the
    sorted values' cumulative weights."""
    if np.all(weight == weight[0]):
        return float(np.percentile(values, 100.0 * q))
    order = np.argsort(values, kind="stable")
    x, w = values[order], weight[order]
    keep = w > 0
    x, w = x[keep], w[keep]
    pos = (np.cumsum(w) - 0.5 * w) / w.sum()
    return float(np.interp(q, pos, x))


def _quantile_se(values: np.ndarray, weight: np.ndarray, q: float, n_eff: float) -> float:
    """``√(q(1−q)/n_eff) / f(Q(q))``, the sparsity ``1/f`` from a difference quotient of
    the sample's own quantile function."""
    lo, hi = max(q - _QUANTILE_SPAN, 0.0), min(q + _QUANTILE_SPAN, 1.0)
    spread = weighted_quantile(values, weight, hi) - weighted_quantile(values, weight, lo)
    return float(np.sqrt(q * (1.0 - q) / n_eff) * spread / (hi - lo))


def _mean_se(values: np.ndarray, weight: np.ndarray) -> float:
    """Linearisation standard error of a weighted mean, ``√Σ w²(x − x̄)² / Σ w``."""
    mean = float(weight @ values / weight.sum())
    return float(np.sqrt(np.sum(weight**2 * (values - mean) ** 2)) / weight.sum())


def _share(mask: np.ndarray, weight: np.ndarray) -> float:
    total = weight.sum()
    return 100.0 * float(weight @ mask / total) if total > 0 else float("nan")


def _share_se(published_pct: float, n_eff: float) -> float:
    """Points: ``100 √(p(1−p)/n_eff)`` at the published share ``p``."""
    if n_eff <= 0:
        return float("inf")
    p = published_pct / 100.0
    return 100.0 * float(np.sqrt(p * (1.0 - p) / n_eff))


def implausible_records(frame: pd.DataFrame, tables: CensusTables | None = None) -> list[str]:
    """One line per implausibility (a persona may have several): younger than its
    occupation's minimum age (``min_age`` in ``occupations.csv``, the EP Table 5.4 rule
    of ``data/SOURCES.md``), or under 18 and married, a surviving spouse, a head of
    household or with children. Occupations the tables lack have no minimum age."""
    return [line for _, line in _implausible(frame, tables)]


def _implausible(frame: pd.DataFrame, tables: CensusTables | None) -> list[tuple[str, str]]:
    """``(persona id, line)`` of each implausibility (:func:`implausible_records`)."""
    t = tables if tables is not None else load_tables()
    index = {soc: i for i, soc in enumerate(t.soc)}
    out: list[tuple[str, str]] = []
    cols = ["id", "occupation_code", "occupation_title", "age", "filing_status", "children"]
    for pid, soc, title, age, filing, children in frame[cols].itertuples(index=False):
        i = index.get(str(soc))
        age = int(age)
        if i is not None and age < int(t.min_age[i]):
            least = t.min_age[i]
            out.append((pid, f"{pid}: aged {age}, below the minimum age {least} for {title}"))
        if age < ADULT_AGE and str(filing) != "single":
            out.append((pid, f"{pid}: aged {age} and filing {filing}"))
        if age < ADULT_AGE and int(children) > 0:
            out.append((pid, f"{pid}: aged {age} with {int(children)} children"))
    return out


def validate(
    sample: PersonaSample | Sequence[Persona],
    *,
    tables: CensusTables | None = None,
    gb2: GB2 = LLM_ECONOMIST_GB2,
) -> ValidationReport:
    """Sample marginals (survey-weighted) next to the published OEWS/CPS/EP figures.

    Targets: OEWS all-occupation hourly p10/p25/p50/p75/p90 and mean within 5 %; % women,
    age-band shares and education shares (workers 25+) within 3 points, or within
    :data:`SE_MULTIPLIER` standard errors of a sample of the bank's effective size when
    that is wider; no
    implausible record (:func:`implausible_records`). Information rows: usual hours
    against CPS ASEC 2023, and the share of workers with annual earnings above $250k and
    $600k next to LLM Economist's GB2 ACS-2023 fit.
    """
    t = tables if tables is not None else load_tables()
    frame, mode = _frame(sample)
    weight = _weights(frame)
    n_eff = kish_size(weight)
    pub = t.published
    oews = pub["oews_all_occupations_2024"]
    cps = pub["cps"]
    wage = frame["hourly_wage_usd"].to_numpy(float)
    rows: list[ValidationRow] = []
    src = "OEWS May 2024"
    for p in (10, 25, 50, 75, 90):
        published = float(oews[f"hourly_p{p}"])
        rows.append(
            ValidationRow(
                f"hourly wage p{p}",
                weighted_quantile(wage, weight, p / 100.0),
                published,
                "$/h",
                src,
                "±5%",
                _quantile_se(wage, weight, p / 100.0, n_eff) / published,
            )
        )
    mean_pub = float(oews["hourly_mean"])
    rows.append(
        ValidationRow(
            "hourly wage mean",
            float(weight @ wage / weight.sum()),
            mean_pub,
            "$/h",
            src,
            "±5%",
            _mean_se(wage, weight) / mean_pub,
        )
    )
    women_pub = float(cps["pct_women"])
    rows.append(
        ValidationRow(
            "% women",
            _share((frame["sex"].astype(str) == "female").to_numpy(), weight),
            women_pub,
            "%",
            "CPS 2022 T11",
            "±3 pts",
            _share_se(women_pub, n_eff),
        )
    )
    bands = frame["age_band"].astype(str).to_numpy()
    for band in AGE_BANDS:
        band_pub = 100.0 * float(cps["age_band_shares"][band])
        rows.append(
            ValidationRow(
                f"% aged {band}",
                _share(bands == band, weight),
                band_pub,
                "%",
                "CPS 2025 T11b",
                "±3 pts",
                _share_se(band_pub, n_eff),
            )
        )
    adult = frame["age"].to_numpy(int) >= 25
    adults = frame["education"].astype(str).to_numpy()[adult]
    w_adult = weight[adult]
    n_eff_adult = kish_size(w_adult)
    for level in EDUCATION:
        level_pub = 100.0 * float(cps["education_shares_25plus"][level])
        rows.append(
            ValidationRow(
                f"% {level} (25+)",
                _share(adults == level, w_adult) if adults.size else float("nan"),
                level_pub,
                "%",
                "EP 2022-32 T5.3",
                "±3 pts",
                _share_se(level_pub, n_eff_adult),
            )
        )
    found = _implausible(frame, t)
    problems = [line for _, line in found]
    rows.append(
        ValidationRow(
            "implausible records",
            float(len({pid for pid, _ in found})),  # personas, not their problems
            0.0,
            "n",
            "EP T5.4 min ages; no married or parent minors",
            PLAUSIBILITY_TARGET,
        )
    )
    hours = frame["usual_weekly_hours"].to_numpy(float)
    asec = pub["cps_asec_hours_2023"]
    rows.append(
        ValidationRow(
            "mean usual hours",
            float(weight @ hours / weight.sum()),
            float(asec["mean_hours_workers_20plus"]),
            "h",
            "CPS ASEC 2023 (20+)",
        )
    )
    rows.append(
        ValidationRow(
            "% usual hours = 40",
            _share(hours == 40, weight),
            100.0 * float(asec["share_exactly_40"]),
            "%",
            "CPS ASEC 2023 (20+)",
        )
    )
    rows.append(
        ValidationRow(
            f"% wage < ${MIN_WAGE_USD}/h",
            _share(wage < MIN_WAGE_USD, weight),
            100.0 * float(1.0 - gb2.sf(52.0 * 40.0 * MIN_WAGE_USD)),
            "%",
            "GB2 ACS-2023 fit at 40 h",
        )
    )
    annual = 52.0 * wage * hours
    at_40 = 52.0 * 40.0 * wage
    for thr in TAIL_THRESHOLDS_USD:
        gb2_share = 100.0 * float(gb2.sf(thr))
        k = f"{thr / 1000:.0f}k"
        rows.append(
            ValidationRow(
                f"% earning > ${k}/yr",
                _share(annual > thr, weight),
                gb2_share,
                "%",
                "GB2 ACS-2023 fit",
            )
        )
        rows.append(
            ValidationRow(
                f"% > ${k}/yr at 40 h",
                _share(at_40 > thr, weight),
                gb2_share,
                "%",
                "GB2 ACS-2023 fit",
            )
        )
    listed = problems[:_MAX_LISTED]
    if len(problems) > len(listed):
        listed.append(f"... and {len(problems) - len(listed)} more implausibilities")
    return ValidationReport(tuple(rows), len(frame), mode, n_eff, tuple(listed))
