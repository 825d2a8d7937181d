"""The joint persona sampler (seeded, vectorised).

Steps (docs/design.md §4), all draws from one explicit ``numpy.random.Generator``:

1. occupation (SOC) ∝ OEWS employment; NAICS sector given occupation;
2. sex, age band → single-year age, education given occupation (education capped for
   the young: nobody under 18 has finished high school, nobody under 22 holds a
   bachelor's, nobody under 25 a graduate degree); the age is never below the
   occupation's minimum age (``min_age``, EP Table 5.4 rule in ``data/SOURCES.md``);
3. wage: the within-occupation rank ``u = Φ(ρ_age·z_age + ρ_edu·z_edu + √(1−ρ²)·ε)``,
   ``z`` being normal scores of the persona's (randomised) age-band and education ranks
   within its occupation, so ``u`` stays uniform and the occupation's wage distribution
   is exactly its quantile function: log-linear between OEWS p10…p90, the p10–p25
   slope extrapolated below p10 (floor $7.25), Pareto above p90 with the occupation's
   α calibrated to its published mean (or one α for all, if given);
4. usual weekly hours from CPS ASEC 2023 by age band (integers 1–80);
5. household (filing status, children, tax-unit size, spouse earnings, state) by a
   weighted hot-deck donor from the taxcalc CPS file in the same age group and
   earnings-rank decile. The persona's earnings rank is the rank of its weekly
   earnings expressed as a 40-hour wage, ``s·h/40``, in the employment-weighted mix of
   all occupations' wage distributions; the donor's is its within-year annual-wage
   rank. A donor's spouse-earnings rank is mapped back to dollars through the same mix
   (at 2 080 h a year), so no 2013–15 dollar level is used. Minors (under 18) take a
   donor who files single without children (no married minors, no teen parents).

``min_per_bracket=k`` draws a *stratified* bank instead (:func:`stratified_sample`):
every income bracket holds at least ``k`` personas and each persona carries the survey
``weight`` that undoes the oversampling.

``mode="gb2"`` replaces step 3 by LLM Economist's GB2 ACS-2023 draw (independent of
occupation and demographics, as in the paper); the rest is unchanged. Its wages are
floored at the federal minimum ($7.25/h) unless ``SamplerConfig(wage_floor=False)``
(LLM Economist draws without a floor); such personas carry ``wage_floor: false``, the
only wages :class:`~llmecon.personas.Persona` accepts below $7.25. The smallest wage is
then one cent an hour (wages are rounded to cents).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from llmecon.economy.population import MIN_WAGE_USD, Population
from llmecon.economy.schedule import US_FEDERAL_2025_EDGES
from llmecon.personas._gb2 import GB2, GB2_HOURS_PER_WEEK, LLM_ECONOMIST_GB2
from llmecon.personas._tables import (
    AGE_BANDS,
    EDUCATION,
    PERCENTILES,
    STATE_NAMES,
    CensusTables,
    FloatArray,
    IntArray,
    PersonaError,
    load_tables,
)

if TYPE_CHECKING:
    import pandas as pd

    from llmecon.personas._persona import Persona

WageMode = Literal["census", "gb2"]
#: The smallest wage of an unfloored GB2 draw: one cent an hour (wages are in cents).
MIN_UNFLOORED_WAGE_USD = 0.01

_KNOT_U = np.array(PERCENTILES, dtype=float) / 100.0
_AGE_BAND_LOWER = np.array([16, 20, 25, 35, 45, 55, 65])
_DONOR_GROUP_EDGES = np.array([25, 35, 45, 55, 65])
#: Education caps by age, applied cumulatively: (max age, highest level index allowed).
_EDU_CAPS = ((17, 0), (19, 2), (21, 3), (24, 4))
_HOURS_PER_YEAR = 2080.0
#: Below this age a persona files single and has no children in its tax unit.
ADULT_AGE = 18
#: Candidates drawn (at least) to pick a stratified bank from.
STRATIFIED_POOL_SIZE = 200_000
#: Most personas ``llmecon personas sample`` writes: a stratified sample draws a pool 20
#: times its size, several GB beyond this.
MAX_BANK_SAMPLE = 500_000
#: Largest candidate pool :func:`stratified_sample` draws before giving up on a bracket.
MAX_POOL_SIZE = 3_200_000


@dataclass(frozen=True)
class SamplerConfig:
    """Settings of the joint sampler."""

    mode: WageMode = "census"
    #: Gaussian-copula loading of the wage rank on the age-band rank.
    rho_age: float = 0.3
    #: Gaussian-copula loading of the wage rank on the education rank.
    rho_education: float = 0.3
    #: One Pareto exponent above p90 for every occupation; ``None`` uses each
    #: occupation's α calibrated to its published OEWS mean wage.
    pareto_alpha: float | None = None
    gb2: GB2 = LLM_ECONOMIST_GB2
    #: Floor wages at the federal minimum ($7.25/h); ``False`` only in ``gb2`` mode.
    wage_floor: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("census", "gb2"):
            raise PersonaError(f"unknown persona mode {self.mode!r}: use 'census' or 'gb2'")
        if not self.wage_floor and self.mode != "gb2":
            raise PersonaError(
                "wages without the $7.25 floor exist only in gb2 mode (the census quantile "
                "functions are extrapolated below p10 and need the floor)"
            )
        if (
            self.rho_age < 0
            or self.rho_education < 0
            or self.rho_age**2 + self.rho_education**2 >= 1
        ):
            raise PersonaError("copula loadings need ρ_age, ρ_edu ≥ 0 and ρ_age² + ρ_edu² < 1")
        if self.pareto_alpha is not None and self.pareto_alpha <= 1:
            raise PersonaError("the Pareto tail exponent must exceed 1 (finite mean)")


# --------------------------------------------------------------------------- wages

#: The Pareto tail is cut at $10 000 an hour ($20.8 M a year at 40 hours): with a thin
#: tail (α ≈ 1.6) a pool of millions of draws, which a large stratified sample builds,
#: would otherwise reach wages of $100 000 an hour and more, beyond any wage job.
MAX_SAMPLED_WAGE_USD = 10_000.0


def occupation_quantile(
    tables: CensusTables, occ: IntArray, u: FloatArray, pareto_alpha: float | None = None
) -> FloatArray:
    """Hourly wage (USD/h) at within-occupation rank ``u`` for occupations ``occ``."""
    logk = np.log(tables.wage_knots[occ])
    j = np.clip(np.searchsorted(_KNOT_U, u, side="right") - 1, 0, len(_KNOT_U) - 2)
    t = (u - _KNOT_U[j]) / (_KNOT_U[j + 1] - _KNOT_U[j])  # < 0 below p10: extrapolation
    rows = np.arange(occ.size)
    log_w = logk[rows, j] + t * (logk[rows, j + 1] - logk[rows, j])
    alpha = tables.tail_alpha[occ] if pareto_alpha is None else np.full(occ.size, pareto_alpha)
    top = u > _KNOT_U[-1]
    tail_u = np.minimum(u[top], 1.0 - 1e-12)
    log_w[top] = logk[top, -1] + np.log(0.1 / (1.0 - tail_u)) / alpha[top]
    return np.clip(np.exp(log_w), MIN_WAGE_USD, MAX_SAMPLED_WAGE_USD)


@dataclass(frozen=True)
class _WageMix:
    """The employment-weighted mix of occupation wage CDFs on a log-wage grid."""

    log_wage: FloatArray
    cdf: FloatArray

    def rank(self, wage: FloatArray) -> FloatArray:
        return np.asarray(np.interp(np.log(wage), self.log_wage, self.cdf), dtype=float)

    def quantile(self, rank: FloatArray) -> FloatArray:
        return np.exp(np.interp(rank, self.cdf, self.log_wage))


_MIX_CACHE: dict[tuple[int, float | None], _WageMix] = {}


def _wage_mix(tables: CensusTables, pareto_alpha: float | None) -> _WageMix:
    key = (id(tables), pareto_alpha)
    if key in _MIX_CACHE:
        return _MIX_CACHE[key]
    grid = np.linspace(np.log(MIN_WAGE_USD), np.log(5000.0), 700)
    logk = np.log(tables.wage_knots)
    slope0 = (logk[:, 1] - logk[:, 0]) / (_KNOT_U[1] - _KNOT_U[0])
    log_at0 = logk[:, 0] - slope0 * _KNOT_U[0]
    alpha = tables.tail_alpha if pareto_alpha is None else np.full(len(logk), pareto_alpha)
    p = tables.employment / tables.employment.sum()
    cdf = np.zeros_like(grid)
    xs = np.concatenate([log_at0[:, None], logk], axis=1)
    us = np.concatenate([[0.0], _KNOT_U])
    for k in range(len(logk)):
        body = np.interp(grid, xs[k], us)
        tail = 1.0 - 0.1 * np.exp(-alpha[k] * np.maximum(grid - logk[k, -1], 0.0))
        cdf += p[k] * np.where(grid > logk[k, -1], tail, body)
    cdf = np.maximum.accumulate(np.clip(cdf, 0.0, 1.0))
    mix = _WageMix(grid, cdf)
    _MIX_CACHE[key] = mix
    return mix


# --------------------------------------------------------------------------- sampling


def _categorical(cum: FloatArray, u: FloatArray) -> IntArray:
    """Row-wise inverse CDF: ``cum`` is (n, k) cumulative shares, ``u`` is (n,)."""
    idx = (cum < u[:, None]).sum(axis=1)
    return np.minimum(idx, cum.shape[1] - 1).astype(np.int64)


def _randomised_rank(cum: FloatArray, idx: IntArray, v: FloatArray) -> FloatArray:
    """A uniform rank within the categorical distribution (ties broken by ``v``)."""
    rows = np.arange(idx.size)
    upper = cum[rows, idx]
    lower = np.where(idx > 0, cum[rows, np.maximum(idx - 1, 0)], 0.0)
    r = lower + (upper - lower) * v
    return np.clip(r, 1e-9, 1.0 - 1e-9)


def _by_band(cum_by_band: FloatArray, band: IntArray, u: FloatArray) -> IntArray:
    out = np.empty(band.size, dtype=np.int64)
    for b in range(cum_by_band.shape[0]):
        sel = band == b
        if sel.any():
            out[sel] = np.searchsorted(cum_by_band[b], u[sel], side="left")
    return out


_MINOR_DONORS: dict[int, tuple[IntArray, FloatArray]] = {}


def _minor_donors(tables: CensusTables) -> tuple[IntArray, FloatArray]:
    """Donors of the youngest age group who file single with no children: their indices
    into ``tables.donors`` and a ``cell + within-cell cumulative weight`` search key
    (cells are the 10 earnings-rank bins), as ``tables.donor_cell_key`` for all donors."""
    key = id(tables)
    if key in _MINOR_DONORS:
        return _MINOR_DONORS[key]
    d = tables.donors
    ok = (
        (d["cell"].to_numpy(int) < 10)
        & (d["filing_status"].to_numpy(str) == "single")
        & (d["children"].to_numpy(int) == 0)
    )
    idx = np.flatnonzero(ok).astype(np.int64)
    cell = d["cell"].to_numpy(int)[idx]
    if np.unique(cell).size != 10:
        raise PersonaError("household table has no single, childless young donor in some cell")
    w = d["weight"].to_numpy(float)[idx]
    tot = np.bincount(cell, weights=w, minlength=10)
    within = np.cumsum(w) - np.concatenate([[0.0], np.cumsum(tot)])[cell]
    found = (idx, cell + within / tot[cell])
    _MINOR_DONORS[key] = found
    return found


@dataclass(frozen=True)
class PersonaSample:
    """A columnar sample of personas (one row per persona, no text).

    ``frame`` holds the :class:`~llmecon.personas.Persona` fields as columns (string
    fields as pandas categoricals); use :meth:`to_personas` for the pydantic models.
    """

    frame: pd.DataFrame
    config: SamplerConfig

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def hourly_wage_usd(self) -> FloatArray:
        return self.frame["hourly_wage_usd"].to_numpy(dtype=float)

    @property
    def usual_weekly_hours(self) -> FloatArray:
        return self.frame["usual_weekly_hours"].to_numpy(dtype=float)

    def to_personas(self) -> list[Persona]:
        from llmecon.personas._persona import Persona

        return [Persona.model_validate(r) for r in self.records()]

    def records(self) -> Iterator[dict[str, object]]:
        cols = list(self.frame.columns)
        for row in self.frame.itertuples(index=False, name=None):
            yield {
                c: (v.item() if isinstance(v, np.generic) else v)
                for c, v in zip(cols, row, strict=True)
            }

    @property
    def weight(self) -> FloatArray:
        """Survey weights (relative, mean 1 over a generated bank; 1 when unweighted)."""
        if "weight" not in self.frame:
            return np.ones(len(self.frame))
        return self.frame["weight"].to_numpy(dtype=float)

    def to_population(self, source: str = "personas") -> Population:
        return Population(
            self.hourly_wage_usd,
            self.usual_weekly_hours,
            tuple(self.frame["id"].tolist()),
            source=source,
            weight=self.weight,
        )


def sample_personas(
    n: int,
    rng: np.random.Generator,
    *,
    mode: WageMode = "census",
    config: SamplerConfig | None = None,
    tables: CensusTables | None = None,
    id_prefix: str = "persona-",
    min_per_bracket: int | None = None,
    brackets: tuple[float, ...] = US_FEDERAL_2025_EDGES,
) -> PersonaSample:
    """Draw ``n`` personas jointly from the shipped Census/BLS tables.

    With ``min_per_bracket=None`` (default) a simple random sample: every ``weight`` is
    1. With ``min_per_bracket=k`` a stratified sample (:func:`stratified_sample`).

    Args:
        n: number of personas (≥ 1).
        rng: the seeded generator every draw comes from.
        mode: ``"census"`` (occupation quantile functions with the age/education
            copula) or ``"gb2"`` (LLM Economist's GB2 ACS-2023 wages).
        config: further sampler settings (its ``mode`` is overridden by ``mode``).
        tables: tables to sample from (default: the shipped ones).
        id_prefix: persona ids are ``f"{id_prefix}{i:06d}"``.
        min_per_bracket: stratify by income bracket with at least this many personas
            per bracket (see :func:`stratified_sample`).
        brackets: bracket lower edges (annual USD) of the strata.
    """
    if n < 1:
        raise PersonaError("need at least one persona")
    if min_per_bracket is not None:
        return stratified_sample(
            n,
            rng,
            min_per_bracket=min_per_bracket,
            brackets=brackets,
            mode=mode,
            config=config,
            tables=tables,
            id_prefix=id_prefix,
        )
    return _simple_sample(n, rng, mode=mode, config=config, tables=tables, id_prefix=id_prefix)


def _simple_sample(
    n: int,
    rng: np.random.Generator,
    *,
    mode: WageMode,
    config: SamplerConfig | None,
    tables: CensusTables | None,
    id_prefix: str,
) -> PersonaSample:
    base = config or SamplerConfig()
    cfg = SamplerConfig(
        mode, base.rho_age, base.rho_education, base.pareto_alpha, base.gb2, base.wage_floor
    )
    # Imported here: ~0.6 s together, which a run that loads a persona bank skips.
    import pandas as pd
    from scipy import special

    t = tables if tables is not None else load_tables()

    p_occ = np.cumsum(t.employment / t.employment.sum())
    p_occ[-1] = 1.0
    occ = np.minimum(np.searchsorted(p_occ, rng.random(n), side="right"), len(p_occ) - 1)
    sector = _categorical(t.industry_cum[occ], rng.random(n))
    female = rng.random(n) < t.pct_women[occ] / 100.0

    age_cum = np.cumsum(t.age_shares[occ], axis=1)
    band = _categorical(age_cum, rng.random(n))
    r_age = _randomised_rank(age_cum, band, rng.random(n))
    # Single-year age within the band, never below the occupation's minimum age: the
    # uniform draw is squeezed above the band's cumulative share below that age.
    min_age = t.min_age[occ]
    below = t.age_cum[band, np.maximum(min_age - 1, 0)]
    below = np.where(min_age > _AGE_BAND_LOWER[band], below, 0.0)
    u_age = rng.random(n)
    age = _by_band(t.age_cum, band, below + (1.0 - below) * u_age)
    age = np.clip(np.maximum(age, min_age), _AGE_BAND_LOWER[band], 85)

    edu_cum = np.cumsum(t.edu_shares[occ], axis=1)
    edu = _categorical(edu_cum, rng.random(n))
    r_edu = _randomised_rank(edu_cum, edu, rng.random(n))
    for max_age, top_level in _EDU_CAPS:
        young = age <= max_age
        edu[young] = np.minimum(edu[young], top_level)

    eps = rng.standard_normal(n)
    hours = _by_band(t.hours_cum, band, rng.random(n)) + 1
    mix = _wage_mix(t, cfg.pareto_alpha)
    if cfg.mode == "census":
        rho_e = np.sqrt(1.0 - cfg.rho_age**2 - cfg.rho_education**2)
        z = cfg.rho_age * special.ndtri(r_age) + cfg.rho_education * special.ndtri(r_edu)
        u = special.ndtr(z + rho_e * eps)
        wage = occupation_quantile(t, occ, u, cfg.pareto_alpha)
        rank = mix.rank(wage * hours / 40.0)
    else:
        income = cfg.gb2.sample(n, rng)
        floor = MIN_WAGE_USD if cfg.wage_floor else MIN_UNFLOORED_WAGE_USD
        wage = np.maximum(income / (52.0 * GB2_HOURS_PER_WEEK), floor)
        rank = 1.0 - cfg.gb2.sf(wage * hours / 40.0 * 52.0 * GB2_HOURS_PER_WEEK)
    wage = np.round(wage, 2)

    group = np.searchsorted(_DONOR_GROUP_EDGES, age, side="right")
    cell = group * 10 + np.minimum((rank * 10).astype(np.int64), 9)
    query = cell + rng.random(n) * (1.0 - 1e-12)
    donor = np.minimum(np.searchsorted(t.donor_cell_key, query, side="left"), len(t.donors) - 1)
    minor = age < ADULT_AGE
    if minor.any():  # no married minors, no teen parents: single, childless donors only
        idx, key = _minor_donors(t)
        pos = np.searchsorted(key, query[minor] - group[minor] * 10, side="left")
        donor[minor] = idx[np.minimum(pos, idx.size - 1)]
    d = t.donors
    spouse_rank = d["spouse_rank"].to_numpy(float)[donor]
    if cfg.mode == "census":
        spouse = np.where(spouse_rank > 0, mix.quantile(spouse_rank) * _HOURS_PER_YEAR, 0.0)
    else:
        x = special.betaincinv(cfg.gb2.p, cfg.gb2.q, np.clip(spouse_rank, 1e-9, 1 - 1e-9))
        gb2_income = cfg.gb2.scale_usd * (x / (1.0 - x)) ** (1.0 / cfg.gb2.a)
        spouse = np.where(spouse_rank > 0, gb2_income, 0.0)
    # Text fields as categoricals over the donor table's values: the same categories in
    # every draw (so stratified pools concatenate), and no million Python strings.
    filing_cat = pd.Categorical(d["filing_status"].to_numpy(str))
    filing = pd.Categorical.from_codes(filing_cat.codes[donor], filing_cat.categories)
    children = d["children"].to_numpy(np.int64)[donor]
    married = (filing_cat.codes == filing_cat.categories.get_loc("married_joint"))[donor]
    household = np.maximum(
        d["household_size"].to_numpy(np.int64)[donor], 1 + married.astype(np.int64) + children
    )
    state_cat = pd.Categorical(d["state"].to_numpy(str))
    state_code = pd.Categorical.from_codes(state_cat.codes[donor], state_cat.categories)
    state_name = pd.Categorical.from_codes(
        state_cat.codes[donor], pd.Index(state_cat.categories).map(STATE_NAMES)
    )

    codes = np.array(t.soc)
    sectors = list(t.sector_labels)
    frame = pd.DataFrame(
        {
            "id": [f"{id_prefix}{i:06d}" for i in range(n)],
            "occupation_code": pd.Categorical.from_codes(occ, categories=pd.Index(codes).unique()),
            "occupation_title": pd.Categorical(np.array(t.title, dtype=object)[occ]),
            "industry": pd.Categorical.from_codes(sector, categories=pd.Index(sectors)),
            "sex": pd.Categorical.from_codes(
                female.astype(np.int8), categories=pd.Index(["male", "female"])
            ),
            "age": age.astype(np.int64),
            "age_band": pd.Categorical.from_codes(band, categories=pd.Index(list(AGE_BANDS))),
            "education": pd.Categorical.from_codes(edu, categories=pd.Index(list(EDUCATION))),
            "hourly_wage_usd": wage,
            "usual_weekly_hours": hours.astype(np.int64),
            "annual_earnings_usd": np.round(52.0 * wage * hours, 0),
            "filing_status": filing,
            "children": children,
            "household_size": household,
            "spouse_earnings_usd": np.round(spouse, -2),
            "state": state_name,
            "state_code": state_code,
            "wage_mode": cfg.mode,
            "weight": np.ones(n),
            "wage_floor": cfg.wage_floor,
        }
    )
    return PersonaSample(frame, cfg)


def bracket_of(annual_earnings_usd: FloatArray, brackets: tuple[float, ...]) -> IntArray:
    """Index of the income bracket (lower edges ``brackets``) of each annual income."""
    edges = np.asarray(brackets, dtype=float)
    return np.clip(np.searchsorted(edges, annual_earnings_usd, side="right") - 1, 0, edges.size - 1)


def allocate(n: int, shares: FloatArray, minimum: int) -> IntArray:
    """Stratum sizes summing to ``n``: proportional to ``shares`` (largest remainders),
    but at least ``minimum`` in every stratum with a positive share."""
    shares = np.asarray(shares, dtype=float)
    live = shares > 0
    k = min(minimum, n // max(int(live.sum()), 1))
    fixed = np.zeros(shares.size, dtype=bool)
    while True:
        free = live & ~fixed
        left = n - k * int(fixed.sum())
        quota = np.zeros(shares.size)
        quota[free] = left * shares[free] / shares[free].sum()
        newly = free & (quota < k)
        if not newly.any():
            break
        fixed |= newly
    size = np.where(fixed, k, np.floor(quota)).astype(np.int64)
    rest = n - int(size.sum())
    order = np.argsort(-(quota - np.floor(quota)) * (live & ~fixed), kind="stable")
    size[order[:rest]] += 1
    return size


def _interleave(sizes: IntArray) -> IntArray:
    """A stratum per position such that every prefix holds each stratum in (nearly) its
    share of the whole: position ``t`` goes to the stratum furthest behind its quota."""
    n = int(sizes.sum())
    taken = np.zeros(sizes.size)
    out = np.empty(n, dtype=np.int64)
    for t in range(n):
        h = int(np.argmax(sizes * (t + 1) / n - taken))
        out[t] = h
        taken[h] += 1
    return out


def stratified_sample(
    n: int,
    rng: np.random.Generator,
    *,
    min_per_bracket: int = 5,
    brackets: tuple[float, ...] = US_FEDERAL_2025_EDGES,
    mode: WageMode = "census",
    config: SamplerConfig | None = None,
    tables: CensusTables | None = None,
    id_prefix: str = "persona-",
    pool_size: int = STRATIFIED_POOL_SIZE,
) -> PersonaSample:
    """A bank stratified by income bracket, with survey weights that undo the strata.

    1. Draw a candidate pool of ``max(pool_size, 20·n)`` personas
       (:func:`sample_personas`), doubling it (up to :data:`MAX_POOL_SIZE`) while a
       bracket holds fewer than ``min_per_bracket`` candidates. A candidate's stratum is
       the bracket of its annual earnings at its usual hours, ``52·s·h⁰`` (its income
       under the status quo).
    2. Allocate ``n_h`` personas to bracket ``h``: proportional to its pool share
       ``P_h``, but at least ``k = min(min_per_bracket, n // brackets)`` each.
    3. Within a bracket, pick the candidates by systematic sampling on their earnings
       (sorted; one random start), so each bracket's earnings distribution is spread
       evenly, not only its count.
    4. ``weight = P_h · n / n_h``: the number of people a persona stands for, relative to
       the average persona (the weights sum to ``n``); weighted aggregates estimate the
       population's, unweighted ones would over-represent the small brackets. A bank
       smaller than the number of brackets leaves some empty; its weights are divided by
       the share of the brackets it holds, so they still have mean 1.
    5. Order: every prefix of the bank holds each bracket in (nearly) its bank share, so
       the first ``m`` personas with their weights are a stratified bank too (runs use a
       prefix); within a bracket the order is random.
    """
    if n < 1:
        raise PersonaError("need at least one persona")
    if min_per_bracket < 0:
        raise PersonaError("min_per_bracket must be ≥ 0")
    n_strata = len(brackets)
    pool_n = max(pool_size, 20 * n)
    frames = [_simple_sample(pool_n, rng, mode=mode, config=config, tables=tables, id_prefix="")]
    k = min(min_per_bracket, n // n_strata)
    import pandas as pd

    while True:
        pool = (
            pd.concat([f.frame for f in frames], ignore_index=True)
            if len(frames) > 1
            else frames[0].frame
        )
        stratum = bracket_of(pool["annual_earnings_usd"].to_numpy(float), brackets)
        counts = np.bincount(stratum, minlength=n_strata)
        if np.all(counts >= k) or len(pool) >= MAX_POOL_SIZE:
            break
        more = _simple_sample(len(pool), rng, mode=mode, config=config, tables=tables, id_prefix="")
        frames.append(more)
    if np.any(counts < k):
        empty = [f"{brackets[h]:,.0f}" for h in np.flatnonzero(counts < k)]
        raise PersonaError(
            f"fewer than {k} of {len(pool):,} candidates earn in the bracket(s) from "
            f"{', '.join(empty)} USD: lower min_per_bracket or change the brackets"
        )
    share = counts / counts.sum()
    sizes = allocate(n, share, k)
    earnings = pool["annual_earnings_usd"].to_numpy(float)
    picked: list[IntArray] = []
    for h in range(n_strata):
        if sizes[h] == 0:
            picked.append(np.zeros(0, dtype=np.int64))
            continue
        members = np.flatnonzero(stratum == h)
        members = members[np.argsort(earnings[members], kind="stable")]
        pos = np.floor((np.arange(sizes[h]) + rng.random()) * members.size / sizes[h])
        chosen = members[pos.astype(np.int64)]
        picked.append(chosen[rng.permutation(chosen.size)])
    slots = _interleave(sizes)
    index = np.empty(n, dtype=np.int64)
    for h in range(n_strata):
        index[slots == h] = picked[h]
    frame = pool.iloc[index].reset_index(drop=True)
    weight = share[slots] * n / sizes[slots]
    covered = share[sizes > 0].sum()
    if np.any((share > 0) & (sizes == 0)):  # under 7 personas: some bracket holds none
        weight = weight / covered  # the weights stand for the brackets held, mean 1
    frame["weight"] = np.array([float(f"{w:.10g}") for w in weight])
    frame["id"] = [f"{id_prefix}{i:06d}" for i in range(n)]
    return PersonaSample(frame, frames[0].config)


def gb2_tail_share(threshold_usd: float, gb2: GB2 = LLM_ECONOMIST_GB2) -> float:
    """Share of GB2 incomes above ``threshold_usd``."""
    return float(gb2.sf(threshold_usd))


__all__ = [
    "STATE_NAMES",
    "PersonaSample",
    "SamplerConfig",
    "WageMode",
    "allocate",
    "bracket_of",
    "sample_personas",
    "stratified_sample",
]
