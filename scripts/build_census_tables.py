"""Derive the persona sampler's compact tables from the raw Census/BLS files.

Reads the raw public tables in ``../shared/data/census/`` (see its SOURCES.md; override
with ``--raw DIR``) and writes small figure tables plus a ``SOURCES.md`` attribution into
``llmecon/personas/data/`` (override with ``--out DIR``). Only derived figures are
written, never the raw files. The output is deterministic: re-running the script on the
same inputs reproduces the committed tables byte for byte (no randomness; the
household donors are chosen by systematic probability-proportional-to-size sampling on
a stable sort order, and every number is written with a fixed format).

Usage::

    python scripts/build_census_tables.py                # ../shared/data/census -> package
    python scripts/build_census_tables.py --raw DIR --out /tmp/tables

Needs pandas and openpyxl (the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RAW = REPO_ROOT.parent / "shared" / "data" / "census"
DEFAULT_OUT = REPO_ROOT / "llmecon" / "personas" / "data"

RAW_FILES = {
    "oews": "bls_oews_national_M2024.xlsx",
    "oews_sector": "bls_oews_natsector_M2024.xlsx",
    "cps11": "bls_cps_table11_2022.xlsx",
    "cps11b": "bls_cps_table11b_2025.xlsx",
    "ep": "bls_ep_occupation_2023.xlsx",
    "census_codes": "census_2018_occupation_codes.xlsx",
    "taxcalc": "taxcalc_cps.csv.gz",
    "hours": "ogusa_cps_asec_hours_2023.csv",
}

AGE_BANDS = ("16-19", "20-24", "25-34", "35-44", "45-54", "55-64", "65+")
EDUCATION = (
    "less_than_high_school",
    "high_school",
    "some_college",
    "associate",
    "bachelor",
    "master",
    "doctoral_professional",
)
PERCENTILES = (10, 25, 50, 75, 90)
#: OEWS top-code for hourly wages (published as "#", ≥ $115/h).
OEWS_TOPCODE_HOURLY = 115.0
#: Hours per year OEWS uses to convert annual to hourly wages.
OEWS_HOURS_PER_YEAR = 2080.0
MIN_WAGE_USD = 7.25
#: Cells below this (thousands of workers) fall back to the major-group figures, the
#: same threshold BLS uses for publishing CPS percentages.
CPS_MIN_BASE_THOUSANDS = 50.0
#: Household donors: age groups × earnings-rank deciles, this many donors per cell.
DONOR_AGE_GROUPS = ("16-24", "25-34", "35-44", "45-54", "55-64", "65+")
DONOR_RANK_BINS = 10
DONORS_PER_CELL = 60
#: Pareto tail exponent bounds when calibrating to each occupation's mean wage.
TAIL_ALPHA_MIN, TAIL_ALPHA_MAX = 1.6, 8.0

#: Occupation minimum ages (plausibility rule, documented in SOURCES.md and
#: docs/personas.md): the usual age at which the occupation's *typical education needed
#: for entry* (BLS EP Table 5.4) is completed, plus the years of *work experience in a
#: related occupation* it needs (Table 5.4: "less than 5 years" counts 1, "5 years or
#: more" 5). Occupations missing from Table 5.4 get the survey's lowest age, 16.
ENTRY_EDUCATION_AGE = {
    "No formal educational credential": 16,
    "High school diploma or equivalent": 18,
    "Some college, no degree": 19,
    "Postsecondary nondegree award": 19,
    "Associate's degree": 20,
    "Bachelor's degree": 22,
    "Master's degree": 24,
    "Doctoral or professional degree": 25,
}
ENTRY_EXPERIENCE_YEARS = {"Less than 5 years": 1, "5 years or more": 5}
MIN_WORKING_AGE = 16

FILING_STATUS = {
    1: "single",
    2: "married_joint",
    3: "married_separate",
    4: "head_of_household",
    5: "widow",
}
#: FIPS state code -> USPS abbreviation (the taxcalc CPS file's ``fips``).
FIPS_STATE = {
    1: "AL",
    2: "AK",
    4: "AZ",
    5: "AR",
    6: "CA",
    8: "CO",
    9: "CT",
    10: "DE",
    11: "DC",
    12: "FL",
    13: "GA",
    15: "HI",
    16: "ID",
    17: "IL",
    18: "IN",
    19: "IA",
    20: "KS",
    21: "KY",
    22: "LA",
    23: "ME",
    24: "MD",
    25: "MA",
    26: "MI",
    27: "MN",
    28: "MS",
    29: "MO",
    30: "MT",
    31: "NE",
    32: "NV",
    33: "NH",
    34: "NJ",
    35: "NM",
    36: "NY",
    37: "NC",
    38: "ND",
    39: "OH",
    40: "OK",
    41: "OR",
    42: "PA",
    44: "RI",
    45: "SC",
    46: "SD",
    47: "TN",
    48: "TX",
    49: "UT",
    50: "VT",
    51: "VA",
    53: "WA",
    54: "WV",
    55: "WI",
    56: "WY",
}
#: Short labels for the OEWS NAICS sectors (for persona text).
SECTOR_LABELS = {
    "11": "agriculture, forestry and fishing",
    "21": "mining, quarrying and oil and gas extraction",
    "22": "utilities",
    "23": "construction",
    "31-33": "manufacturing",
    "42": "wholesale trade",
    "44-45": "retail trade",
    "48-49": "transportation and warehousing",
    "51": "information",
    "52": "finance and insurance",
    "53": "real estate and rental and leasing",
    "54": "professional, scientific and technical services",
    "55": "management of companies",
    "56": "administrative and support services",
    "61": "educational services",
    "62": "health care and social assistance",
    "71": "arts, entertainment and recreation",
    "72": "accommodation and food services",
    "81": "other services",
    "99": "government",
}


class BuildError(RuntimeError):
    """A raw input is missing or not in the expected shape."""


# --------------------------------------------------------------------------- helpers


def _raw(raw_dir: Path, key: str) -> Path:
    path = raw_dir / RAW_FILES[key]
    if not path.is_file():
        raise BuildError(f"raw file not found: {path}")
    return path


def _norm_title(text: object) -> str:
    s = re.sub(r"\(\d+\)", "", str(text))  # footnote markers "(1)"
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


def _num(value: object) -> float:
    """A number from a BLS cell; NaN for '*', '**', '–', '#' and blanks."""
    try:
        return float(str(value).replace(",", "").strip())
    except ValueError:
        return float("nan")


def _fmt(x: float, decimals: int) -> str:
    """Fixed decimals without trailing zeros (stable text for byte-exact rebuilds)."""
    if not np.isfinite(x):
        return ""
    s = f"{x:.{decimals}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _write_csv(path: Path, header: list[str], rows: Iterable[list[str]]) -> None:
    lines = [",".join(header)]
    for row in rows:
        cells = [f'"{c}"' if ("," in c or '"' in c) else c for c in row]
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _weighted_rank(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mid-point weighted percentile rank in (0, 1) (ties share their mid rank)."""
    order = np.lexsort((np.arange(values.size), values))
    v, w = values[order], weights[order]
    uniq, start = np.unique(v, return_index=True)
    cw = np.concatenate([[0.0], np.cumsum(w)])
    total = cw[-1]
    end = np.append(start[1:], v.size)
    mid = (cw[start] + cw[end]) / 2.0 / total
    rank_sorted = np.repeat(mid, end - start)
    out = np.empty_like(rank_sorted)
    out[order] = rank_sorted
    del uniq
    return out


# --------------------------------------------------------------------------- OEWS wages


def _quantile_mean(knots_u: np.ndarray, knots_log: np.ndarray) -> float:
    """∫ exp(Q) du over [0, u_last] for log-wages linear between knots.

    Below the first knot the first segment's slope is extrapolated to u = 0 and the
    result floored at the minimum wage (integrated numerically on a fixed grid).
    """
    if knots_u.size == 1:  # only p10 published (one surgeon specialty): flat below it
        return float(np.exp(knots_log[0]) * knots_u[0])
    total = 0.0
    for a, b, la, lb in zip(knots_u[:-1], knots_u[1:], knots_log[:-1], knots_log[1:], strict=True):
        total += (b - a) * (
            np.exp(la) if abs(lb - la) < 1e-12 else (np.exp(lb) - np.exp(la)) / (lb - la)
        )
    slope = (knots_log[1] - knots_log[0]) / (knots_u[1] - knots_u[0])
    grid = (np.arange(1000) + 0.5) / 1000 * knots_u[0]
    low = np.maximum(np.exp(knots_log[0] - slope * (knots_u[0] - grid)), MIN_WAGE_USD)
    return float(total + low.mean() * knots_u[0])


def _alpha_for_mean(tail_mean: float, q_start: float) -> float:
    """Pareto exponent whose mean above ``q_start`` is ``tail_mean`` (clipped)."""
    if not np.isfinite(tail_mean) or tail_mean <= q_start * TAIL_ALPHA_MAX / (TAIL_ALPHA_MAX - 1):
        return TAIL_ALPHA_MAX  # the body already carries the mean: thinnest allowed tail
    return float(np.clip(tail_mean / (tail_mean - q_start), TAIL_ALPHA_MIN, TAIL_ALPHA_MAX))


def _fit_tail(pct: np.ndarray, mean: float) -> tuple[np.ndarray, float, int]:
    """Fill top-coded percentiles and calibrate a Pareto tail to the occupation's mean.

    ``pct``: hourly p10..p90 with NaN where OEWS top-codes ("#", ≥ $115/h). Above the
    last published percentile the quantile function is taken to be Pareto with the
    exponent α that makes the occupation's mean wage equal the published OEWS mean;
    top-coded percentiles are filled from that Pareto (at least $115/h). The tail above
    p90 then gets the α that matches the mean given the (filled) p10…p90.
    """
    u = np.array(PERCENTILES, dtype=float) / 100.0
    known = np.isfinite(pct)
    n_top = int((~known).sum())
    last = int(np.flatnonzero(known).max())
    filled = pct.copy()
    if n_top:
        body = _quantile_mean(u[: last + 1], np.log(pct[: last + 1]))
        alpha0 = _alpha_for_mean((mean - body) / (1.0 - u[last]), pct[last])
        for j in range(last + 1, len(u)):
            pareto = pct[last] * ((1.0 - u[last]) / (1.0 - u[j])) ** (1.0 / alpha0)
            filled[j] = max(pareto, OEWS_TOPCODE_HOURLY, filled[j - 1])
    body = _quantile_mean(u, np.log(filled))
    alpha = _alpha_for_mean((mean - body) / (1.0 - u[-1]), filled[-1])
    return filled, alpha, n_top


def read_oews(raw_dir: Path) -> tuple[pd.DataFrame, dict[str, float]]:
    df = pd.read_excel(_raw(raw_dir, "oews"), sheet_name=0, dtype=str)
    total = df[df["O_GROUP"] == "total"].iloc[0]
    published = {
        "employment": _num(total["TOT_EMP"]),
        "hourly_mean": _num(total["H_MEAN"]),
        **{f"hourly_p{p}": _num(total[c]) for p, c in zip(PERCENTILES, _H_COLS, strict=True)},
    }
    det = df[df["O_GROUP"] == "detailed"].copy()
    rows = []
    for _, r in det.iterrows():
        pct = np.array([_num(r[c]) for c in _H_COLS])
        mean = _num(r["H_MEAN"])
        if not np.isfinite(pct).any():  # annual-only occupations (teachers, legislators)
            pct = np.array([_num(r[c]) for c in _A_COLS]) / OEWS_HOURS_PER_YEAR
            mean = _num(r["A_MEAN"]) / OEWS_HOURS_PER_YEAR
        filled, alpha, n_top = _fit_tail(pct, mean)
        rows.append(
            {
                "soc": r["OCC_CODE"],
                "title": str(r["OCC_TITLE"]).strip(),
                "employment": _num(r["TOT_EMP"]),
                **{f"wage_p{p}": filled[i] for i, p in enumerate(PERCENTILES)},
                "wage_mean": mean,
                "tail_alpha": alpha,
                "topcoded_knots": n_top,
                "annual_only": str(r.get("ANNUAL", "")).upper() == "TRUE",
            }
        )
    occ = pd.DataFrame(rows)
    if occ["employment"].isna().any():
        raise BuildError("OEWS: a detailed occupation without employment")
    return occ, published


_H_COLS = ("H_PCT10", "H_PCT25", "H_MEDIAN", "H_PCT75", "H_PCT90")
_A_COLS = ("A_PCT10", "A_PCT25", "A_MEDIAN", "A_PCT75", "A_PCT90")


# --------------------------------------------------------------------------- SOC ↔ Census


def read_census_codes(raw_dir: Path) -> pd.DataFrame:
    c = pd.read_excel(
        _raw(raw_dir, "census_codes"),
        sheet_name="2018 Census Occ Code List",
        header=None,
        usecols=range(4),
        dtype=str,
    )
    c = c[c[2].fillna("").str.strip().str.fullmatch(r"\d{4}")]
    out = pd.DataFrame(
        {"census_code": c[2].str.strip(), "title": c[1].str.strip(), "soc": c[3].str.strip()}
    )
    return out[~out["soc"].str.startswith("55-")].reset_index(drop=True)  # military


def _soc_matches(pattern: str, soc: str) -> int:
    """Specificity of a Census SOC pattern for a detailed SOC code (0 = no match)."""
    if pattern == soc:
        return 100
    if len(pattern) != 7:
        return 0
    if "X" in pattern:
        ok = all(p == "X" or p == s for p, s in zip(pattern, soc, strict=True))
        return 50 - pattern.count("X") if ok else 0
    if pattern.endswith("0") and pattern[:6] == soc[:6]:
        return 80  # a broad occupation covering the detailed ones
    return 0


def map_soc_to_census(socs: Iterable[str], codes: pd.DataFrame) -> dict[str, str]:
    out: dict[str, str] = {}
    for soc in socs:
        best, best_score = "", 0
        for pattern, title in zip(codes["soc"], codes["title"], strict=True):
            score = _soc_matches(pattern, soc)
            if score > best_score:
                best, best_score = title, score
        if best:
            out[soc] = best
    return out


def _read_cps_table(path: Path, value_cols: list[int]) -> dict[str, list[float]]:
    t = pd.read_excel(path, header=None, dtype=str)
    out: dict[str, list[float]] = {}
    for _, r in t.iterrows():
        if pd.isna(r[0]):
            continue
        key = _norm_title(r[0])
        if key and key not in out:
            out[key] = [_num(r[c]) for c in value_cols]
    return out


def _group_fill(
    occ: pd.DataFrame, cols: list[str], have: pd.Series
) -> tuple[pd.DataFrame, pd.Series]:
    """Fill rows without data with their SOC major group's employment-weighted mean."""
    major = occ["soc"].str[:2]
    filled = occ[cols].copy()
    w = occ["employment"].where(have, 0.0)
    overall = (occ.loc[have, cols].mul(w[have], axis=0)).sum() / w[have].sum()
    for grp in major.unique():
        in_grp = major == grp
        donors = in_grp & have
        value = (
            occ.loc[donors, cols].mul(w[donors], axis=0).sum() / w[donors].sum()
            if donors.any()
            else overall
        )
        miss = in_grp & ~have
        filled.loc[miss, cols] = np.tile(value.to_numpy(), (int(miss.sum()), 1))
    source = pd.Series(np.where(have, "detailed", "major_group"), index=occ.index)
    return filled, source


def _rake_share(pct: np.ndarray, weight: np.ndarray, target_pct: float) -> np.ndarray:
    """Scale every occupation's odds of being a woman by one common factor so that the
    OEWS-employment-weighted share equals the published CPS total.

    OEWS (2024, wage and salary jobs, no farms or private households) and CPS (2022, all
    employed) weigh occupations differently: unraked, the OEWS mix of CPS shares gives
    49.6 % women against the published 46.8 %. One odds factor (raking on the sex
    margin) keeps the ordering and spread of the occupations' shares.
    """
    p = np.clip(pct / 100.0, 1e-4, 1 - 1e-4)
    odds = p / (1 - p)
    lo, hi = 1e-3, 1e3
    for _ in range(200):  # bisection on the log factor: deterministic
        mid = np.sqrt(lo * hi)
        share = np.average(mid * odds / (1 + mid * odds), weights=weight)
        lo, hi = (mid, hi) if share < target_pct / 100.0 else (lo, mid)
    c = np.sqrt(lo * hi)
    return 100.0 * c * odds / (1 + c * odds)


def read_min_ages(raw_dir: Path, socs: Iterable[str]) -> np.ndarray:
    """Each occupation's minimum age (see :data:`ENTRY_EDUCATION_AGE`), from EP Table 5.4."""
    t = pd.read_excel(_raw(raw_dir, "ep"), sheet_name="Table 5.4", header=None, dtype=str)
    t = t[t[1].fillna("").str.fullmatch(r"\d\d-\d{4}")]
    rule: dict[str, int] = {}
    for _, r in t.iterrows():
        education = str(r[2]).strip()
        if education not in ENTRY_EDUCATION_AGE:
            raise BuildError(f"EP Table 5.4: unknown entry education {education!r} for {r[1]}")
        experience = ENTRY_EXPERIENCE_YEARS.get(str(r[3]).strip(), 0)
        rule[str(r[1])] = ENTRY_EDUCATION_AGE[education] + experience
    return np.array([rule.get(soc, MIN_WORKING_AGE) for soc in socs], dtype=int)


def _band_mass_from(within_band: dict[str, dict[int, float]], min_age: np.ndarray) -> np.ndarray:
    """``(n_occ, 7)``: share of each age band's workers at or above the occupation's
    minimum age (single-year shares within the band, ``age_within_band.csv``)."""
    out = np.empty((min_age.size, len(AGE_BANDS)))
    for b, band in enumerate(AGE_BANDS):
        ages = np.array(sorted(within_band[band]), dtype=int)
        shares = np.array([within_band[band][a] for a in ages])
        shares = shares / shares.sum()
        out[:, b] = ((ages[None, :] >= min_age[:, None]) * shares[None, :]).sum(axis=1)
    return out


def _rake_age_bands(
    shares: np.ndarray, weight: np.ndarray, target: np.ndarray, iterations: int = 500
) -> np.ndarray:
    """Iterative proportional fitting of the occupation × age-band shares: every row
    still sums to 1 and the OEWS-employment-weighted column totals equal the published
    CPS age distribution (structural zeros stay zero).

    Like the sex margin, OEWS and CPS weigh occupations differently: unraked, the OEWS
    mix of the CPS age shares gives 4.9 % aged 16–19 against the published 3.4 %.
    """
    a = shares.copy()
    w = weight / weight.sum()
    for _ in range(iterations):
        a = a * (target / (w @ a))[None, :]
        a = a / a.sum(axis=1, keepdims=True)
    return a


def _shares(names: tuple[str, ...], values: list[float]) -> dict[str, float]:
    v = np.array(values, dtype=float)
    return dict(zip(names, (v / v.sum()).round(4).tolist(), strict=True))


def add_demographics(
    occ: pd.DataFrame, raw_dir: Path, within_band: dict[str, dict[int, float]]
) -> tuple[pd.DataFrame, dict[str, object]]:
    codes = read_census_codes(raw_dir)
    census_title = map_soc_to_census(occ["soc"], codes)
    key = occ["soc"].map(census_title).map(_norm_title)
    unmatched = int(key.isna().sum())

    t11 = _read_cps_table(_raw(raw_dir, "cps11"), [1, 2])  # total (k), % women
    t11b = _read_cps_table(_raw(raw_dir, "cps11b"), list(range(1, 9)))  # total, 7 bands
    women = key.map(lambda k: t11.get(k, [np.nan, np.nan])[1] if isinstance(k, str) else np.nan)
    occ["pct_women"] = women
    have_w = occ["pct_women"].notna()
    filled, src = _group_fill(occ, ["pct_women"], have_w)
    occ["pct_women"], occ["sex_source"] = filled["pct_women"], src
    occ["pct_women_cps"] = occ["pct_women"]
    occ["pct_women"] = _rake_share(
        occ["pct_women"].to_numpy(float),
        occ["employment"].to_numpy(float),
        t11[_norm_title("Total, 16 years and over")][1],
    )

    ages = key.map(lambda k: t11b.get(k) if isinstance(k, str) else None)
    age_cols = [f"age_{b}" for b in AGE_BANDS]
    age_mat = np.full((len(occ), len(AGE_BANDS)), np.nan)
    for i, v in enumerate(ages):
        if v is not None and np.isfinite(v[0]) and v[0] >= CPS_MIN_BASE_THOUSANDS:
            counts = np.nan_to_num(np.array(v[1:8], dtype=float))
            if counts.sum() > 0:
                age_mat[i] = counts / counts.sum()
    occ[age_cols] = age_mat
    filled, src = _group_fill(
        occ, age_cols, pd.Series(np.isfinite(age_mat).all(1), index=occ.index)
    )
    occ[age_cols], occ["age_source"] = filled, src
    # Plausibility: nobody below the occupation's minimum age (EP Table 5.4 rule), then
    # rake the bands to the published CPS age distribution.
    min_age = read_min_ages(raw_dir, occ["soc"])
    occ["min_age"] = min_age
    emp = occ["employment"].to_numpy(float)
    unraked = occ[age_cols].to_numpy(float)
    truncated = unraked * _band_mass_from(within_band, min_age)
    age_target = np.array(t11b[_norm_title("Total employed")][1:8], dtype=float)
    age_target = age_target / age_target.sum()
    occ[age_cols] = _rake_age_bands(truncated, emp, age_target)
    age_stats = {
        "pct_aged_16_19_oews_mix_unraked": round(100 * float(emp @ unraked[:, 0] / emp.sum()), 2),
        "occupations_with_min_age_above_16": int((min_age > MIN_WORKING_AGE).sum()),
    }

    ep = pd.read_excel(_raw(raw_dir, "ep"), sheet_name="Table 5.3", header=None, dtype=str)
    ep = ep[ep[1].fillna("").str.fullmatch(r"\d\d-\d{4}")]
    ep_map = {r[1]: [_num(r[c]) for c in range(2, 9)] for _, r in ep.iterrows()}
    edu_cols = [f"edu_{e}" for e in EDUCATION]
    edu_mat = np.full((len(occ), len(EDUCATION)), np.nan)
    for i, soc in enumerate(occ["soc"]):
        v = ep_map.get(soc) or ep_map.get(soc[:6] + "0")
        if v is not None and np.isfinite(v).all() and sum(v) > 0:
            edu_mat[i] = np.array(v) / sum(v)
    occ[edu_cols] = edu_mat
    filled, src = _group_fill(
        occ, edu_cols, pd.Series(np.isfinite(edu_mat).all(1), index=occ.index)
    )
    occ[edu_cols], occ["edu_source"] = filled, src

    tot11, tot11b = (
        t11[_norm_title("Total, 16 years and over")],
        t11b[_norm_title("Total employed")],
    )
    ep_total = ep_map["00-0000"]
    published = {
        "cps_employed_thousands_2022": tot11[0],
        "pct_women": tot11[1],
        "age_band_shares": _shares(AGE_BANDS, tot11b[1:8]),
        "education_shares_25plus": _shares(EDUCATION, ep_total),
    }
    stats = {"occupations_without_census_match": unmatched, **age_stats}
    return occ, {"published": published, "stats": stats}


# --------------------------------------------------------------------------- industries


def read_industries(raw_dir: Path, socs: pd.Series) -> tuple[list[list[str]], list[list[str]]]:
    s = pd.read_excel(_raw(raw_dir, "oews_sector"), sheet_name=0, dtype=str)
    s = s[s["O_GROUP"] == "detailed"].copy()
    s["emp"] = s["TOT_EMP"].map(_num)
    sectors = s[["NAICS", "NAICS_TITLE"]].drop_duplicates().sort_values("NAICS")
    sector_rows = [
        [c, t.strip(), SECTOR_LABELS[c]]
        for c, t in zip(sectors["NAICS"], sectors["NAICS_TITLE"], strict=True)
    ]
    s = s[s["emp"] > 0]
    rows: list[list[str]] = []
    missing = []
    for soc in socs:
        cells = s[s["OCC_CODE"] == soc].sort_values("NAICS")
        if cells.empty:
            # OEWS does not survey private households (NAICS 814), so household
            # occupations (e.g. 35-2013 cooks, private household) have no sector cells;
            # 814 sits in sector 81.
            missing.append(soc)
            rows.append([soc, "81", "1"])
            continue
        share = cells["emp"].to_numpy() / cells["emp"].sum()
        rows += [
            [soc, c, _fmt(x, 5)] for c, x in zip(cells["NAICS"], share, strict=True) if x >= 5e-6
        ]
    if len(missing) > 5:
        raise BuildError(f"OEWS sector file: no sector employment for {missing[:5]}…")
    return sector_rows, rows


# --------------------------------------------------------------------------- hours and age


def read_hours(raw_dir: Path) -> tuple[list[list[str]], list[list[str]], dict[str, float]]:
    h = pd.read_csv(_raw(raw_dir, "hours"))
    w = h[(h["hours_per_week"] > 0) & (h["weeks_worked"] > 0)].copy()
    w["hours"] = w["hours_per_week"].clip(1, 80).astype(int)
    bins = [20, 25, 35, 45, 55, 65, 200]
    w["band"] = pd.cut(w["age"], bins=bins, right=False, labels=list(AGE_BANDS[1:]))
    hours_rows: list[list[str]] = []
    for band in AGE_BANDS:
        # No CPS ASEC hours below age 20 in the file: 16–19 borrow the 20–24 schedule.
        src = w[w["band"] == ("20-24" if band == "16-19" else band)]
        tab = src.groupby("hours")["weight"].sum()
        tab = tab / tab.sum()
        hours_rows += [[band, str(k), _fmt(v, 6)] for k, v in tab.items() if v >= 5e-7]
    age_rows: list[list[str]] = [[AGE_BANDS[0], str(a), _fmt(0.25, 6)] for a in range(16, 20)]
    for band in AGE_BANDS[1:]:
        tab = w[w["band"] == band].groupby("age")["weight"].sum()
        tab = tab / tab.sum()
        age_rows += [[band, str(k), _fmt(v, 6)] for k, v in tab.items()]
    published = {
        "mean_hours_workers_20plus": round(float(np.average(w["hours"], weights=w["weight"])), 3),
        "share_exactly_40": round(float(np.average(w["hours"] == 40, weights=w["weight"])), 4),
    }
    return hours_rows, age_rows, published


# --------------------------------------------------------------------------- households


def _age_group(age: np.ndarray) -> np.ndarray:
    edges = np.array([25, 35, 45, 55, 65])
    return np.searchsorted(edges, age, side="right")


def read_households(raw_dir: Path) -> list[list[str]]:
    cols = [
        "e00200p",
        "e00200s",
        "age_head",
        "age_spouse",
        "MARS",
        "XTOT",
        "nu18",
        "fips",
        "s006",
        "FLPDYR",
        "h_seq",
        "a_lineno",
        "ffpos",
    ]
    t = pd.read_csv(_raw(raw_dir, "taxcalc"), usecols=cols)
    t["row"] = np.arange(len(t))
    heads = t[(t["e00200p"] > 0) & (t["age_head"] >= 16)].assign(
        own=lambda d: d["e00200p"],
        spouse=lambda d: d["e00200s"],
        age=lambda d: d["age_head"],
        role=0,
    )
    spouses = t[(t["e00200s"] > 0) & (t["age_spouse"] >= 16)].assign(
        own=lambda d: d["e00200s"],
        spouse=lambda d: d["e00200p"],
        age=lambda d: d["age_spouse"],
        role=1,
    )
    d = pd.concat([heads, spouses], ignore_index=True)
    d["weight"] = d["s006"] / 100.0
    # Ranks within each CPS year (2012–14 levels differ); earnings levels are never kept.
    d["rank"] = 0.0
    d["spouse_rank"] = 0.0
    for _, idx in d.groupby("FLPDYR").groups.items():
        sub = d.loc[idx]
        ranks = _weighted_rank(sub["own"].to_numpy(float), sub["weight"].to_numpy(float))
        d.loc[idx, "rank"] = ranks
        # A spouse's rank on the same scale: interpolate in the year's own-earnings ranks.
        own_sorted = np.sort(sub["own"].to_numpy(float))
        rank_sorted = np.sort(ranks)
        sp = sub["spouse"].to_numpy(float)
        d.loc[idx, "spouse_rank"] = np.where(sp > 0, np.interp(sp, own_sorted, rank_sorted), 0.0)
    d["age_group"] = _age_group(d["age"].to_numpy())
    d["rank_bin"] = np.minimum((d["rank"] * DONOR_RANK_BINS).astype(int), DONOR_RANK_BINS - 1)

    rows: list[list[str]] = []
    for g in range(len(DONOR_AGE_GROUPS)):
        for b in range(DONOR_RANK_BINS):
            cell = d[(d["age_group"] == g) & (d["rank_bin"] == b)]
            if cell.empty:
                raise BuildError(f"taxcalc CPS: no donors aged {DONOR_AGE_GROUPS[g]}, rank bin {b}")
            cell = cell.sort_values(
                ["FLPDYR", "h_seq", "ffpos", "a_lineno", "role", "row"], kind="stable"
            )
            cw = np.cumsum(cell["weight"].to_numpy())
            k = min(DONORS_PER_CELL, len(cell))
            picks = np.searchsorted(cw, (np.arange(k) + 0.5) / k * cw[-1], side="left")
            chosen = cell.iloc[picks]
            # Systematic PPS: each pick carries an equal share of the cell's weight.
            share = cw[-1] / k / 1e6
            for _, r in chosen.iterrows():
                rows.append(
                    [
                        DONOR_AGE_GROUPS[g],
                        str(b),
                        _fmt(r["rank"], 4),
                        FILING_STATUS[int(r["MARS"])],
                        str(int(r["nu18"])),
                        str(max(int(r["XTOT"]), 1)),
                        _fmt(r["spouse_rank"], 4),
                        FIPS_STATE[int(r["fips"])],
                        _fmt(share, 4),
                    ]
                )
    return rows


# --------------------------------------------------------------------------- output


OCC_COLUMNS = (
    ["soc", "title", "employment"]
    + [f"wage_p{p}" for p in PERCENTILES]
    + ["wage_mean", "tail_alpha", "topcoded_knots", "annual_only", "pct_women", "pct_women_cps"]
    + [f"age_{b}" for b in AGE_BANDS]
    + [f"edu_{e}" for e in EDUCATION]
    + ["min_age", "sex_source", "age_source", "edu_source"]
)


def _occ_rows(occ: pd.DataFrame) -> list[list[str]]:
    rows = []
    for _, r in occ.iterrows():
        row = []
        for c in OCC_COLUMNS:
            v = r[c]
            if c in ("soc", "title", "sex_source", "age_source", "edu_source"):
                row.append(str(v))
            elif c in ("employment", "topcoded_knots", "min_age"):
                row.append(str(int(v)))
            elif c == "annual_only":
                row.append("1" if v else "0")
            elif c.startswith(("age_", "edu_")):
                row.append(_fmt(float(v), 5))
            elif c.startswith("pct_women"):
                row.append(_fmt(float(v), 2))
            else:
                row.append(_fmt(float(v), 4))
        rows.append(row)
    return rows


SOURCES_MD_TEMPLATE = """\
# Sources of the persona tables

Derived by `scripts/build_census_tables.py` from the raw public tables in
`../shared/data/census/` (never shipped). Figures only; each table cites its sources.

U.S. Bureau of Labor Statistics, OEWS May 2024; CPS 2022 and 2025 annual averages,
Tables 11 and 11b; Employment Projections 2022–32, Tables 5.3 and 5.4. U.S. Census
Bureau 2018 Occupation Code List. PSLmodels Tax-Calculator CPS file (CC0). OG-USA CPS ASEC hours
(CC0). SSA Trustees Report 2024.

| table | derived from | terms |
|---|---|---|
{table}

The SSA Trustees Report 2024 population file and the ACS S0101 state table are in the
raw folder for cross-checks but are not used by the current tables.
"""


_SOURCE_ROWS = (
    (
        "`occupations.csv`",
        (
            "employment and hourly wage percentiles/mean: BLS OEWS May 2024, national "
            "cross-industry (`bls_oews_national_M2024.xlsx`); annual-only occupations ÷ 2080 h; "
            "top-coded (≥ $115/h) percentiles filled from a Pareto tail calibrated to the "
            "occupation's published mean. % women: BLS CPS 2022 annual averages, Table 11 "
            "(`pct_women_cps`), raked by one common odds factor so the OEWS-weighted total equals "
            "the published 46.8 % (`pct_women`). Age bands: BLS CPS 2025 annual averages, Table "
            "11b, with the bands below the occupation's minimum age removed (`min_age`: the usual "
            "age of completing the typical education needed for entry, BLS EP 2022–32 Table 5.4 "
            "— none 16, high school 18, some college or postsecondary nondegree award 19, "
            "associate 20, bachelor's 22, master's 24, doctoral or professional 25 — plus 1 year "
            "for 'less than 5 years' and 5 for '5 years or more' of related work experience), then "
            "raked (iterative proportional fitting) so the OEWS-weighted band totals equal the "
            "published CPS age distribution (unraked, 4.9 % would be 16–19 against 3.4 %). "
            "Census titles linked to SOC codes by the U.S. Census Bureau 2018 Occupation "
            "Code List. Education (workers 25+): BLS Employment Projections 2022–32, Table 5.3 "
            "(ACS 2019/2021). Cells not published (base < 50 000) use the SOC major group's "
            "employment-weighted figures (`*_source` = `major_group`)."
        ),
        "public domain",
    ),
    (
        "`industries.csv`, `sectors.csv`",
        (
            "share of each occupation's employment by NAICS sector: BLS OEWS May 2024, national "
            "by sector (`bls_oews_natsector_M2024.xlsx`); suppressed cells dropped"
        ),
        "public domain",
    ),
    (
        "`hours_by_age.csv`, `age_within_band.csv`",
        (
            "usual weekly hours (clipped to 1–80) by age band and single-year age shares within "
            "bands, workers with positive hours and weeks, weighted: OG-USA CPS ASEC 2023 hours "
            "file (CC0). Ages 16–19 are not in the file: they use the 20–24 hours and a uniform "
            "age"
        ),
        "CC0",
    ),
    (
        "`households.csv`",
        (
            "3 600 weighted household donors (filing status, children under 18, tax-unit size, "
            "spouse earnings rank, state) chosen by systematic PPS sampling in 6 age groups × 10 "
            "earnings-rank deciles from PSLmodels Tax-Calculator's CPS tax-unit file (CPS ASEC "
            "2013–15, `taxcalc` 6.8.0); earnings as within-year ranks only, no dollar levels"
        ),
        "CC0",
    ),
    (
        "`published.json`",
        (
            "the published marginals `validate()` compares against (OEWS all-occupation wages, "
            "CPS % women and age bands, EP education shares, CPS ASEC hours), plus the raw files' "
            "sha256"
        ),
        "as above",
    ),
)
SOURCES_MD = SOURCES_MD_TEMPLATE.format(
    table="\n".join("| " + " | ".join(row) + " |" for row in _SOURCE_ROWS)
)


def build(raw_dir: Path, out_dir: Path) -> list[Path]:
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    if not raw_dir.is_dir():
        raise BuildError(f"raw census folder not found: {raw_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)

    occ, oews_published = read_oews(raw_dir)
    hours_rows, age_rows, hours_published = read_hours(raw_dir)
    within_band: dict[str, dict[int, float]] = {}
    for band, age, share in age_rows:
        within_band.setdefault(band, {})[int(age)] = float(share)
    occ, demo = add_demographics(occ, raw_dir, within_band)
    occ = occ.sort_values("soc", kind="stable").reset_index(drop=True)
    sector_rows, industry_rows = read_industries(raw_dir, occ["soc"])
    household_rows = read_households(raw_dir)

    _write_csv(out_dir / "occupations.csv", OCC_COLUMNS, _occ_rows(occ))
    _write_csv(out_dir / "industries.csv", ["soc", "naics", "share"], industry_rows)
    _write_csv(out_dir / "sectors.csv", ["naics", "title", "label"], sector_rows)
    _write_csv(out_dir / "hours_by_age.csv", ["age_band", "hours", "share"], hours_rows)
    _write_csv(out_dir / "age_within_band.csv", ["age_band", "age", "share"], age_rows)
    _write_csv(
        out_dir / "households.csv",
        [
            "age_group",
            "rank_bin",
            "rank",
            "filing_status",
            "children",
            "household_size",
            "spouse_rank",
            "state",
            "weight",
        ],
        household_rows,
    )
    published = {
        "oews_all_occupations_2024": oews_published,
        "cps": demo["published"],
        "cps_asec_hours_2023": hours_published,
        "build": {
            **demo["stats"],
            "occupations": len(occ),
            "occupations_topcoded": int((occ["topcoded_knots"] > 0).sum()),
            "household_donors": len(household_rows),
        },
        "raw_sha256": {
            name: _sha256(_raw(raw_dir, key)) for key, name in sorted(RAW_FILES.items())
        },
    }
    (out_dir / "published.json").write_text(
        json.dumps(published, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    (out_dir / "SOURCES.md").write_text(SOURCES_MD, encoding="utf-8")
    names = ["occupations.csv", "industries.csv", "sectors.csv", "hours_by_age.csv"]
    names += ["age_within_band.csv", "households.csv", "published.json", "SOURCES.md"]
    written = [out_dir / name for name in names]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=DEFAULT_RAW, help="raw census folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    try:
        files = build(args.raw, args.out)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    total = sum(p.stat().st_size for p in files)
    for p in files:
        print(f"{p.stat().st_size:>10,d}  {p}")
    print(f"{total:>10,d}  bytes in total")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
