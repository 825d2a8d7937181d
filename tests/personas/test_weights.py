"""Survey weights: a stratified bank's weighted aggregates are the population's, and
weights of 1 change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmecon.economy import Economy, Population, TaxSchedule, UtilityConfig, gini
from llmecon.economy.equilibrium import solve_rebate_equilibrium
from llmecon.economy.schedule import US_FEDERAL_2025_EDGES
from llmecon.economy.welfare import (
    equality,
    marginal_welfare_weights,
    output_welfare_weight,
    social_welfare,
    swf_names,
)
from llmecon.personas import (
    PersonaSample,
    default_bank_path,
    load_bank,
    population_from_personas,
    sample_personas,
    validate,
)
from llmecon.personas._sampler import STRATIFIED_POOL_SIZE, allocate, bracket_of
from llmecon.planners.saez import SaezWeights, saez_bracket_rates

#: How many standard errors a weighted estimate may stray from the reference.
Z = 3.0
EDGES = US_FEDERAL_2025_EDGES
BUILT_IN = ("utilitarian", "inverse_income", "rawlsian", "equality_times_productivity")


def _aggregates(frame: object, weight: np.ndarray) -> dict[str, float]:
    """Mean wage, mean hours, Gini of annual earnings and the share in each bracket."""
    f = frame  # a PersonaSample frame
    wage = f["hourly_wage_usd"].to_numpy(float)  # type: ignore[index]
    hours = f["usual_weekly_hours"].to_numpy(float)  # type: ignore[index]
    income = f["annual_earnings_usd"].to_numpy(float)  # type: ignore[index]
    w = weight / weight.sum()
    out = {
        "mean wage": float(w @ wage),
        "mean hours": float(w @ hours),
        "gini income": float(gini(income, weight)),
    }
    b = bracket_of(income, EDGES)
    for h in range(len(EDGES)):
        out[f"share bracket {h}"] = float(w @ (b == h))
    return out


def _bootstrap_se(bank: PersonaSample, reps: int = 300) -> dict[str, float]:
    """Standard errors of the weighted aggregates: a stratified bootstrap (each bracket
    resampled with replacement at its own size; conservative, since the sampler picks
    systematically within brackets)."""
    f = bank.frame
    w = bank.weight
    b = bracket_of(f["annual_earnings_usd"].to_numpy(float), EDGES)
    rng = np.random.default_rng(12345)
    draws: list[dict[str, float]] = []
    members = [np.flatnonzero(b == h) for h in range(len(EDGES))]
    for _ in range(reps):
        idx = np.concatenate([rng.choice(m, m.size) for m in members if m.size])
        draws.append(_aggregates(f.iloc[idx], w[idx]))
    se = {k: float(np.std([d[k] for d in draws], ddof=1)) for k in draws[0]}
    # A bracket's weighted share is its share of the candidate pool the bank was picked
    # from (STRATIFIED_POOL_SIZE draws, or 20 n): that pool's sampling error.
    pool = max(STRATIFIED_POOL_SIZE, 20 * len(f))
    for h in range(len(EDGES)):
        p = float(w @ (b == h) / w.sum())
        se[f"share bracket {h}"] = float(np.sqrt(p * (1 - p) / pool))
    return se


def _reference_se(large: PersonaSample) -> dict[str, float]:
    """Standard errors of the unweighted aggregates of the reference sample."""
    f = large.frame
    n = len(f)
    income = f["annual_earnings_usd"].to_numpy(float)
    b = bracket_of(income, EDGES)
    out = {
        "mean wage": float(f["hourly_wage_usd"].std() / np.sqrt(n)),
        "mean hours": float(f["usual_weekly_hours"].std() / np.sqrt(n)),
        "gini income": 0.0,  # set below from batches
    }
    batches = np.array_split(np.arange(n), 20)
    g = [float(gini(income[i])) for i in batches]
    out["gini income"] = float(np.std(g, ddof=1) / np.sqrt(len(batches)))
    for h in range(len(EDGES)):
        p = float(np.mean(b == h))
        out[f"share bracket {h}"] = float(np.sqrt(p * (1 - p) / n))
    return out


def _z_scores(bank: PersonaSample, large: PersonaSample) -> dict[str, float]:
    est = _aggregates(bank.frame, bank.weight)
    ref = _aggregates(large.frame, np.ones(len(large)))
    se_bank, se_ref = _bootstrap_se(bank), _reference_se(large)
    z = {}
    for k in est:
        se = np.hypot(se_bank[k], se_ref[k])
        z[k] = abs(est[k] - ref[k]) / se if se > 0 else 0.0
    return z


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stratified_200_bank_matches_a_200000_sample(
    large_sample: PersonaSample, seed: int
) -> None:
    bank = sample_personas(200, np.random.default_rng(seed), min_per_bracket=5)
    counts = np.bincount(
        bracket_of(bank.frame["annual_earnings_usd"].to_numpy(float), EDGES), minlength=7
    )
    assert counts.min() >= 5  # every bracket, the top one (> $626,350) included
    assert bank.weight.sum() == pytest.approx(200.0, rel=1e-8)
    z = _z_scores(bank, large_sample)
    assert max(z.values()) <= Z, z
    # Unweighted, the oversampled top brackets would be far off.
    top = _aggregates(bank.frame, np.ones(200))["share bracket 6"]
    ref = _aggregates(large_sample.frame, np.ones(len(large_sample)))["share bracket 6"]
    assert top > 10 * ref


def test_a_100_bank_is_as_faithful_as_a_10000_bank(large_sample: PersonaSample) -> None:
    for seed in (3, 4):
        small = sample_personas(100, np.random.default_rng(seed), min_per_bracket=5)
        big = sample_personas(10_000, np.random.default_rng(seed), min_per_bracket=5)
        z_small, z_big = _z_scores(small, large_sample), _z_scores(big, large_sample)
        assert max(z_small.values()) <= Z, z_small
        assert max(z_big.values()) <= Z, z_big
        assert validate(small).ok and validate(big).ok


def test_stratified_beats_simple_random_at_100() -> None:
    # Root mean squared error of the mean wage over seeds: the stratified, systematic
    # bank is closer to the truth than a simple random sample of the same size.
    truth = 32.66  # OEWS May 2024 all-occupation mean (the sampler reproduces it)
    strat, simple = [], []
    for seed in range(8):
        s = sample_personas(100, np.random.default_rng(seed), min_per_bracket=5)
        strat.append(float(np.average(s.hourly_wage_usd, weights=s.weight)) - truth)
        r = sample_personas(100, np.random.default_rng(seed))
        simple.append(float(r.hourly_wage_usd.mean()) - truth)
    assert np.sqrt(np.mean(np.square(strat))) < np.sqrt(np.mean(np.square(simple)))


def test_allocation_keeps_the_minimum_and_the_total() -> None:
    shares = np.array([0.02, 0.46, 0.36, 0.12, 0.017, 0.014, 0.0009])
    for n in (35, 100, 1000, 10_000):
        sizes = allocate(n, shares, 5)
        assert sizes.sum() == n and sizes.min() >= 5
    assert allocate(10, shares, 5).sum() == 10  # k shrinks to n // brackets


def test_every_prefix_of_a_stratified_bank_keeps_the_bracket_mix() -> None:
    bank = sample_personas(200, np.random.default_rng(0), min_per_bracket=5)
    b = bracket_of(bank.frame["annual_earnings_usd"].to_numpy(float), EDGES)
    sizes = np.bincount(b, minlength=7)
    for m in (16, 50, 100):
        seen = np.bincount(b[:m], minlength=7)
        assert np.all(np.abs(seen - sizes * m / 200) <= 1.0)


# -- weights of 1 change nothing ---------------------------------------------------------


def _population(weight: np.ndarray | None, n: int = 150) -> Population:
    bank = load_bank(default_bank_path())[:n]
    pop = population_from_personas(bank)
    return Population(pop.hourly_wage_usd, pop.usual_weekly_hours, pop.ids, weight=weight)


@pytest.mark.parametrize("crra", [None, 2.0])
def test_equal_weights_reproduce_the_unweighted_metrics_exactly(crra: float | None) -> None:
    n = 150
    plain = Economy(_population(None, n), UtilityConfig(crra=crra))
    for w in (np.ones(n), np.full(n, 2.5)):
        weighted = Economy(_population(w, n), UtilityConfig(crra=crra))
        assert weighted.survey_weight is None
        for rates in ((0.1, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37), (0.3,) * 7):
            sched = TaxSchedule(EDGES, rates)
            assert weighted.evaluate(sched)[1] == plain.evaluate(sched)[1]


def test_the_weighted_code_with_weights_of_1_equals_the_unweighted_code() -> None:
    rng = np.random.default_rng(0)
    n = 300
    ones = np.ones(n)
    u, c, z = rng.normal(5e4, 2e4, n), rng.lognormal(10.5, 0.7, n), rng.lognormal(10.6, 0.8, n)
    g = rng.uniform(0.2, 3.0, n)
    for name in swf_names():
        a = float(social_welfare(name, u, c, z, g))
        b = float(social_welfare(name, u, c, z, g, ones))
        assert b == pytest.approx(a, rel=1e-12, abs=1e-12), name
    for name in BUILT_IN:
        np.testing.assert_allclose(
            marginal_welfare_weights(name, c, z, u, g, 2.0, ones),
            marginal_welfare_weights(name, c, z, u, g, 2.0),
            rtol=1e-12,
            atol=1e-15,
        )
        a_out = output_welfare_weight(name, c, z, u, g, None)
        b_out = output_welfare_weight(name, c, z, u, g, None, ones)
        assert (a_out is None) == (b_out is None)
        if a_out is not None and b_out is not None:
            assert b_out == pytest.approx(a_out, rel=1e-12)
    assert float(gini(c, ones)) == pytest.approx(float(gini(c)), rel=1e-12)
    assert float(equality(c, ones)) == pytest.approx(float(equality(c)), rel=1e-12)
    spec = SaezWeights(g, 0.8, None)
    np.testing.assert_allclose(
        saez_bracket_rates(z, SaezWeights(g, 0.8, None, ones), EDGES, 0.4),
        saez_bracket_rates(z, spec, EDGES, 0.4),
        rtol=1e-12,
    )
    pop = _population(None)
    economy = Economy(pop, UtilityConfig(crra=2.0))
    rates = np.array([[0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]])
    args = (pop.hourly_wage_usd, economy.psi, EDGES, rates, economy.utility_config, 1e4)
    a_eq = solve_rebate_equilibrium(*args)
    b_eq = solve_rebate_equilibrium(*args, np.ones(pop.size))
    np.testing.assert_allclose(b_eq.rebate_usd, a_eq.rebate_usd, rtol=1e-12)


def test_integer_weights_equal_duplicated_workers() -> None:
    # A worker of weight 2 is two identical workers: every per-person aggregate agrees.
    base = _population(None, 60)
    w = np.where(np.arange(60) % 3 == 0, 2.0, 1.0)
    idx = np.repeat(np.arange(60), w.astype(int))
    dup = Population(base.hourly_wage_usd[idx], base.usual_weekly_hours[idx], tuple(map(str, idx)))
    weighted = Population(base.hourly_wage_usd, base.usual_weekly_hours, base.ids, weight=w)
    for swf in ("inverse_income", "utilitarian", "rawlsian"):
        for crra in (None, 1.0):
            e_w = Economy(weighted, UtilityConfig(crra=crra), swf=swf)
            e_d = Economy(dup, UtilityConfig(crra=crra), swf=swf)
            sched = TaxSchedule(EDGES, (0.15, 0.2, 0.3, 0.3, 0.4, 0.45, 0.5))
            m_w, m_d = e_w.evaluate(sched)[1], e_d.evaluate(sched)[1]
            for key in ("swf", "rebate_usd", "mean_income_usd", "mean_weekly_hours",
                        "gini_income", "gini_consumption", "effective_tax_rate",
                        "mean_marginal_rate"):  # fmt: skip
                assert getattr(m_w, key) == pytest.approx(getattr(m_d, key), rel=1e-9), key
            # revenue is a total "per N workers": the mean-1 weights keep N = 60
            assert m_w.revenue_usd / 60 == pytest.approx(m_d.revenue_usd / idx.size, rel=1e-9)
            rates = np.array([[0.1, 0.2, 0.3, 0.3, 0.4, 0.45, 0.5]])
            assert e_w.welfare_of_rates(EDGES, rates)[0] == pytest.approx(
                e_d.welfare_of_rates(EDGES, rates)[0], rel=1e-9
            )
    # Saez sums run over people.
    from llmecon.planners.saez import saez_weights

    e_w, e_d = Economy(weighted), Economy(dup)
    sched = TaxSchedule.status_quo()
    out_w, out_d = e_w.evaluate(sched)[0], e_d.evaluate(sched)[0]
    np.testing.assert_allclose(
        saez_bracket_rates(out_w.income_usd, saez_weights(e_w, out_w), EDGES, 0.4),
        saez_bracket_rates(out_d.income_usd, saez_weights(e_d, out_d), EDGES, 0.4),
        rtol=1e-9,
    )


def test_rawlsian_ignores_zero_weights() -> None:
    u = np.array([-5.0, 1.0, 2.0])
    w = np.array([0.0, 1.0, 1.0])
    assert float(social_welfare("rawlsian", u, u, u, np.ones(3), w)) == 1.0
    mw = marginal_welfare_weights("rawlsian", u, u, u, np.ones(3), None, w)
    assert mw[0] == 0.0 and mw[1] > 0


def test_a_bank_without_weights_loads_with_weight_1(tmp_path: Path) -> None:
    lines = default_bank_path().read_text(encoding="utf-8").splitlines()[:5]
    stripped = []
    for line in lines:
        record = json.loads(line)
        record.pop("weight", None)
        stripped.append(json.dumps(record))
    path = tmp_path / "old.jsonl"
    path.write_text("\n".join(stripped) + "\n", encoding="utf-8")
    bank = load_bank(path)
    assert [p.weight for p in bank] == [1.0] * 5
    pop = population_from_personas(bank)
    assert pop.survey_weight is None and np.all(pop.weight == 1.0)


def test_the_default_bank_covers_every_bracket_and_passes_validation() -> None:
    bank = load_bank(default_bank_path())
    income = np.array([p.annual_earnings_usd for p in bank])
    counts = np.bincount(bracket_of(income, EDGES), minlength=len(EDGES))
    assert counts.min() >= 5 and counts[-1] >= 5  # incl. above $626,350
    report = validate(bank)
    assert report.ok, str(report)
    assert report.row("implausible records").sample == 0
    assert report.n_effective < len(bank)


def test_negative_or_zero_total_weights_are_refused() -> None:
    from llmecon.economy import PopulationError

    with pytest.raises(PopulationError):
        Population(np.ones(3) * 20, np.ones(3) * 40, ("a", "b", "c"), weight=np.zeros(3))
    with pytest.raises(PopulationError):
        Population(np.ones(2) * 20, np.ones(2) * 40, ("a", "b"), weight=np.array([1.0, -1.0]))


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_a_bank_smaller_than_the_brackets_has_mean_weight_1(n: int) -> None:
    # Fewer personas than the 7 brackets leave some bracket empty: the weights summed to
    # the share of the brackets held (mean 0.46 at n = 1), not to n as the docs say.
    bank = sample_personas(n, np.random.default_rng(0), min_per_bracket=5)
    assert bank.weight.mean() == pytest.approx(1.0, abs=1e-8)
