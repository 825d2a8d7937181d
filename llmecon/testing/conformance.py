"""A conformance kit: checks that ONE registered entry behaves, whatever it is.

In the spirit of PettingZoo's seed test. Every registered planner, model provider,
worker pool, social welfare function (SWF) and vote rule must

* be **reproducible**: two twins built from identically seeded inputs, driven in
  lockstep, give identical results (a planner drawing from a global or unseeded RNG
  fails here);
* stay **in bounds**: schedules on the context's brackets with finite rates in
  ``[min_rate, max_rate]``; hours in ``[0, max_weekly_hours]``, one per worker;
  schema-valid structured replies and non-negative usage; a finite welfare; ballots
  valid for their rule and a winner among the candidates.

Each ``check_*`` function checks one entry and raises :class:`ConformanceError` (an
``AssertionError``, so pytest shows it as a failure) with a message naming the entry
and what broke. ``tests/testing/test_conformance.py`` runs them over every registry
entry, so a newly registered planner, provider, SWF or vote rule is covered without a
new test.

Plug-in authors run the kit on their own entry (see ``docs/testing.md``)::

    from llmecon.planners import register_planner
    from llmecon.testing.conformance import check_planner, check_provider_in_process

    @register_planner("my-planner", "my planner (my-planner:<step>)")
    def _make(ctx, arg): ...

    def test_my_planner_conforms():
        check_planner("my-planner:0.1")

    def test_my_provider_conforms():  # after register_provider("mine", MyProvider)
        check_provider_in_process("mine/some-model")

HTTP providers are pointed at the fake servers of :mod:`llmecon.testing.fake_servers`
with :func:`check_provider_over_http`. Nothing here reaches the internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import inspect
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from llmecon.economy import Economy, TaxSchedule, synthetic_population
from llmecon.planners import PlannerContext, YearRecord

#: Seed of the kit's sample economies and generators.
DEFAULT_SEED = 1234
#: Workers in the sample economy (small: the oracle and LLM workers stay quick).
SAMPLE_WORKERS = 24
#: Rate bounds of the planner check: strictly inside [0, 1], so clipping is exercised.
SAMPLE_MIN_RATE = 0.05
SAMPLE_MAX_RATE = 0.6
#: Example specs of planners that need an argument (``name`` -> ``name:arg``), for
#: those whose help text shows no ``(name:<example>)``.
EXAMPLE_PLANNER_SPECS: dict[str, str] = {
    "flat": "flat:25",
    "fixed": "fixed:10,12,22,24,32,35,37",
}
#: LLM planners checked alongside the registry's baselines: the models that run them.
LLM_PLANNER_MODELS = ("mock/default", "scripted/reference")
#: Providers the kit does not check, with the reason (asserted by the test module).
SKIPPED_PROVIDERS: dict[str, str] = {
    "replay": (
        "replay serves the calls recorded in a run log: it has no reply of its own to "
        "check, and tests/runs covers that a replay reproduces its recording"
    ),
}
#: In-process providers: ``name`` -> a model string the kit checks.
IN_PROCESS_PROVIDERS: dict[str, str] = {
    "mock": "mock/default",
    "scripted": "scripted/reference",
}
#: The embedded model: slow (a 135M llama.cpp model), checked under ``local_model``.
LOCAL_PROVIDERS: dict[str, str] = {"local": "local/smollm2-135m"}


class ConformanceError(AssertionError):
    """An entry broke a conformance rule (the message names the entry and the rule)."""


def _fail(entry: str, message: str) -> ConformanceError:
    return ConformanceError(f"{entry}: {message}")


_Check = TypeVar("_Check", bound=Callable[..., Any])


def _names_its_errors(kind: str) -> Callable[[_Check], _Check]:
    """A ``check_*`` whose entry's own exception (a planner raising in ``propose``, an
    SWF in ``evaluate``) is a :class:`ConformanceError` naming the entry, as every
    broken rule is, rather than the bare exception."""

    def wrap(check: _Check) -> _Check:
        @functools.wraps(check)
        def checked(subject: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return check(subject, *args, **kwargs)
            except ConformanceError:
                raise
            except Exception as exc:
                named = subject if isinstance(subject, str) else getattr(subject, "model", None)
                entry = kwargs.get("label") or (f"{kind} {named!r}" if named else kind)
                raise _fail(entry, f"raised {type(exc).__name__}: {exc}") from exc

        return cast(_Check, checked)

    return wrap


# -- a small economy -------------------------------------------------------------------


def sample_economy(
    seed: int = DEFAULT_SEED, workers: int = SAMPLE_WORKERS, swf: str = "inverse_income"
) -> Economy:
    """A small synthetic economy; the same seed always gives the same economy."""
    return Economy(synthetic_population(workers, np.random.default_rng(seed)), swf=swf)


def sample_context(
    economy: Economy,
    seed: int = DEFAULT_SEED,
    *,
    min_rate: float = SAMPLE_MIN_RATE,
    max_rate: float = SAMPLE_MAX_RATE,
) -> PlannerContext:
    """A planner context on the US federal brackets with its own seeded generator."""
    edges = TaxSchedule.status_quo().edges
    return PlannerContext(
        economy, edges, np.random.default_rng(seed), min_rate=min_rate, max_rate=max_rate
    )


def settle_year(economy: Economy, year: int, schedule: TaxSchedule) -> YearRecord:
    """A year of rational workers under ``schedule``, as the run loop records it."""
    outcome, metrics = economy.evaluate(schedule)
    return YearRecord(year, schedule, metrics, outcome.weekly_hours, outcome.income_usd)


def _is_test_fixture(obj: object) -> bool:
    """Registered by a test module (a fixture of that test, not a registry entry)."""
    module = getattr(obj, "__module__", "") or ""
    if isinstance(obj, str):
        module = obj.split(":", 1)[0]
    head = module.split(".", 1)[0]
    return head in ("tests", "conftest") or module.rsplit(".", 1)[-1].startswith("test_")


# -- planners --------------------------------------------------------------------------


def planner_entries() -> list[str]:
    """Every registered baseline planner (entries registered by test modules left out)."""
    from llmecon.planners.base import _REGISTRY, planner_names

    names = planner_names()
    return [n for n in names if not _is_test_fixture(_REGISTRY[n][0])]


def example_planner_spec(name: str) -> str:
    """A buildable spec for planner ``name``: :data:`EXAMPLE_PLANNER_SPECS`, else the
    first concrete ``name:<arg>`` example in its help text, else the bare name."""
    if name in EXAMPLE_PLANNER_SPECS:
        return EXAMPLE_PLANNER_SPECS[name]
    from llmecon.planners import planner_names

    help_text = planner_names().get(name, "")
    match = re.search(rf"\b{re.escape(name)}:([^\s)<>]+)", help_text)
    return f"{name}:{match.group(1)}" if match else name


PlannerBuilder = Callable[[PlannerContext], Any]


def _registry_builder(spec: str) -> PlannerBuilder:
    from llmecon.planners import make_planner

    return lambda ctx: make_planner(spec, ctx)


def llm_planner_builder(model: str, seed: int = DEFAULT_SEED) -> PlannerBuilder:
    """Builds the LLM planner driven by ``model`` (e.g. ``mock/default``)."""

    def build(ctx: PlannerContext) -> Any:
        from llmecon.agents.llm_planner import LLMPlanner
        from llmecon.models import GenerateConfig, get_model
        from llmecon.prompts import PromptLibrary

        config = GenerateConfig(max_tokens=160, temperature=0.0, seed=seed)
        return LLMPlanner(get_model(model), ctx, PromptLibrary(), config=config)

    return build


@_names_its_errors("planner")
def check_planner(
    spec: str | PlannerBuilder,
    *,
    years: int = 4,
    seed: int = DEFAULT_SEED,
    economy: Callable[[], Economy] | None = None,
    min_rate: float = SAMPLE_MIN_RATE,
    max_rate: float = SAMPLE_MAX_RATE,
    label: str | None = None,
) -> list[TaxSchedule]:
    """Check one planner: ``spec`` is a registry spec (``flat:25``) or a builder
    ``ctx -> planner``.

    Two twins, built with identically seeded contexts over twin economies, are driven in
    lockstep for ``years`` years of rational workers; each year they must propose the
    same schedule, a :class:`TaxSchedule` on the context's edges with finite rates in
    ``[min_rate, max_rate]``. ``propose`` may return an awaitable (LLM planners).
    Returns the schedules proposed.
    """
    entry = label or (f"planner {spec!r}" if isinstance(spec, str) else "planner")
    build = _registry_builder(spec) if isinstance(spec, str) else spec
    make_economy = economy or (lambda: sample_economy(seed))
    twins = []
    contexts = []
    for _ in range(2):
        ctx = sample_context(make_economy(), seed, min_rate=min_rate, max_rate=max_rate)
        contexts.append(ctx)
        twins.append(build(ctx))

    async def drive() -> list[TaxSchedule]:
        histories: list[list[YearRecord]] = [[], []]
        proposed: list[TaxSchedule] = []
        for year in range(years):
            schedules = []
            for planner, ctx, history in zip(twins, contexts, histories, strict=True):
                proposal = planner.propose(list(history))
                if inspect.isawaitable(proposal):
                    proposal = await proposal
                _check_schedule(entry, year, proposal, ctx)
                schedules.append(proposal)
            a, b = schedules
            if a.rates != b.rates:
                raise _fail(
                    entry,
                    f"tax year {year + 1}: twins built with identically seeded contexts proposed "
                    f"different rates {list(a.rates)} and {list(b.rates)}; draw randomness "
                    "only from PlannerContext.rng (no global or unseeded RNG, no clock)",
                )
            for ctx, history, schedule in zip(contexts, histories, schedules, strict=True):
                history.append(settle_year(ctx.economy, year, schedule))
            proposed.append(a)
        for planner in twins:
            model = getattr(planner, "model", None)
            if model is not None and hasattr(model, "aclose"):
                await model.aclose()
        return proposed

    return asyncio.run(drive())


def _check_schedule(entry: str, year: int, proposal: Any, ctx: PlannerContext) -> None:
    problem = ctx.proposal_problem(proposal)  # the run loop's own check
    if problem is not None:
        raise _fail(entry, f"tax year {year + 1}: {problem}")


# -- model providers -------------------------------------------------------------------


class ConformanceDecision(BaseModel):
    """The structured request of the provider check (a worker's decision)."""

    hours: int = Field(ge=0, le=80)
    reason: str | None = Field(default=None, max_length=200)


def provider_entries() -> list[str]:
    """Every registered provider (entries registered by test modules left out)."""
    from llmecon.models._registry import _PROVIDERS, provider_names

    return [n for n in provider_names() if not _is_test_fixture(_PROVIDERS[n])]


@dataclass(frozen=True)
class HttpTarget:
    """How to point a provider at a fake server: the model string, the server
    (``openai`` or ``anthropic``), provider arguments and environment it needs."""

    model: str
    server: str = "openai"
    args: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    id: str = ""
    #: the request's temperature (``None``: not sent)
    temperature: float | None = 0.0


#: HTTP providers: ``name`` -> the fake-server targets the kit checks.
HTTP_PROVIDERS: dict[str, tuple[HttpTarget, ...]] = {
    "openai": (
        HttpTarget("openai/fake", "openai", {"transport": "sdk"}, id="openai-sdk"),
        # any OpenAI-compatible server (vLLM, Ollama, llama.cpp) over the lean client
        HttpTarget("openai/fake", "openai", {"transport": "http"}, id="openai-compatible"),
    ),
    "anthropic": (
        HttpTarget(
            "anthropic/claude-test",
            "anthropic",
            env={"ANTHROPIC_API_KEY": "sk-conformance-not-a-key"},
            id="anthropic",
        ),
        HttpTarget(
            "anthropic/claude-test",
            "anthropic",
            {"transport": "sdk"},
            env={"ANTHROPIC_API_KEY": "sk-conformance-not-a-key"},
            id="anthropic-sdk",
        ),
    ),
    "litellm": (HttpTarget("litellm/openai/fake-model", "openai", id="litellm"),),
}

_MESSAGES = (
    ("system", "You are a nurse earning $38 per hour who usually works 40 hours a week."),
    ("user", 'How many hours per week will you work next year? Reply as JSON {"hours": int}.'),
)


def _conformance_call_context() -> Any:
    """A worker call context (the scripted provider answers only agent calls)."""
    from llmecon.agents.calls import CallContext, WorkerAsk, call_context

    economy = sample_economy()
    ask = WorkerAsk(economy, 0, TaxSchedule.status_quo(), 0.0)
    return call_context(CallContext(role="worker", year=0, agent=None, step=0, request=ask))


@_names_its_errors("provider")
def check_provider(
    make_model: Callable[[], Any],
    *,
    label: str = "provider",
    seed: int = DEFAULT_SEED,
    temperature: float | None = 0.0,
) -> None:
    """Check one provider through :class:`~llmecon.models.Model`s from ``make_model``.

    Twins (two models, the same seeded config) must give identical replies to the same
    text and structured requests; the structured reply must be JSON valid under the
    request's schema; usage and cost must be non-negative.
    """
    from llmecon.models import ChatMessage, GenerateConfig

    messages = [ChatMessage(role=r, content=c) for r, c in _MESSAGES]
    config = GenerateConfig(seed=seed, temperature=temperature, max_tokens=60, timeout_s=30.0)

    async def ask(model: Any) -> tuple[Any, Any]:
        try:
            with _conformance_call_context():
                structured = await model.generate(messages, ConformanceDecision, config)
                text = await model.generate(messages, None, config)
            return structured, text
        finally:
            await model.aclose()

    twins = [asyncio.run(ask(make_model())) for _ in range(2)]
    (s1, t1), (s2, t2) = twins
    if s1.text != s2.text:
        raise _fail(
            label,
            f"twins with seed {seed} gave different structured replies {s1.text!r} and "
            f"{s2.text!r}; pass GenerateConfig.seed/temperature through, keep no hidden state",
        )
    if t1.text != t2.text:
        raise _fail(
            label, f"twins with seed {seed} gave different text replies {t1.text!r}, {t2.text!r}"
        )
    try:
        parsed = ConformanceDecision.model_validate_json(_json_part(s1.text))
    except (ValidationError, ValueError) as exc:
        raise _fail(label, f"structured reply {s1.text!r} is not schema-valid: {exc}") from None
    if s1.parsed is None or s1.parsed != parsed:
        raise _fail(label, f"structured reply parsed as {s1.parsed!r}, expected {parsed!r}")
    if not isinstance(t1.text, str) or t1.parsed is not None:
        raise _fail(label, "a text request must return text and no parsed value")
    for out in (s1, t1):
        usage = out.usage
        if usage.input_tokens < 0 or usage.output_tokens < 0:
            raise _fail(label, f"negative usage {usage!r}")
        cost = getattr(out, "cost_usd", None)
        if cost is not None and (not math.isfinite(cost) or cost < 0):
            raise _fail(label, f"cost {cost!r} is not a non-negative number")


def _json_part(text: str) -> str:
    """The JSON object in a reply (prompt-mode providers may wrap it in a code block)."""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    return match.group(0) if match else text


@_names_its_errors("provider")
def check_provider_in_process(
    model: str, *, seed: int = DEFAULT_SEED, **provider_args: Any
) -> None:
    """Check an in-process provider by model string (``mock/default``)."""
    from llmecon.models import get_model

    check_provider(
        lambda: get_model(model, **provider_args), label=f"provider {model!r}", seed=seed
    )


@contextlib.contextmanager
def fake_server(kind: str = "openai", **options: Any) -> Iterator[Any]:
    """A fake ``openai`` or ``anthropic`` server on 127.0.0.1 (a context manager)."""
    from llmecon.testing.fake_servers import FakeAnthropicServer, FakeOpenAIServer

    cls = {"openai": FakeOpenAIServer, "anthropic": FakeAnthropicServer}[kind]
    with cls(**options) as server:
        yield server


@_names_its_errors("provider")
def check_provider_over_http(target: HttpTarget, *, seed: int = DEFAULT_SEED) -> None:
    """Check an HTTP provider against a fake server (set ``target.env`` first, e.g.
    with pytest's ``monkeypatch.setenv``: the kit never touches the environment)."""
    from llmecon.models import get_model

    label = f"provider {target.id or target.model!r} (fake {target.server} server)"
    with fake_server(target.server) as server:
        base = server.base_url
        check_provider(
            lambda: get_model(target.model, api_base=base, **target.args),
            label=label,
            seed=seed,
            temperature=target.temperature,
        )
        if server.stats.requests < 4:
            raise _fail(label, f"only {server.stats.requests} requests reached the server")


# -- worker pools ----------------------------------------------------------------------


def _persona_texts(economy: Economy) -> list[str]:
    pop = economy.population
    return [
        f"You earn ${wage:.2f} per hour and usually work {hours:.0f} hours a week."
        for wage, hours in zip(pop.hourly_wage_usd, pop.usual_weekly_hours, strict=True)
    ]


def llm_workers_builder(model: str, seed: int = DEFAULT_SEED) -> Callable[[Economy], Any]:
    """Builds LLM workers driven by ``model`` (e.g. ``mock/default``)."""

    def build(economy: Economy) -> Any:
        from llmecon.agents.llm_workers import LLMWorkers
        from llmecon.models import GenerateConfig, get_model
        from llmecon.prompts import PromptLibrary

        config = GenerateConfig(max_tokens=16, temperature=0.0, seed=seed)
        texts = _persona_texts(economy)
        return LLMWorkers(get_model(model), economy, texts, PromptLibrary(), config=config)

    return build


def worker_pool_entries() -> dict[str, Callable[[Economy], Any]]:
    """The worker pools: rational, and LLM workers on the in-process test models."""
    from llmecon.agents import RationalWorkers

    pools: dict[str, Callable[[Economy], Any]] = {"rational": RationalWorkers}
    for model in LLM_PLANNER_MODELS:
        pools[f"llm:{model}"] = llm_workers_builder(model)
    return pools


@_names_its_errors("worker pool")
def check_worker_pool(
    build: Callable[[Economy], Any],
    *,
    label: str = "worker pool",
    years: int = 2,
    seed: int = DEFAULT_SEED,
) -> None:
    """Check one worker pool: twins over twin economies decide identical hours, one per
    worker, finite and within ``[0, max_weekly_hours]``, for a few years and schedules."""
    from llmecon.agents import WorkerRequest

    economies = [sample_economy(seed), sample_economy(seed)]
    pools = [build(e) for e in economies]
    schedules = [TaxSchedule.status_quo(), TaxSchedule.flat(0.3, TaxSchedule.status_quo().edges)]

    async def drive() -> None:
        histories: list[list[YearRecord]] = [[], []]
        hours = [np.asarray(e.population.usual_weekly_hours, dtype=float) for e in economies]
        for year in range(years):
            schedule = schedules[year % len(schedules)]
            decided = []
            for i, pool in enumerate(pools):
                request = WorkerRequest(
                    year=year,
                    step=0,
                    schedule=schedule,
                    previous_hours=hours[i],
                    last_rebate_usd=histories[i][-1].metrics.rebate_usd if histories[i] else 0.0,
                    history=list(histories[i]),
                )
                decision = await pool.decide(request)
                h = np.asarray(decision.weekly_hours, dtype=float)
                cap = economies[i].utility_config.max_weekly_hours
                if h.shape != (economies[i].size,):
                    raise _fail(
                        label,
                        f"tax year {year + 1}: {h.shape} hours for {economies[i].size} workers",
                    )
                if not np.all(np.isfinite(h)) or np.any(h < 0) or np.any(h > cap):
                    raise _fail(
                        label, f"tax year {year + 1}: hours outside [0, {cap:g}]: {h.tolist()}"
                    )
                decided.append(h)
            if not np.array_equal(decided[0], decided[1]):
                raise _fail(
                    label,
                    f"tax year {year + 1}: twins decided different hours {decided[0].tolist()} and "
                    f"{decided[1].tolist()}",
                )
            for i, economy in enumerate(economies):
                outcome = economy.outcome(schedule, decided[i])
                histories[i].append(
                    YearRecord(
                        year,
                        schedule,
                        economy.metrics(outcome),
                        outcome.weekly_hours,
                        outcome.income_usd,
                    )
                )
                hours[i] = decided[i]
        for pool in pools:
            model = getattr(pool, "model", None)
            if model is not None and hasattr(model, "aclose"):
                await model.aclose()

    asyncio.run(drive())


# -- social welfare functions ----------------------------------------------------------


def swf_entries() -> list[str]:
    """Registered SWFs: ``llmecon.economy.welfare.swf_names()`` (imported lazily); while
    that registry does not exist, the fixed ``SWF_NAMES``."""
    welfare = importlib.import_module("llmecon.economy.welfare")
    names = getattr(welfare, "swf_names", None)
    if names is not None:
        return list(names())
    return list(welfare.SWF_NAMES)


@_names_its_errors("SWF")
def check_swf(name: str, *, seed: int = DEFAULT_SEED) -> float:
    """Check one SWF on a sample economy: a finite value, identical for twin economies
    (and as the economy's own metric); finite social marginal welfare weights with a
    positive mean, non-negative for welfarist SWFs (those that value income only through
    consumption; ``equality × productivity`` may weigh the richest negatively), when
    the SWF defines them (they are optional: without them only Saez refuses it).
    Returns the value."""
    welfare = importlib.import_module("llmecon.economy.welfare")
    entry = f"SWF {name!r}"
    get_swf = getattr(welfare, "get_swf", None)
    found = get_swf(name) if get_swf is not None else None
    if get_swf is not None and found is None:
        raise _fail(entry, "get_swf returned None")
    has_weights = getattr(found, "marginal_weights", True) is not None
    values = []
    for _ in range(2):
        economy = sample_economy(seed)
        outcome, _ = economy.evaluate(TaxSchedule.status_quo())
        value = welfare.social_welfare(
            name, outcome.utility, outcome.consumption_usd, outcome.income_usd, economy.weights
        )
        value = float(np.asarray(value))
        if not math.isfinite(value):
            raise _fail(entry, f"non-finite welfare {value!r} on the sample economy")
        metric = economy.metrics(outcome, swf=name).swf
        if metric != value:
            raise _fail(entry, f"the economy's metric {metric!r} differs from {value!r}")
        values.append(value)
        if not has_weights:
            continue
        args = (
            outcome.consumption_usd,
            outcome.income_usd,
            outcome.utility,
            economy.weights,
            economy.utility_config.crra,
        )
        # as the SWF defines them: the normalised ones fall back to equal weights when
        # their mean is not positive, which would hide weights of the wrong sign
        raw = getattr(welfare, "_raw_marginal_weights", welfare.marginal_welfare_weights)
        weights = np.asarray(raw(name, *args), dtype=float)
        if weights.shape != (economy.size,) or not np.all(np.isfinite(weights)):
            raise _fail(entry, f"marginal welfare weights not finite per worker: {weights}")
        if not weights.mean() > 0:
            raise _fail(entry, f"marginal welfare weights with mean {weights.mean()!r} <= 0")
        welfarist = welfare.output_welfare_weight(name, *args)
        if welfarist is None and np.any(weights < 0):
            raise _fail(entry, f"negative marginal welfare weights {weights.min()!r}")
    if values[0] != values[1]:
        raise _fail(entry, f"twin economies gave different welfare {values}")
    return values[0]


# -- vote rules ------------------------------------------------------------------------


def _voting_api() -> Any:
    """The voting functions (``rational_ballots``, ``ballot_problem``, ``tally``, …):
    from ``llmecon.voting`` when it has them, else its ``rules`` module, else the older
    ``llmecon.economy.voting``."""
    wanted = ("rational_ballots", "ballot_problem", "tally", "project_candidates")
    for module_name in ("llmecon.voting", "llmecon.voting.rules", "llmecon.economy.voting"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if all(hasattr(module, w) for w in wanted):
            return module
    raise ImportError("no voting module with rational_ballots, ballot_problem and tally")


def vote_rule_entries() -> list[str]:
    """Registered vote rules: ``llmecon.voting.vote_rule_names()`` (imported lazily);
    while that registry does not exist, the fixed ``VOTE_RULES``."""
    try:
        voting = importlib.import_module("llmecon.voting")
        return list(voting.vote_rule_names())
    except (ImportError, AttributeError):
        return list(_voting_api().VOTE_RULES)


@_names_its_errors("vote rule")
def check_vote_rule(name: str, *, seed: int = DEFAULT_SEED) -> str:
    """Check one vote rule: sincere (rational) ballots of a sample economy's workers
    over three candidates are valid for the rule; the tally is deterministic for twin
    seeded generators (also when every candidate ties, so the tie-break draws); the
    winner is a candidate. Returns the winner's label."""
    api = _voting_api()
    entry = f"vote rule {name!r}"
    with contextlib.suppress(ImportError, AttributeError):
        get_vote_rule = importlib.import_module("llmecon.voting").get_vote_rule
        if get_vote_rule(name) is None:
            raise _fail(entry, "get_vote_rule returned None")
    economy = sample_economy(seed)
    candidates = [
        TaxSchedule.status_quo(),
        TaxSchedule.flat(0.2, TaxSchedule.status_quo().edges),
        TaxSchedule.flat(0.45, TaxSchedule.status_quo().edges),
    ]
    labels = ("A", "B", "C")
    utilities = api.project_candidates(economy, candidates).utilities
    winner = ""
    for case, u in (("sincere", utilities), ("all tied", np.zeros_like(utilities))):
        ballots = api.rational_ballots(u, labels, name)
        if len(ballots) != economy.size:
            raise _fail(entry, f"{case}: {len(ballots)} ballots for {economy.size} voters")
        for i, ballot in enumerate(ballots):
            problem = api.ballot_problem(ballot, name, labels)
            if problem is not None:
                raise _fail(entry, f"{case}: voter {i}'s rational ballot is invalid: {problem}")
        tallies = [api.tally(name, ballots, labels, np.random.default_rng(seed)) for _ in range(2)]
        a, b = tallies
        if (a.winner, a.scores, a.tied) != (b.winner, b.scores, b.tied):
            raise _fail(entry, f"{case}: twin tallies differ: {a} vs {b}")
        if a.winner not in labels:
            raise _fail(entry, f"{case}: winner {a.winner!r} is not a candidate {labels}")
        if a.valid != economy.size:
            raise _fail(entry, f"{case}: {a.valid} valid ballots of {economy.size}")
        if case == "sincere":
            winner = a.winner
    return winner


# -- helpers for plug-in tests ---------------------------------------------------------


@contextlib.contextmanager
def registered_planner(
    name: str, factory: Callable[..., Any], help_text: str = ""
) -> Iterator[str]:
    """Register a planner for a ``with`` block, then remove it (yields its name)."""
    from llmecon.planners.base import register_planner, unregister_planner

    register_planner(name, help_text or name)(factory)
    try:
        yield name
    finally:
        unregister_planner(name)
