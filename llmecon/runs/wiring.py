"""Build a run's parts from its config: population, economy, models, planner, workers."""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmecon._limits import max_safe_concurrency
from llmecon.agents import RationalWorkers, WorkerPool
from llmecon.agents.llm_planner import LLMPlanner
from llmecon.agents.llm_workers import LLMWorkers
from llmecon.agents.prompting import PlannerPromptSettings
from llmecon.economy import Economy, Population, UtilityConfig, synthetic_population
from llmecon.models import GenerateConfig, Model, ModelError, get_model, redact_url
from llmecon.planners import Planner, PlannerContext, is_baseline, make_planner
from llmecon.prompts import PromptError, PromptLibrary
from llmecon.runs.config import ConfigError, RunConfig
from llmecon.runs.recorded import RecordedCalls, ReplayProvider

logger = logging.getLogger(__name__)

#: Above this many personas a run folder records the bank's source instead of a copy.
PERSONA_COPY_MAX = 100_000


@dataclass(frozen=True)
class PopulationSource:
    """The run's workers and where they came from."""

    population: Population
    personas: list[Any] | None
    """The :class:`~llmecon.personas.Persona` objects (``None`` for synthetic)."""
    description: dict[str, Any]


def build_population(config: RunConfig, rng: np.random.Generator) -> PopulationSource:
    """``synthetic``, the shipped bank (``default``; topped up by fresh draws from the
    sampler when more agents are asked for than it holds), or a bank file."""
    n = int(config.agents or 0)
    if config.personas == "synthetic":
        pop = synthetic_population(n, rng)
        return PopulationSource(pop, None, {"source": "synthetic", "size": n})
    from llmecon.personas import (
        PersonaError,
        default_bank_path,
        load_bank,
        population_from_personas,
        sample_personas,
    )

    path = default_bank_path() if config.personas == "default" else Path(config.personas)
    try:
        bank = load_bank(path)
        if len(bank) >= n:
            personas = bank[:n]
            how = f"first {n} of {path.name}"
        elif config.personas == "default":
            personas = sample_personas(n, rng).to_personas()
            how = f"{n} fresh draws from the Census sampler (bank holds {len(bank)})"
        else:
            raise ConfigError(
                f"personas: {path} holds {len(bank)} personas but --agents is {n}; "
                "sample a bigger bank with `llmecon personas sample`"
            )
        population = population_from_personas(personas, source=str(path))
    except PersonaError as exc:
        raise ConfigError(f"personas: {exc}") from None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    desc = {"source": str(path), "sha256": digest, "selection": how, "size": n}
    return PopulationSource(population, personas, desc)


def build_economy(config: RunConfig, population: Population) -> Economy:
    utility = UtilityConfig(
        elasticity=config.elasticity,
        max_weekly_hours=config.max_weekly_hours,
        crra=config.crra,
        rebate_share=config.rebate_share,
    )
    try:
        return Economy(population, utility, swf=config.swf)
    except ValueError as exc:
        raise ConfigError(f"cannot build the economy: {exc}") from None


def build_library(config: RunConfig) -> PromptLibrary:
    try:
        return PromptLibrary(config.prompts)
    except PromptError as exc:
        raise ConfigError(f"prompts: {exc}") from None


class ModelPool:
    """One :class:`Model` per distinct (model, endpoint); roles on the same model and
    endpoint share it (and its concurrency limit).

    With ``recorded`` calls (replay, resume, fork) every model answers from the log;
    with ``live`` too, calls with no recording go on to the real model. ``spent_usd`` is
    what earlier sessions of the run already spent (resume), counted in the budget.
    """

    def __init__(
        self,
        config: RunConfig,
        on_call: Callable[..., None],
        recorded: RecordedCalls | None = None,
        live: bool = False,
        spent_usd: float = 0.0,
    ) -> None:
        self.config = config
        self.on_call = on_call
        self.recorded = recorded
        self.live = live
        self.spent_usd = spent_usd
        self.models: dict[tuple[str, str | None], Model] = {}
        self.roles: dict[str, tuple[str, str]] = {}
        """role -> (model name, endpoint description)"""
        #: renders re-asks with ``prompts/repair.j2`` (set by the simulation)
        self.repair_prompt: Callable[[str], str] | None = None

    def generate_config(self) -> GenerateConfig:
        """The run's transport settings for every model it builds."""
        return GenerateConfig(
            timeout_s=self.config.timeout,
            max_retries=self.config.max_retries,
            max_reply_chars=self.config.max_reply_chars,
        )

    def get(self, name: str, role: str) -> Model:
        """The model ``name`` for ``role`` (``planner``, ``workers`` or ``voters``),
        served from the role's endpoint."""
        base = _role_base(name, self.config.api_base_for(role))
        key = (name, base)
        if key not in self.models:
            self.models[key] = self._build(name, base, role)
        model = self.models[key]
        self.roles[role] = (model.name, endpoint_label(model))
        return model

    def _build(self, name: str, base: str | None, role: str) -> Model:
        concurrency = capped_concurrency(self.config.max_concurrency)
        try:
            if self.recorded is not None and not self.live:
                # The run's own settings (its reply cap above all): a recorded reply
                # is accepted or refused exactly as it was live.
                model = Model(ReplayProvider(name, self.recorded), config=self.generate_config())
            else:
                model = get_model(
                    name,
                    api_base=base,
                    config=self.generate_config(),
                    max_concurrency=concurrency,
                    cache_dir=self.config.cache_dir,
                )
                if self.recorded is not None:
                    provider = ReplayProvider(name, self.recorded, live=model.provider)
                    model = Model(
                        provider,
                        config=model.config,
                        max_concurrency=concurrency,
                    )
        except ModelError as exc:
            raise ConfigError(f"{role}: {exc}") from None
        endpoint = endpoint_label(model)
        model.on_call = functools.partial(self.on_call, endpoint=endpoint)
        if self.config.price is not None:
            model.set_price(*self.config.price)
        elif self.config.max_cost is not None and not model.price_known:
            raise ConfigError(
                f"{role}: --max-cost cannot be enforced: the price of {model.name} at "
                f"{endpoint} is unknown (not in litellm's cost map, or a self-hosted "
                "server). Say how to price it with --price IN,OUT (USD per million input "
                "and output tokens; --price 0,0 for a free server)"
            )
        if self.repair_prompt is not None:
            model.repair_prompt = self.repair_prompt
        return model

    def endpoints(self) -> dict[str, str]:
        """Role -> ``<model> @ <endpoint>`` for the manifest (no credentials)."""
        return {role: f"{name} @ {where}" for role, (name, where) in self.roles.items()}

    @property
    def cost_usd(self) -> float:
        return self.spent_usd + sum(m.cost_total for m in self.models.values())

    @property
    def budget_exceeded(self) -> bool:
        return self.config.max_cost is not None and self.cost_usd >= self.config.max_cost

    def totals(self) -> dict[str, Any]:
        """Calls, tokens, cost (``None`` if any call's price was unknown), failures."""
        models = list(self.models.values())
        unknown = any(m.cost_unknown_calls for m in models)
        return {
            "calls": sum(m.calls for m in models),
            "input_tokens": sum(m.usage_total.input_tokens for m in models),
            "output_tokens": sum(m.usage_total.output_tokens for m in models),
            "cost_usd": None if unknown else round(self.cost_usd, 6),
            "failures": sum(m.failures for m in models),
        }

    async def aclose(self) -> None:
        for model in self.models.values():
            await model.aclose()


def _role_base(name: str, base: str | None) -> str | None:
    """In-process models (embedded, mock) take no server URL: a run-wide ``--api-base``
    meant for the API models of other roles does not apply to them."""
    provider = name.partition("/")[0] if "/" in name else ""
    return None if provider in IN_PROCESS_PROVIDERS else base


#: Providers that run inside this process and take no ``api_base``.
IN_PROCESS_PROVIDERS = frozenset({"local", "mock", "replay", "scripted"})


def endpoint_label(model: Model) -> str:
    """Where ``model`` is served, safe to write to a log: its URL without credentials,
    or ``<provider> default`` / ``in-process``."""
    provider = model.provider
    live = getattr(provider, "live", None) or provider
    if live.provider_name in IN_PROCESS_PROVIDERS:
        return f"{live.provider_name} (in-process)"
    if live.api_base:
        return redact_url(live.api_base)
    return f"{live.provider_name} default endpoint"


def capped_concurrency(requested: int | None) -> int | None:
    """``requested`` concurrency, lowered below what the open-file limit allows (each
    request in flight holds a socket)."""
    cap = max_safe_concurrency()
    if requested is not None and requested > cap:
        logger.warning(
            "--max-concurrency %d exceeds what the open-file limit allows; using %d "
            "(raise it with `ulimit -n`)",
            requested,
            cap,
        )
        return cap
    return requested


def build_planner(
    config: RunConfig, ctx: PlannerContext, models: ModelPool, library: PromptLibrary
) -> Planner:
    if is_baseline(config.planner):
        return make_planner(config.planner, ctx)
    settings = PlannerPromptSettings(
        history_len=config.planner_history,
        best_len=config.planner_best,
        trust_region=config.trust_region,
        hints=config.planner_hints,
    )
    gen = GenerateConfig(max_tokens=160, temperature=config.planner_temperature, seed=config.seed)
    return LLMPlanner(models.get(config.planner, "planner"), ctx, library, settings, gen)


def build_workers(
    config: RunConfig,
    economy: Economy,
    source: PopulationSource,
    models: ModelPool,
    library: PromptLibrary,
) -> WorkerPool:
    if config.workers == "rational":
        return RationalWorkers(economy)
    assert config.workers is not None
    if source.personas is None:
        raise ConfigError(
            "workers: LLM workers need personas to play; use --personas default or a bank "
            "file (synthetic populations have no persona text)"
        )
    from llmecon.personas import persona_text

    try:
        texts = [persona_text(p, library) for p in source.personas]
    except PromptError as exc:
        raise ConfigError(f"prompts: {exc}") from None
    gen = GenerateConfig(
        max_tokens=60 if config.worker_reasons else 16,
        temperature=config.worker_temperature,
        seed=config.seed,
    )
    return LLMWorkers(
        models.get(config.workers, "workers"),
        economy,
        texts,
        library,
        style=config.worker_style,
        history_len=config.worker_history,
        reasons=config.worker_reasons,
        config=gen,
    )
