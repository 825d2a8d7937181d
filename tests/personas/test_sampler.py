"""The joint sampler: published targets, determinism, joint structure, valid fields."""

from __future__ import annotations

import numpy as np
import pytest

from llmecon.economy import Population
from llmecon.personas import (
    LLM_ECONOMIST_GB2,
    PersonaError,
    PersonaSample,
    SamplerConfig,
    load_tables,
    sample_personas,
    validate,
)
from llmecon.personas._sampler import occupation_quantile


def test_large_sample_meets_every_published_target(large_sample: PersonaSample) -> None:
    report = validate(large_sample)
    assert report.ok, str(report)
    # The targeted rows are all there (and none is silently skipped).
    targeted = [r.statistic for r in report.rows if r.within_target is not None]
    assert len(targeted) == 6 + 1 + 7 + 7 + 1  # + implausible records


@pytest.mark.parametrize("p", [10, 25, 50, 75, 90])
def test_wage_percentiles_within_5_percent(large_sample: PersonaSample, p: int) -> None:
    published = load_tables().published["oews_all_occupations_2024"][f"hourly_p{p}"]
    sample = np.percentile(large_sample.hourly_wage_usd, p)
    assert abs(sample / published - 1) < 0.05


def test_mean_wage_and_share_of_women(large_sample: PersonaSample) -> None:
    pub = load_tables().published
    mean = large_sample.hourly_wage_usd.mean()
    assert abs(mean / pub["oews_all_occupations_2024"]["hourly_mean"] - 1) < 0.05
    women = 100 * (large_sample.frame["sex"] == "female").mean()
    assert abs(women - pub["cps"]["pct_women"]) < 3


def test_same_seed_same_personas_other_seed_differs() -> None:
    a = sample_personas(2000, np.random.default_rng(7)).frame
    b = sample_personas(2000, np.random.default_rng(7)).frame
    c = sample_personas(2000, np.random.default_rng(8)).frame
    assert a.equals(b)
    assert not a["hourly_wage_usd"].equals(c["hourly_wage_usd"])


def test_bounds_on_wages_hours_and_ages(large_sample: PersonaSample) -> None:
    f = large_sample.frame
    assert f["hourly_wage_usd"].min() >= 7.25
    hours = f["usual_weekly_hours"].to_numpy()
    assert hours.dtype.kind == "i" and hours.min() >= 1 and hours.max() <= 80
    assert f["age"].between(16, 85).all()
    lower = f["age_band"].astype(str).str.extract(r"^(\d+)")[0].astype(int)
    assert (f["age"] >= lower).all()


def test_wage_rises_with_education_and_age(large_sample: PersonaSample) -> None:
    f = large_sample.frame
    med = f.groupby("education", observed=True)["hourly_wage_usd"].median()
    assert med["doctoral_professional"] > med["bachelor"] > med["high_school"]
    assert med["bachelor"] > 1.3 * med["high_school"]
    # Within one occupation the copula links wage rank to education rank.
    nurses = f[f["occupation_code"] == "29-1141"]
    edu_rank = nurses["education"].cat.codes.to_numpy()
    corr = np.corrcoef(edu_rank, np.log(nurses["hourly_wage_usd"].to_numpy()))[0, 1]
    assert corr > 0.1
    by_band = f.groupby("age_band", observed=True)["hourly_wage_usd"].median()
    assert by_band["45-54"] > by_band["20-24"]


def test_copula_off_removes_the_link() -> None:
    cfg = SamplerConfig(rho_age=0.0, rho_education=0.0)
    f = sample_personas(60_000, np.random.default_rng(3), config=cfg).frame
    nurses = f[f["occupation_code"] == "29-1141"]
    corr = np.corrcoef(nurses["education"].cat.codes, np.log(nurses["hourly_wage_usd"]))[0, 1]
    assert abs(corr) < 0.08


def test_young_workers_have_capped_education(large_sample: PersonaSample) -> None:
    f = large_sample.frame
    assert (f.loc[f["age"] <= 17, "education"] == "less_than_high_school").all()
    grad = f["education"].isin(["master", "doctoral_professional"])
    assert not (grad & (f["age"] < 25)).any()


def test_household_fields_are_valid(large_sample: PersonaSample) -> None:
    f = large_sample.frame
    allowed = {"single", "married_joint", "married_separate", "head_of_household", "widow"}
    assert set(f["filing_status"].unique()) <= allowed
    assert {"single", "married_joint", "head_of_household"} <= set(f["filing_status"].unique())
    assert (f["children"] >= 0).all()
    married = (f["filing_status"] == "married_joint").astype(int)
    assert (f["household_size"] >= 1 + f["children"] + married).all()
    assert (f["spouse_earnings_usd"] >= 0).all()
    assert (f.loc[f["filing_status"] == "single", "spouse_earnings_usd"] == 0).all()
    assert f["state_code"].nunique() == 51 and f["state"].notna().all()
    # Matched on earnings rank: high earners have higher-earning spouses on average.
    joint = f[f["filing_status"] == "married_joint"]
    top = joint["annual_earnings_usd"] > joint["annual_earnings_usd"].quantile(0.9)
    bottom = joint["annual_earnings_usd"] < joint["annual_earnings_usd"].quantile(0.1)
    assert (
        joint.loc[top, "spouse_earnings_usd"].mean()
        > joint.loc[bottom, "spouse_earnings_usd"].mean()
    )


def test_industry_follows_the_occupation(large_sample: PersonaSample) -> None:
    f = large_sample.frame
    teachers = f[f["occupation_code"] == "25-2021"]  # elementary school teachers
    assert teachers["industry"].value_counts(normalize=True).iloc[0] > 0.8
    assert teachers["industry"].value_counts().index[0] == "educational services"


def test_quantile_function_hits_the_published_knots() -> None:
    t = load_tables()
    k = t.soc.index("29-1141")
    occ = np.full(5, k)
    u = np.array([0.10, 0.25, 0.50, 0.75, 0.90])
    np.testing.assert_allclose(occupation_quantile(t, occ, u), t.wage_knots[k], rtol=1e-9)
    # Pareto above p90: P(W > w) = 0.1 (p90 / w)^α.
    alpha = t.tail_alpha[k]
    w = occupation_quantile(t, np.array([k]), np.array([0.99]))[0]
    assert w == pytest.approx(t.wage_knots[k, -1] * 10 ** (1 / alpha))


def test_gb2_mode_reproduces_the_paper_distribution() -> None:
    s = sample_personas(100_000, np.random.default_rng(5), mode="gb2")
    income = s.hourly_wage_usd * 52 * 40
    for thr in (50_000, 250_000):
        assert (income > thr).mean() == pytest.approx(LLM_ECONOMIST_GB2.sf(thr), abs=0.01)
    assert (s.frame["wage_mode"] == "gb2").all()
    assert not validate(s).ok  # GB2 wages do not match the OEWS percentiles


def test_population_interface() -> None:
    s = sample_personas(300, np.random.default_rng(1))
    pop = s.to_population(source="test")
    assert isinstance(pop, Population) and pop.size == 300 and pop.source == "test"
    np.testing.assert_array_equal(pop.usual_weekly_hours, s.frame["usual_weekly_hours"])
    assert pop.ids[0] == s.frame["id"].iloc[0]


def test_bad_arguments_raise() -> None:
    with pytest.raises(PersonaError):
        sample_personas(0, np.random.default_rng(0))
    with pytest.raises(PersonaError, match="mode"):
        sample_personas(5, np.random.default_rng(0), mode="lognormal")  # type: ignore[arg-type]
    with pytest.raises(PersonaError, match="Pareto"):
        SamplerConfig(pareto_alpha=0.9)


def test_the_pareto_tail_is_cut_at_ten_thousand_dollars_an_hour() -> None:
    import numpy as np

    from llmecon.personas._sampler import MAX_SAMPLED_WAGE_USD, occupation_quantile
    from llmecon.personas._tables import load_tables

    tables = load_tables()
    occ = np.arange(len(tables.wage_knots))
    top = occupation_quantile(tables, occ, np.full(occ.size, 1.0 - 1e-12), pareto_alpha=1.6)
    assert top.max() == MAX_SAMPLED_WAGE_USD  # uncut: far above $100 000 an hour
    assert (top <= MAX_SAMPLED_WAGE_USD).all()
