"""Compare a persona sample's marginals with the published tables, side by side."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from llmecon.personas._gb2 import GB2, LLM_ECONOMIST_GB2
from llmecon.personas._persona import Persona
from llmecon.personas._sampler import PersonaSample
from llmecon.personas._tables import AGE_BANDS, EDUCATION, CensusTables, PersonaError, load_tables

if TYPE_CHECKING:
    from rich.table import Table

#: Relative tolerance on OEWS wage statistics; absolute (points) on shares.
WAGE_TOLERANCE = 0.05
SHARE_TOLERANCE_POINTS = 3.0
TAIL_THRESHOLDS_USD = (250_000.0, 600_000.0)


@dataclass(frozen=True)
class ValidationRow:
    """One statistic: sample value next to the published one."""

    statistic: str
    sample: float
    published: float
    unit: str  # "$/h", "%", "h", "$"
    source: str
    #: ``"±5%"`` (relative) or ``"±3 pts"`` (absolute); ``""`` for information only.
    target: str = ""

    @property
    def difference(self) -> float:
        """Sample − published (relative for ``±x%`` targets, in points otherwise)."""
        if self.target.endswith("%"):
            return (self.sample - self.published) / self.published
        return self.sample - self.published

    @property
    def within_target(self) -> bool | None:
        if not self.target:
            return None
        if self.target.endswith("%"):
            return abs(self.difference) <= WAGE_TOLERANCE
        return abs(self.difference) <= SHARE_TOLERANCE_POINTS


@dataclass(frozen=True)
class ValidationReport:
    """Rows of sample vs published marginals; :attr:`ok` if every target holds."""

    rows: tuple[ValidationRow, ...]
    n: int
    mode: str

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
        return pd.DataFrame(
            {
                "statistic": [r.statistic for r in self.rows],
                "sample": [r.sample for r in self.rows],
                "published": [r.published for r in self.rows],
                "difference": [r.difference for r in self.rows],
                "target": [r.target for r in self.rows],
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

        diff = f"{100 * r.difference:+.1f}%" if r.target.endswith("%") else f"{r.difference:+.2f}"
        flag = {True: "ok", False: "FAIL", None: "info"}[r.within_target]
        return [
            r.statistic,
            r.unit,
            fmt(r.sample),
            fmt(r.published),
            diff,
            r.target,
            flag,
            r.source,
        ]

    _HEADER = ("statistic", "unit", "sample", "published", "diff", "target", "check", "source")

    def to_rich(self) -> Table:
        from rich.table import Table

        table = Table(title=f"Persona sample (n={self.n:,}, mode={self.mode}) vs published")
        for h in self._HEADER:
            table.add_column(
                h,
                justify="right" if h in ("sample", "published", "diff") else "left",
                no_wrap=h == "statistic",
            )
        for r in self.rows:
            cells = self._cells(r)
            style = {"FAIL": "bold red", "ok": "green"}.get(cells[6], "dim")
            cells[6] = f"[{style}]{cells[6]}[/]"
            table.add_row(*cells)
        return table

    def __str__(self) -> str:
        lines = [list(self._HEADER)] + [self._cells(r) for r in self.rows]
        widths = [max(len(line[i]) for line in lines) for i in range(len(self._HEADER))]
        out = [f"Persona sample (n={self.n:,}, mode={self.mode}) vs published"]
        for line in lines:
            out.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        out.append("all targets met" if self.ok else f"{len(self.failures)} target(s) missed")
        return "\n".join(out)


def _frame(sample: PersonaSample | Sequence[Persona]) -> tuple[pd.DataFrame, str]:
    if isinstance(sample, PersonaSample):
        return sample.frame, sample.config.mode
    if not sample:
        raise PersonaError("cannot validate an empty persona sample")
    frame = pd.DataFrame([p.model_dump() for p in sample])
    return frame, str(frame["wage_mode"].iloc[0])


def validate(
    sample: PersonaSample | Sequence[Persona],
    *,
    tables: CensusTables | None = None,
    gb2: GB2 = LLM_ECONOMIST_GB2,
) -> ValidationReport:
    """Sample marginals next to the published OEWS/CPS/EP figures.

    Targets: OEWS all-occupation hourly p10/p25/p50/p75/p90 and mean within 5 %; % women,
    age-band shares and education shares (workers 25+) within 3 points. Information
    rows: usual hours against CPS ASEC 2023, and the share of workers with annual
    earnings above $250k and $600k next to LLM Economist's GB2 ACS-2023 fit.
    """
    t = tables if tables is not None else load_tables()
    frame, mode = _frame(sample)
    pub = t.published
    oews = pub["oews_all_occupations_2024"]
    cps = pub["cps"]
    wage = frame["hourly_wage_usd"].to_numpy(float)
    rows: list[ValidationRow] = []
    src = "OEWS May 2024"
    for p in (10, 25, 50, 75, 90):
        rows.append(
            ValidationRow(
                f"hourly wage p{p}",
                float(np.percentile(wage, p)),
                float(oews[f"hourly_p{p}"]),
                "$/h",
                src,
                "±5%",
            )
        )
    rows.append(
        ValidationRow(
            "hourly wage mean", float(wage.mean()), float(oews["hourly_mean"]), "$/h", src, "±5%"
        )
    )
    women = 100.0 * float((frame["sex"].astype(str) == "female").mean())
    rows.append(
        ValidationRow("% women", women, float(cps["pct_women"]), "%", "CPS 2022 T11", "±3 pts")
    )
    bands = frame["age_band"].astype(str)
    for band in AGE_BANDS:
        rows.append(
            ValidationRow(
                f"% aged {band}",
                100.0 * float((bands == band).mean()),
                100.0 * float(cps["age_band_shares"][band]),
                "%",
                "CPS 2025 T11b",
                "±3 pts",
            )
        )
    adults = frame[frame["age"].to_numpy(int) >= 25]["education"].astype(str)
    for level in EDUCATION:
        rows.append(
            ValidationRow(
                f"% {level} (25+)",
                100.0 * float((adults == level).mean()) if len(adults) else float("nan"),
                100.0 * float(cps["education_shares_25plus"][level]),
                "%",
                "EP 2022-32 T5.3",
                "±3 pts",
            )
        )
    hours = frame["usual_weekly_hours"].to_numpy(float)
    asec = pub["cps_asec_hours_2023"]
    rows.append(
        ValidationRow(
            "mean usual hours",
            float(hours.mean()),
            float(asec["mean_hours_workers_20plus"]),
            "h",
            "CPS ASEC 2023 (20+)",
        )
    )
    rows.append(
        ValidationRow(
            "% usual hours = 40",
            100.0 * float((hours == 40).mean()),
            100.0 * float(asec["share_exactly_40"]),
            "%",
            "CPS ASEC 2023 (20+)",
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
                100.0 * float((annual > thr).mean()),
                gb2_share,
                "%",
                "GB2 ACS-2023 fit",
            )
        )
        rows.append(
            ValidationRow(
                f"% > ${k}/yr at 40 h",
                100.0 * float((at_40 > thr).mean()),
                gb2_share,
                "%",
                "GB2 ACS-2023 fit",
            )
        )
    return ValidationReport(tuple(rows), len(frame), mode)
