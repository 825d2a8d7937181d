"""Providers registered by name, and ``get_model`` which resolves a model string."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from llmecon._plugins import guard_registry, is_llmecon_code
from llmecon.models._config import GenerateConfig
from llmecon.models._errors import ModelError, UnknownModelError
from llmecon.models._fleet import ApiBase, build_fleet, endpoint_specs
from llmecon.models._model import Model, OnCall
from llmecon.models._provider import ModelProvider
from llmecon.models._redact import check_base_url

#: ``factory(model_name, api_base, **provider_args) -> ModelProvider``
ProviderFactory = Callable[..., ModelProvider]

_PROVIDERS: dict[str, ProviderFactory | str] = {
    # "module:Class" entries are imported on first use, keeping SDK imports lazy.
    "openai": "llmecon.models._openai:OpenAIProvider",
    "anthropic": "llmecon.models._anthropic:AnthropicProvider",
    "litellm": "llmecon.models._litellm:LiteLLMProvider",
    "local": "llmecon.models._local:LocalProvider",
    "mock": "llmecon.models._mock:MockProvider",
    "scripted": "llmecon.agents.scripted:ScriptedProvider",  # test model (docs/agents.md)
}

#: Shorthands that are a full model string on their own.
ALIASES: dict[str, str] = {
    "local": "local/smollm2-135m",
    "smollm2-135m": "local/smollm2-135m",
    "mock": "mock/default",
}

#: The providers llmecon ships.
_BUILTIN = frozenset(_PROVIDERS)
guard_registry("provider", lambda: _PROVIDERS)  # plug-ins never overwrite a name

_OPENAI_PREFIXES = ("gpt-", "chatgpt-", "o1", "o3", "o4")


def register_provider(name: str, factory: ProviderFactory | str, *, replace: bool = False) -> None:
    """Register ``factory`` (or a lazy ``"module:attr"`` path) under ``name``.

    ``get_model(f"{name}/<model>")`` then calls ``factory(model, api_base, **provider_args)``.

    Raises:
        ValueError: the name is empty or has a ``/``, or it is a built-in provider's and
            ``replace`` is false.
    """
    if not name or "/" in name:
        raise ValueError(f"invalid provider name {name!r}")
    if name in _BUILTIN and not replace:
        raise ValueError(
            f"{name!r} is a built-in provider: register yours under another name "
            "(or pass replace=True)"
        )
    _PROVIDERS[name] = factory


def provider_names() -> list[str]:
    """Registered providers (built-in and plug-ins), sorted."""
    _load_plugins()
    return sorted(_PROVIDERS)


#: Whether the ``llmecon.providers`` entry points were loaded (once, on first use).
_plugins_loaded = False


def _load_plugins() -> None:
    """Register the providers of the ``llmecon.providers`` entry points, once.

    An entry point loads either a module whose import called :func:`register_provider`,
    or a provider factory (``factory(model, api_base, **provider_args)``, e.g. a
    :class:`ModelProvider` subclass), registered under the entry point's name. A
    plug-in that fails, or whose name is taken, is skipped with a warning; names its
    import registered over earlier ones are put back
    (:func:`~llmecon._plugins.register_entry_points`).
    """
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from llmecon._plugins import register_entry_points

    register_entry_points(
        "llmecon.providers",
        lambda: _PROVIDERS,
        "a provider factory",
        callable,
        lambda name, factory, _ep: register_provider(name, factory),
    )


def resolve_model_name(name: str, api_base: str | None = None) -> tuple[str, str]:
    """``(provider, model)`` for a model string.

    ``provider/model`` is taken as is; bare ``gpt-…``/``o1…``/``o3…``/``o4…`` resolve to
    ``openai``, ``claude-…`` to ``anthropic``; any other bare name with ``api_base`` is
    an OpenAI-compatible server (vLLM, Ollama, llama.cpp server).
    """
    _load_plugins()
    name = ALIASES.get(name.strip(), name.strip())
    if not name:
        raise UnknownModelError("empty model name")
    provider, sep, model = name.partition("/")
    if sep and provider in _PROVIDERS:
        if not model:
            raise UnknownModelError(f"model string {name!r} names no model after '{provider}/'")
        return provider, model
    if name.startswith(_OPENAI_PREFIXES):
        return "openai", name
    if name.startswith("claude-"):
        return "anthropic", name
    if api_base:
        return "openai", name
    if sep and provider and model:  # a provider's name no registry holds: a plug-in's?
        raise UnknownModelError(
            f"unknown model {name!r}: no provider {provider!r} is registered here (a "
            "plug-in's provider needs its package installed, with its llmecon.providers "
            f"entry point); providers: {', '.join(provider_names())}; or pass --api-base "
            "for an OpenAI-compatible server"
        )
    raise UnknownModelError(
        f"unknown model {name!r}: use <provider>/<model> with a provider among "
        f"{', '.join(provider_names())}, or pass --api-base for an OpenAI-compatible server"
    )


def takes_run_wide_base(name: str) -> bool:
    """Whether a run's run-wide ``--api-base`` (an OpenAI-compatible server) applies to
    the model ``name``: not to an in-process model, nor to one whose provider speaks its
    own API and would send its own key there (``claude-…``: its provider's
    ``takes_run_wide_base``). ``True`` for a name no provider knows, so that building
    it says why."""
    try:
        provider, _ = resolve_model_name(name, api_base="given")
    except UnknownModelError:
        return True
    factory = _factory(provider)
    return not getattr(factory, "in_process", False) and getattr(
        factory, "takes_run_wide_base", True
    )


def runs_in_process(name: str) -> bool:
    """Whether the model ``name`` is served inside this process (its provider's
    ``in_process``): such a model takes no ``api_base``. ``False`` for unknown names."""
    try:
        provider, _ = resolve_model_name(name)
    except UnknownModelError:
        return False
    return bool(getattr(_factory(provider), "in_process", False))


def _factory(provider: str) -> ProviderFactory:
    entry = _PROVIDERS[provider]
    if isinstance(entry, str):
        module, attr = entry.split(":")
        entry = getattr(importlib.import_module(module), attr)
        assert callable(entry)
        _PROVIDERS[provider] = entry
    return entry


def get_model(
    name: str,
    *,
    api_base: ApiBase = None,
    config: GenerateConfig | None = None,
    max_concurrency: int | None = None,
    cache_dir: str | None = None,
    on_call: OnCall | None = None,
    **provider_args: Any,
) -> Model:
    """A :class:`Model` for ``name`` (e.g. ``mock/default``, ``local/smollm2-135m``,
    ``gpt-4o``, ``anthropic/claude-sonnet-4-5``, ``litellm/<litellm model>``).

    Fails fast (:class:`MissingKeyError`, :class:`LocalModelUnavailableError`) before any
    request. ``provider_args`` go to the provider (e.g. ``outputs=`` or ``responder=`` for
    ``mock``, ``n_ctx=`` for ``local``).

    ``api_base``: one base URL, or a list of them (strings or
    :class:`~llmecon.models.EndpointSpec` / ``{"url", "max_concurrency"}`` mappings):
    two or more make an endpoint fleet (:class:`~llmecon.models.FleetProvider`), each
    endpoint with ``max_concurrency`` slots unless it names its own; the model's
    concurrency limit is then the fleet's total.
    """
    specs = endpoint_specs(api_base)
    for spec in specs:
        check_base_url(spec.url)  # localhost:8000/v1: say so now, not at the first call
    first = specs[0].url if specs else None
    provider_name, model_name = resolve_model_name(name, first)
    factory = _factory(provider_name)
    if len(specs) > 1 and getattr(factory, "in_process", False):
        raise UnknownModelError(
            f"{name} runs in this process: it takes no server URLs (got {len(specs)})"
        )
    try:
        if len(specs) > 1:
            fleet = build_fleet(factory, model_name, specs, max_concurrency, **provider_args)
            provider: ModelProvider = fleet
            max_concurrency = fleet.capacity
        else:
            if specs and specs[0].max_concurrency is not None:  # the endpoint's own
                max_concurrency = specs[0].max_concurrency
            provider = factory(model_name, first, **provider_args)
        provider.check_ready()
    except Exception as exc:  # a plug-in's own bug: named, one line, not a traceback
        if isinstance(exc, ModelError | ValueError) or is_llmecon_code(factory):
            raise
        raise ModelError(
            f"{name}: the provider plug-in {provider_name!r} ({factory.__module__}) failed to "
            f"set up the model: {type(exc).__name__}: {exc}"
        ) from exc
    return Model(
        provider,
        config=config,
        max_concurrency=max_concurrency,
        cache_dir=cache_dir,
        on_call=on_call,
    )
