"""The conformance kit over EVERY registry entry: a newly registered planner, provider,
SWF or vote rule is covered here without a new test (``docs/testing.md``)."""

from __future__ import annotations

import numpy as np
import pytest

from llmecon.economy.welfare import SWF, WelfareInputs, registered_swf
from llmecon.planners import PlannerContext, YearRecord
from llmecon.testing import conformance as kit


def _ids(params: list[str]) -> list[str]:
    return [p.replace("/", "-") for p in params]


# -- planners --------------------------------------------------------------------------

PLANNER_SPECS = [kit.example_planner_spec(n) for n in kit.planner_entries()]


@pytest.mark.parametrize("spec", PLANNER_SPECS, ids=_ids(PLANNER_SPECS))
def test_planner_conforms(spec: str) -> None:
    schedules = kit.check_planner(spec)
    assert len(schedules) == 4


@pytest.mark.parametrize("model", kit.LLM_PLANNER_MODELS, ids=_ids(list(kit.LLM_PLANNER_MODELS)))
def test_llm_planner_conforms(model: str) -> None:
    kit.check_planner(kit.llm_planner_builder(model), years=3, label=f"LLM planner on {model}")


def test_every_planner_spec_builds() -> None:
    """Parameterised planners need an example spec (table or help text)."""
    assert {"flat", "fixed", "none", "us-federal", "oracle"} <= set(kit.planner_entries())
    assert kit.example_planner_spec("flat") == "flat:25"
    assert kit.example_planner_spec("ucb") == "ucb"  # "(ucb:<c>)" is a placeholder


class _GlobalRNGPlanner:
    """Broken on purpose: draws from numpy's global, unseeded generator."""

    name = "conformance-broken-rng"

    def __init__(self, ctx: PlannerContext) -> None:
        self.ctx = ctx

    def propose(self, history: list[YearRecord]) -> object:
        return self.ctx.schedule(np.random.uniform(0.1, 0.5, self.ctx.n_brackets))  # noqa: NPY002


class _OverMaxPlanner:
    """Broken on purpose: proposes a rate above ``max_rate`` (no clipping)."""

    name = "conformance-broken-bound"

    def __init__(self, ctx: PlannerContext) -> None:
        self.ctx = ctx

    def propose(self, history: list[YearRecord]) -> object:
        from llmecon.economy import TaxSchedule

        return TaxSchedule(self.ctx.edges, (self.ctx.max_rate + 0.1,) * self.ctx.n_brackets)


class _RaisingPlanner:
    """Broken on purpose: its own code raises."""

    name = "conformance-broken-raise"

    def __init__(self, ctx: PlannerContext) -> None:
        self.ctx = ctx

    def propose(self, history: list[YearRecord]) -> object:
        raise RuntimeError("a bug of the planner's")


@pytest.mark.parametrize(
    ("name", "cls", "message"),
    [
        ("conformance-broken-rng", _GlobalRNGPlanner, "twins built with identically seeded"),
        (  # its own exception came out bare, naming no entry
            "conformance-broken-raise",
            _RaisingPlanner,
            "raised RuntimeError: a bug of the planner's",
        ),
        (  # years as users count them: tax year 1 is the first
            "conformance-broken-bound",
            _OverMaxPlanner,
            r"tax year 1: .*outside \[min_rate, max_rate\]",
        ),
    ],
)
def test_the_kit_catches_a_broken_planner(name: str, cls: type, message: str) -> None:
    with kit.registered_planner(name, lambda ctx, arg: cls(ctx), "broken on purpose"):
        assert name in kit.planner_entries() or name.startswith("conformance-")
        with pytest.raises(kit.ConformanceError, match=message) as info:
            kit.check_planner(name)
        assert f"planner {name!r}" in str(info.value)
    from llmecon.planners import planner_names

    assert name not in planner_names()  # unregistered again


# -- providers -------------------------------------------------------------------------

PROVIDERS = kit.provider_entries()


def test_every_provider_is_checked_or_skipped_with_a_reason() -> None:
    assert {"mock", "scripted", "openai", "anthropic", "litellm", "local"} <= set(PROVIDERS)
    # replay (llmecon.runs.recorded.ReplayProvider) is not in the registry: the run layer
    # builds it around a log. It is the one provider skipped, and only with a reason.
    from llmecon.runs.recorded import ReplayProvider

    assert set(kit.SKIPPED_PROVIDERS) == {ReplayProvider.provider_name}
    for name, reason in kit.SKIPPED_PROVIDERS.items():
        assert name not in kit.IN_PROCESS_PROVIDERS and name not in kit.HTTP_PROVIDERS
        assert "recorded" in reason and len(reason) > 60, f"{name}: no stated reason"


def _provider_params() -> list[object]:
    params: list[object] = []
    for name in PROVIDERS:  # replay is not registered (see the test above)
        if name in kit.HTTP_PROVIDERS:
            params += [pytest.param(name, t, id=t.id) for t in kit.HTTP_PROVIDERS[name]]
        elif name in kit.LOCAL_PROVIDERS:
            params.append(pytest.param(name, None, marks=pytest.mark.local_model, id=name))
        else:
            params.append(pytest.param(name, None, id=name))
    return params


@pytest.mark.parametrize(("name", "target"), _provider_params())
def test_provider_conforms(
    name: str, target: kit.HttpTarget | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if target is not None:
        for key, value in target.env.items():
            monkeypatch.setenv(key, value)
        kit.check_provider_over_http(target)
    elif name in kit.LOCAL_PROVIDERS:
        from tests.conftest import require_local_model

        require_local_model()
        kit.check_provider_in_process(kit.LOCAL_PROVIDERS[name])
    else:
        kit.check_provider_in_process(kit.IN_PROCESS_PROVIDERS.get(name, f"{name}/default"))


def test_the_kit_catches_a_non_deterministic_provider() -> None:
    import itertools

    from llmecon.models import get_model

    counter = itertools.count()

    def make() -> object:
        return get_model(
            "mock/default",
            responder=lambda messages, schema: f'{{"hours": {next(counter) % 80}}}',
        )

    with pytest.raises(kit.ConformanceError, match="twins with seed"):
        kit.check_provider(make, label="provider 'counter'")


# -- worker pools ----------------------------------------------------------------------

POOLS = kit.worker_pool_entries()


@pytest.mark.parametrize("pool", list(POOLS), ids=_ids(list(POOLS)))
def test_worker_pool_conforms(pool: str) -> None:
    kit.check_worker_pool(POOLS[pool], label=f"worker pool {pool!r}")


# -- SWFs and vote rules (registries imported lazily) ----------------------------------


@pytest.mark.parametrize("name", kit.swf_entries())
def test_swf_conforms(name: str) -> None:
    value = kit.check_swf(name)
    assert np.isfinite(value)


def _median_utility(x: WelfareInputs) -> np.ndarray:
    return np.median(x.utility, axis=-1)


def test_an_swf_without_marginal_weights_conforms_and_broken_weights_do_not() -> None:
    """Marginal weights are optional (docs/plugins.md: only Saez needs them): the kit
    checks them only where the SWF defines them."""
    bare = SWF("median_kit", "median utility", "the median utility", _median_utility)
    with registered_swf(bare):
        assert np.isfinite(kit.check_swf("median_kit"))
    negative = SWF(
        "median_kit",
        "median utility",
        "the median utility",
        _median_utility,
        lambda x, mu: -np.ones(x.consumption.size),
    )
    with registered_swf(negative), pytest.raises(kit.ConformanceError, match="mean"):
        kit.check_swf("median_kit")


@pytest.mark.parametrize("rule", kit.vote_rule_entries())
def test_vote_rule_conforms(rule: str) -> None:
    assert kit.check_vote_rule(rule) in ("A", "B", "C")
