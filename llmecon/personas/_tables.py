"""The derived Census/BLS tables shipped in ``llmecon/personas/data/``.

Built by ``scripts/build_census_tables.py`` (see ``data/SOURCES.md`` for the sources).
Loading needs only pandas; a missing or corrupt table raises :class:`PersonaError`
naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import pandas as pd

DATA_DIR = Path(__file__).resolve().parent / "data"

AGE_BANDS: tuple[str, ...] = ("16-19", "20-24", "25-34", "35-44", "45-54", "55-64", "65+")
#: State (and DC) postal codes -> names as personas state them.
STATE_NAMES: dict[str, str] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "the District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan",
    "MN": "Minnesota", "MS": "Mississippi", "MO": "Missouri", "MT": "Montana",
    "NE": "Nebraska", "NV": "Nevada", "NH": "New Hampshire", "NJ": "New Jersey",
    "NM": "New Mexico", "NY": "New York", "NC": "North Carolina", "ND": "North Dakota",
    "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon", "PA": "Pennsylvania",
    "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota", "TN": "Tennessee",
    "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia", "WA": "Washington",
    "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
}  # fmt: skip
#: Education levels, lowest first (BLS EP Table 5.3 categories).
EDUCATION: tuple[str, ...] = (
    "less_than_high_school",
    "high_school",
    "some_college",
    "associate",
    "bachelor",
    "master",
    "doctoral_professional",
)
EDUCATION_LABELS: dict[str, str] = {
    "less_than_high_school": "no high-school diploma",
    "high_school": "a high-school diploma",
    "some_college": "some college, no degree",
    "associate": "an associate degree",
    "bachelor": "a bachelor's degree",
    "master": "a master's degree",
    "doctoral_professional": "a doctoral or professional degree",
}
DONOR_AGE_GROUPS: tuple[str, ...] = ("16-24", "25-34", "35-44", "45-54", "55-64", "65+")
FILING_STATUSES: tuple[str, ...] = (
    "single",
    "married_joint",
    "married_separate",
    "head_of_household",
    "widow",
)
PERCENTILES: tuple[int, ...] = (10, 25, 50, 75, 90)

_FILES = (
    "occupations.csv",
    "industries.csv",
    "sectors.csv",
    "hours_by_age.csv",
    "age_within_band.csv",
    "households.csv",
    "published.json",
)


class PersonaError(ValueError):
    """A persona table or persona file is missing, corrupt or invalid."""


FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class CensusTables:
    """The shipped tables as arrays, ready for vectorised sampling.

    Occupation-indexed arrays share the order of :attr:`soc`.
    """

    soc: tuple[str, ...]
    title: tuple[str, ...]
    employment: FloatArray
    wage_knots: FloatArray  # (n_occ, 5): hourly p10, p25, p50, p75, p90 (USD/h)
    wage_mean: FloatArray
    tail_alpha: FloatArray
    pct_women: FloatArray  # 0..100
    min_age: IntArray  # plausibility: nobody younger works in the occupation (SOURCES.md)
    age_shares: FloatArray  # (n_occ, 7)
    edu_shares: FloatArray  # (n_occ, 7)
    industry_cum: FloatArray  # (n_occ, n_sectors) cumulative shares
    sector_labels: tuple[str, ...]
    hours_cum: FloatArray  # (7, 80) cumulative share of hours 1..80 by age band
    age_cum: FloatArray  # (7, 86) cumulative share of single ages 0..85 by band
    donors: pd.DataFrame  # household donors, sorted by (cell, rank)
    donor_cell_key: FloatArray  # cell id + within-cell cumulative weight (for searchsorted)
    published: dict[str, Any]
    data_dir: Path

    @property
    def n_occupations(self) -> int:
        return len(self.soc)


def _read_csv(path: Path, required: list[str]) -> pd.DataFrame:
    import pandas as pd  # imported here: ~0.35 s that a run without sampling skips

    if not path.is_file():
        raise PersonaError(
            f"persona table not found: {path} (rebuild it with scripts/build_census_tables.py)"
        )
    try:
        df = pd.read_csv(path, dtype={"soc": str, "naics": str, "age_band": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PersonaError(f"persona table {path} is corrupt: {exc}") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise PersonaError(f"persona table {path} is corrupt: missing columns {missing}")
    if df.empty:
        raise PersonaError(f"persona table {path} is empty")
    return df


def _numeric(df: pd.DataFrame, cols: list[str], path: Path) -> FloatArray:
    try:
        values = df[cols].to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise PersonaError(f"persona table {path} is corrupt: non-numeric {cols}") from exc
    if not np.all(np.isfinite(values)):
        raise PersonaError(f"persona table {path} is corrupt: missing numbers in {cols}")
    return values


def _cumulative(mat: FloatArray, path: Path) -> FloatArray:
    totals = mat.sum(axis=1, keepdims=True)
    if np.any(totals <= 0) or np.any(mat < 0):
        raise PersonaError(f"persona table {path} is corrupt: shares must be ≥ 0 and sum > 0")
    cum = np.cumsum(mat / totals, axis=1)
    cum[:, -1] = 1.0
    return cum


def load_tables(data_dir: str | Path | None = None) -> CensusTables:
    """Load the derived tables (cached for the shipped folder)."""
    if data_dir is None:
        return _load_shipped()
    return _load(Path(data_dir))


@lru_cache(maxsize=1)
def _load_shipped() -> CensusTables:
    return _load(DATA_DIR)


def _load(data_dir: Path) -> CensusTables:
    if not data_dir.is_dir():
        raise PersonaError(f"persona table folder not found: {data_dir}")
    p_occ = data_dir / "occupations.csv"
    knot_cols = [f"wage_p{p}" for p in PERCENTILES]
    age_cols = [f"age_{b}" for b in AGE_BANDS]
    edu_cols = [f"edu_{e}" for e in EDUCATION]
    occ_cols = ["employment", *knot_cols, "wage_mean", "tail_alpha", "pct_women", "min_age"]
    occ = _read_csv(p_occ, ["soc", "title", *occ_cols, *age_cols, *edu_cols])
    occ_num = _numeric(occ, occ_cols, p_occ)
    knots = occ_num[:, 1:6]
    if np.any(knots <= 0) or np.any(np.diff(knots, axis=1) < 0):
        raise PersonaError(f"persona table {p_occ} is corrupt: wage percentiles not increasing")
    soc = tuple(occ["soc"].astype(str))
    index = {s: i for i, s in enumerate(soc)}

    p_sec = data_dir / "sectors.csv"
    sectors = _read_csv(p_sec, ["naics", "title", "label"])
    sector_index = {c: j for j, c in enumerate(sectors["naics"].astype(str))}
    p_ind = data_dir / "industries.csv"
    ind = _read_csv(p_ind, ["soc", "naics", "share"])
    mat = np.zeros((len(soc), len(sector_index)))
    try:
        rows = ind["soc"].map(index).to_numpy(dtype=float)
        cols = ind["naics"].astype(str).map(sector_index).to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise PersonaError(f"persona table {p_ind} is corrupt: {exc}") from exc
    if np.isnan(rows).any() or np.isnan(cols).any():
        raise PersonaError(f"persona table {p_ind} is corrupt: unknown occupation or sector code")
    np.add.at(mat, (rows.astype(int), cols.astype(int)), _numeric(ind, ["share"], p_ind)[:, 0])

    p_hours = data_dir / "hours_by_age.csv"
    hours = _read_csv(p_hours, ["age_band", "hours", "share"])
    hmat = np.zeros((len(AGE_BANDS), 80))
    for b, band in enumerate(AGE_BANDS):
        sub = hours[hours["age_band"] == band]
        h = _numeric(sub, ["hours", "share"], p_hours)
        if h.size == 0 or np.any(h[:, 0] < 1) or np.any(h[:, 0] > 80):
            raise PersonaError(f"persona table {p_hours} is corrupt: bad hours for ages {band}")
        hmat[b, h[:, 0].astype(int) - 1] = h[:, 1]

    p_age = data_dir / "age_within_band.csv"
    ages = _read_csv(p_age, ["age_band", "age", "share"])
    amat = np.zeros((len(AGE_BANDS), 86))
    for b, band in enumerate(AGE_BANDS):
        a = _numeric(ages[ages["age_band"] == band], ["age", "share"], p_age)
        if a.size == 0 or np.any(a[:, 0] < 16) or np.any(a[:, 0] > 85):
            raise PersonaError(f"persona table {p_age} is corrupt: bad ages for band {band}")
        amat[b, a[:, 0].astype(int)] = a[:, 1]

    p_hh = data_dir / "households.csv"
    hh_cols = [
        "age_group",
        "rank_bin",
        "rank",
        "filing_status",
        "children",
        "household_size",
        "spouse_rank",
        "state",
        "weight",
    ]
    donors = _read_csv(p_hh, hh_cols)
    group = donors["age_group"].map({g: i for i, g in enumerate(DONOR_AGE_GROUPS)})
    hh_num = _numeric(donors, ["rank_bin", "rank", "children", "household_size", "weight"], p_hh)
    if (
        group.isna().any()
        or not donors["filing_status"].isin(FILING_STATUSES).all()
        or np.any(hh_num[:, 2] < 0)
        or np.any(hh_num[:, 3] < 1)
        or np.any(hh_num[:, 4] <= 0)
    ):
        raise PersonaError(f"persona table {p_hh} is corrupt: invalid household values")
    donors = donors.assign(cell=group.to_numpy(int) * 10 + hh_num[:, 0].astype(int))
    donors = donors.sort_values(["cell", "rank"], kind="stable").reset_index(drop=True)
    n_cells = len(DONOR_AGE_GROUPS) * 10
    if donors["cell"].nunique() != n_cells:
        raise PersonaError(f"persona table {p_hh} is corrupt: empty age × rank cells")
    w = donors["weight"].to_numpy(float)
    cell = donors["cell"].to_numpy(int)
    cell_tot = np.bincount(cell, weights=w, minlength=n_cells)
    within = np.cumsum(w) - np.concatenate([[0.0], np.cumsum(cell_tot)])[cell]
    key = cell + within / cell_tot[cell]

    p_pub = data_dir / "published.json"
    if not p_pub.is_file():
        raise PersonaError(f"persona table not found: {p_pub}")
    try:
        published = json.loads(p_pub.read_text(encoding="utf-8"))
        published["oews_all_occupations_2024"]["hourly_p50"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise PersonaError(f"persona table {p_pub} is corrupt: {exc}") from exc

    return CensusTables(
        soc=soc,
        title=tuple(occ["title"].astype(str)),
        employment=occ_num[:, 0],
        wage_knots=knots,
        wage_mean=occ_num[:, 6],
        tail_alpha=occ_num[:, 7],
        pct_women=occ_num[:, 8],
        min_age=np.clip(occ_num[:, 9], 16, 85).astype(np.int64),
        age_shares=_numeric(occ, age_cols, p_occ),
        edu_shares=_numeric(occ, edu_cols, p_occ),
        industry_cum=_cumulative(mat, p_ind),
        sector_labels=tuple(sectors["label"].astype(str)),
        hours_cum=_cumulative(hmat, p_hours),
        age_cum=_cumulative(amat, p_age),
        donors=donors,
        donor_cell_key=key,
        published=published,
        data_dir=data_dir,
    )


def table_files() -> tuple[str, ...]:
    """Names of the derived tables (besides ``SOURCES.md``)."""
    return _FILES
