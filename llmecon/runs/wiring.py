"""Build a run's parts from its config: population, economy, models, planner, workers."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmecon.agents import RationalWorkers, WorkerPool
from llmecon.agents.llm_planner import LLMPlanner
from llmecon.agents.llm_workers import LLMWorkers
from llmecon.agents.prompting import PlannerPromptSettings
from llmecon.economy import Economy, Population, UtilityConfig, synthetic_population
from llmecon.models import GenerateConfig, Model, ModelError, get_model
from llmecon.planners import Planner, PlannerContext, is_baseline, make_planner
from llmecon.prompts import PromptError, PromptLibrary
from llmecon.runs.config import ConfigError, RunConfig
from llmecon.runs.recorded import RecordedCalls, ReplayProvider

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
    """One :class:`Model` per distinct model name (planner and workers share it).

    With ``recorded`` calls (replay, resume, fork) every model answers from the log;
    with ``live`` too, calls with no recording go on to the real model.
    """

    def __init__(
        self,
        config: RunConfig,
        on_call: Callable[[Any], None],
        recorded: RecordedCalls | None = None,
        live: bool = False,
    ) -> None:
        self.config = config
        self.on_call = on_call
        self.recorded = recorded
        self.live = live
        self.models: dict[str, Model] = {}
        #: renders re-asks with ``prompts/repair.j2`` (set by the simulation)
        self.repair_prompt: Callable[[str], str] | None = None

    def get(self, name: str, role: str) -> Model:
        if name not in self.models:
            try:
                if self.recorded is not None and not self.live:
                    model = Model(ReplayProvider(name, self.recorded), on_call=self.on_call)
                else:
                    model = get_model(
                        name,
                        api_base=self.config.api_base,
                        max_concurrency=self.config.max_concurrency,
                        cache_dir=self.config.cache_dir,
                        on_call=self.on_call,
                    )
                    if self.recorded is not None:
                        provider = ReplayProvider(name, self.recorded, live=model.provider)
                        model = Model(
                            provider,
                            config=model.config,
                            max_concurrency=self.config.max_concurrency,
                            on_call=self.on_call,
                        )
            except ModelError as exc:
                raise ConfigError(f"{role}: {exc}") from None
            if self.config.max_cost is not None:
                model.set_budget(self.config.max_cost)
            if self.repair_prompt is not None:
                model.repair_prompt = self.repair_prompt
            self.models[name] = model
        return self.models[name]

    @property
    def budget_exceeded(self) -> bool:
        return any(m.budget_exceeded for m in self.models.values())

    def totals(self) -> dict[str, Any]:
        """Calls, tokens, cost (``None`` if any call's price was unknown), failures."""
        models = list(self.models.values())
        unknown = any(m.cost_unknown_calls for m in models)
        return {
            "calls": sum(m.calls for m in models),
            "input_tokens": sum(m.usage_total.input_tokens for m in models),
            "output_tokens": sum(m.usage_total.output_tokens for m in models),
            "cost_usd": None if unknown else round(sum(m.cost_total for m in models), 6),
            "failures": sum(m.failures for m in models),
        }

    async def aclose(self) -> None:
        for model in self.models.values():
            await model.aclose()


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
