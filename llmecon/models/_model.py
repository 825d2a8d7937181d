"""``Model``: the wrapper that owns the machinery every provider shares.

Per request: a per-endpoint concurrency limit, a per-attempt timeout, retries with
exponential backoff and jitter on transient faults (honouring ``Retry-After``), and
fail-fast on auth errors. Per logical call: structured-output validation with bounded
re-asks, the reply-size cap, the optional on-disk cache, token and cost accounting, the
budget, and one :class:`CallRecord` handed to ``on_call``. Every reply is redacted as it
arrives (before it is parsed, re-sent or recorded) and every record again on its way out.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from llmecon.models._cache import ResponseCache, request_key
from llmecon.models._config import GenerateConfig
from llmecon.models._errors import (
    BudgetExceededError,
    ModelError,
    ModelTimeoutError,
    ProviderError,
    ReplyTooLongError,
    StructuredOutputError,
)
from llmecon.models._fleet import FleetProvider
from llmecon.models._pricing import cost_at
from llmecon.models._pricing import cost_usd as table_cost
from llmecon.models._provider import _ATTEMPT, ModelProvider, ProviderResponse
from llmecon.models._redact import logger, redact, redact_json
from llmecon.models._schema import (
    RepairPrompt,
    StructuredSpec,
    parse_structured,
    repair_messages,
    spec_for,
    with_schema_instruction,
)
from llmecon.models._types import CallRecord, ChatMessage, ModelOutput, Usage

#: ``on_call(record)``: invoked once per logical call, success or final failure.
OnCall = Callable[[CallRecord], None]
MessagesLike = Sequence[ChatMessage | dict[str, Any]]


class EndpointLimiter:
    """A concurrency limit shared by every model on one endpoint.

    asyncio semaphores belong to one event loop, so one is kept per loop.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._semaphores = weakref.WeakKeyDictionary()

    def semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._semaphores.get(loop)
        if sem is None:
            sem = self._semaphores[loop] = asyncio.Semaphore(self.limit)
        return sem


_LIMITERS: dict[str, EndpointLimiter] = {}


def endpoint_limiter(endpoint: str, limit: int | None, default: int) -> EndpointLimiter:
    """The limiter of ``endpoint``; an explicit ``limit`` applies to loops not yet using it."""
    limiter = _LIMITERS.get(endpoint)
    if limiter is None:
        limiter = _LIMITERS[endpoint] = EndpointLimiter(limit or default)
    elif limit is not None and limit != limiter.limit:
        limiter.limit = limit
        limiter._semaphores = weakref.WeakKeyDictionary()
    return limiter


class Model:
    """A model behind one async ``generate`` call; build it with :func:`get_model`."""

    def __init__(
        self,
        provider: ModelProvider,
        *,
        config: GenerateConfig | None = None,
        max_concurrency: int | None = None,
        cache_dir: str | None = None,
        on_call: OnCall | None = None,
    ) -> None:
        self.provider = provider
        self.config = config or GenerateConfig()
        self.on_call = on_call
        #: renders the user text of a re-ask from the validation error (default: built in)
        self.repair_prompt: RepairPrompt | None = None
        self.cache = ResponseCache(cache_dir) if cache_dir else None
        if max_concurrency is None and isinstance(provider, FleetProvider):
            max_concurrency = provider.capacity  # the sum of its endpoints' capacities
        self.limiter = endpoint_limiter(
            provider.endpoint, max_concurrency, provider.default_max_concurrency
        )
        self._rng = random.Random()
        #: running accounting (non-cached attempts only)
        self.usage_total = Usage()
        self.cost_total = 0.0
        """USD spent by calls whose price is known."""
        self.cost_unknown_calls = 0
        """Calls whose price is unknown (their cost is not in ``cost_total``)."""
        self.calls = 0
        self.failures = 0
        self.retries_total = 0
        self.repairs_total = 0
        self.cache_hits = 0
        self.max_cost_usd: float | None = None
        self.hard_limit_usd: float | None = None
        self.price_override: tuple[float, float] | None = None
        """``(input, output)`` USD per 1M tokens set with :meth:`set_price`."""

    @property
    def name(self) -> str:
        """Full model name, ``<provider>/<model>``."""
        return f"{self.provider.provider_name}/{self.provider.model_name}"

    def __repr__(self) -> str:
        return f"Model({self.name!r}, provider={self.provider!r})"

    # -- budget ---------------------------------------------------------------------
    def set_budget(
        self, max_cost_usd: float | None, *, hard_limit_usd: float | None = None
    ) -> None:
        """Spending limits in USD.

        ``max_cost_usd`` is soft: :attr:`budget_exceeded` turns true once it is reached and
        the run loop stops at the next year boundary. ``hard_limit_usd`` (optional) makes
        every further call raise :class:`BudgetExceededError`.
        """
        self.max_cost_usd, self.hard_limit_usd = max_cost_usd, hard_limit_usd

    @property
    def budget_exceeded(self) -> bool:
        return self.max_cost_usd is not None and self.cost_total >= self.max_cost_usd

    def set_price(self, input_per_mtok: float, output_per_mtok: float) -> None:
        """Price every call at these USD per million input / output tokens.

        Overrides the price map and any cost the provider reports (e.g. a self-hosted or
        brand-new model, so that a budget can be enforced). Cache hits still cost 0.
        """
        if input_per_mtok < 0 or output_per_mtok < 0:
            raise ValueError("prices must be non-negative (USD per million tokens)")
        self.price_override = (float(input_per_mtok), float(output_per_mtok))

    @property
    def price_known(self) -> bool:
        """Whether calls are priced (so a budget can be enforced): a :meth:`set_price`
        override, or a provider whose cost is known (mock and local cost 0; hosted
        models in litellm's price map)."""
        return self.price_override is not None or self.provider.prices_known

    # -- the call -------------------------------------------------------------------
    async def generate(
        self,
        messages: MessagesLike,
        schema: type[BaseModel] | None = None,
        config: GenerateConfig | None = None,
    ) -> ModelOutput:
        """Answer ``messages``; with ``schema``, return a validated instance in ``parsed``.

        Raises a :class:`ModelError` subclass after the bounded retries / re-asks:
        :class:`StructuredOutputError`, :class:`ModelTimeoutError`, :class:`RateLimitError`,
        :class:`ProviderError`, :class:`AuthError`, :class:`MissingKeyError` or
        :class:`BudgetExceededError`.
        """
        started_at, t0 = time.time(), time.perf_counter()
        cfg = self.config.merged(config)
        msgs = [
            m if isinstance(m, ChatMessage) else ChatMessage.model_validate(m) for m in messages
        ]
        spec = spec_for(schema) if schema is not None else None
        native = (
            spec is not None
            and cfg.structured_output != "prompt"
            and self.provider.supports_native_schema
        )
        state = _CallState(started_at=started_at)
        record = CallRecord(
            model=self.name,
            provider=self.provider.provider_name,
            messages=msgs,
            schema_name=spec.name if spec else None,
            started_at=started_at,
        )
        try:
            self._check_budget()
            key = self._cache_key(msgs, spec, native, cfg) if self.cache else None
            output = self._from_cache(key, spec) if key else None
            if output is None:
                output = await self._generate(msgs, spec, native, cfg, state)
                if key and self.cache:
                    self.cache.put(key, _cache_entry(output))
        except ModelError as exc:
            self._finish(record, state, t0, error=exc)
            raise
        output.latency_s = time.perf_counter() - t0
        self._finish(record, state, t0, output=output)
        return output

    async def _generate(
        self,
        msgs: list[ChatMessage],
        spec: StructuredSpec | None,
        native: bool,
        cfg: GenerateConfig,
        state: _CallState,
    ) -> ModelOutput:
        base = msgs if (spec is None or native) else with_schema_instruction(msgs, spec)
        convo = base
        while True:
            # Attempt k's reply becomes raw_outputs[k]; a provider answering from a
            # recording (replay, resume) reads k with current_attempt().
            attempt = _ATTEMPT.set(len(state.raw_outputs))
            try:
                response = await self._request(convo, spec if native else None, cfg, state)
            finally:
                _ATTEMPT.reset(attempt)
            text = self._received(response.text, cfg, state)
            if spec is None:
                return state.output(self.name, text, None)
            parsed, error = parse_structured(text, spec)
            if parsed is not None:
                return state.output(self.name, text, parsed)
            assert error is not None
            state.errors.append(error)
            if state.repairs >= cfg.max_repairs:
                raise StructuredOutputError(
                    f"{self.name}: reply did not match schema {spec.name} after "
                    f"{state.repairs} re-asks: {error}",
                    raw_outputs=state.raw_outputs,
                    errors=state.errors,
                )
            state.repairs += 1
            state.retries += 1
            # Re-ask with only the latest bad reply, so the prompt stays short.
            convo = base + repair_messages(text, error, self.repair_prompt)

    def _received(self, text: str, cfg: GenerateConfig, state: _CallState) -> str:
        """Take in one reply: redacted first, so no secret a server echoes reaches the
        parser, a re-ask or a record (and a replay parses exactly the recorded text);
        then capped: a reply over ``max_reply_chars`` fails the call, recorded truncated."""
        clean = redact(text)
        if len(clean) > cfg.max_reply_chars:
            state.raw_outputs.append(truncate_reply(clean, cfg.max_reply_chars, len(text)))
            raise ReplyTooLongError(
                f"{self.name}: reply of {len(text)} chars is longer than max_reply_chars="
                f"{cfg.max_reply_chars} (not retried)",
                chars=len(text),
                limit=cfg.max_reply_chars,
            )
        state.raw_outputs.append(clean)
        return clean

    async def _request(
        self,
        messages: list[ChatMessage],
        spec: StructuredSpec | None,
        cfg: GenerateConfig,
        state: _CallState,
    ) -> ProviderResponse:
        """One provider request with the timeout, concurrency limit and retries."""
        attempt = 0
        while True:
            error: ModelError
            # A fleet picks the endpoint here (and waits for a free one).
            slot = self.provider.reserve()
            try:
                # The timeout starts once the request holds a slot: it measures the
                # request, not the wait for the endpoint's concurrency limit.
                async with self.limiter.semaphore(), slot:
                    async with asyncio.timeout(cfg.timeout_s):
                        response = await self.provider.generate(messages, spec, cfg)
                state.endpoint = response.endpoint or getattr(slot, "endpoint", None)
                self._account(response, state)
                return response
            except TimeoutError as exc:
                # A provider may note on the cancellation what stopping the request did.
                notes = getattr(exc.__cause__, "__notes__", None) or []
                detail = f" ({'; '.join(map(str, notes))})" if notes else ""
                error = ModelTimeoutError(
                    f"{self.name}: no reply within {cfg.timeout_s:g} s{detail}"
                )
            except ModelError as exc:
                if not exc.retryable:
                    raise
                error = exc
            except Exception as exc:  # an SDK error the provider did not map: never retried
                raise ProviderError(
                    f"{self.name}: unexpected {type(exc).__name__}: {redact(str(exc))[:500]}"
                ) from None
            finally:
                state.endpoint = getattr(slot, "endpoint", None) or state.endpoint
            if attempt >= cfg.max_retries:
                raise _gave_up(error, attempt)
            # A fleet took the failed endpoint out and another one can take the retry:
            # no reason to wait.
            failover = bool(getattr(slot, "failover", False))
            delay = 0.0 if failover else self._backoff(attempt, error, cfg)
            logger.info(
                "%s: %s; retry %d/%d in %.2f s",
                self.name,
                error.message,
                attempt + 1,
                cfg.max_retries,
                delay,
            )
            attempt += 1
            state.retries += 1
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int, error: ModelError, cfg: GenerateConfig) -> float:
        """Exponential backoff with jitter; a Retry-After is honoured (capped)."""
        ceiling = min(cfg.backoff_max_s, cfg.backoff_base_s * 2**attempt)
        delay = self._rng.uniform(ceiling / 2, ceiling)
        retry_after = getattr(error, "retry_after_s", None)
        if retry_after is not None:
            wait = min(retry_after, cfg.retry_after_max_s)
            # At least what the server asked for, plus a little jitter so that many
            # clients told the same instant do not come back in lockstep.
            delay = wait + self._rng.uniform(0, 0.1 * wait + 0.01)
        return delay

    def _account(self, response: ProviderResponse, state: _CallState) -> None:
        usage = response.usage or Usage()
        state.usage = state.usage + usage
        if self.price_override is not None:
            cost: float | None = cost_at(self.price_override, usage)
        else:
            cost = response.cost_usd
            if cost is None and self.provider.prices_known:
                cost = table_cost(self.provider.model_name, usage)
        if cost is None:
            state.cost_known = False
        else:
            state.cost += cost

    def _check_budget(self) -> None:
        if self.hard_limit_usd is not None and self.cost_total >= self.hard_limit_usd:
            raise BudgetExceededError(
                f"{self.name}: spent ${self.cost_total:.4f}, hard limit ${self.hard_limit_usd:.4f}"
            )

    # -- cache ----------------------------------------------------------------------
    def _cache_key(
        self,
        msgs: list[ChatMessage],
        spec: StructuredSpec | None,
        native: bool,
        cfg: GenerateConfig,
    ) -> str:
        settings = cfg.model_dump(
            include={"temperature", "top_p", "max_tokens", "seed", "stop", "max_repairs"}
        )
        return request_key(
            {
                "model": self.name,
                "api_base": self.provider.api_base,
                "messages": [m.model_dump() for m in msgs],
                "schema": spec.json_schema if spec else None,
                "native": native,
                "settings": settings,
            }
        )

    def _from_cache(self, key: str, spec: StructuredSpec | None) -> ModelOutput | None:
        assert self.cache is not None
        entry = self.cache.get(key)
        if entry is None:
            return None
        text = redact(str(entry.get("text", "")))  # an entry written before redaction
        parsed = None
        if spec is not None:
            parsed, _ = parse_structured(text, spec)
            if parsed is None:  # the schema changed under the same name: ignore the entry
                return None
        self.cache_hits += 1
        return ModelOutput(
            model=self.name,
            text=text,
            parsed=parsed,
            usage=Usage.model_validate(entry.get("usage", {})),
            cost_usd=0.0,
            cached=True,
            repairs=int(entry.get("repairs", 0)),
            raw_outputs=redact_json(list(entry.get("raw_outputs", []))),
        )

    # -- bookkeeping ----------------------------------------------------------------
    def _finish(
        self,
        record: CallRecord,
        state: _CallState,
        t0: float,
        *,
        output: ModelOutput | None = None,
        error: ModelError | None = None,
    ) -> None:
        self.calls += 1
        self.retries_total += state.retries
        self.repairs_total += state.repairs
        if not (output and output.cached):
            self.usage_total = self.usage_total + state.usage
            if state.cost_known:
                self.cost_total += state.cost
            elif state.usage.total_tokens or state.raw_outputs:
                self.cost_unknown_calls += 1
        record.latency_s = time.perf_counter() - t0
        record.retries, record.repairs = state.retries, state.repairs
        # Model output is untrusted text bound for files: redact every string of it.
        if output is not None:
            record.raw_outputs = redact_json(output.raw_outputs)
            record.text = redact(output.text)
            record.usage = output.usage
            record.cached = output.cached
            record.cost_usd = output.cost_usd
            if isinstance(output.parsed, BaseModel):
                record.parsed = redact_json(output.parsed.model_dump(mode="json"))
        else:
            self.failures += 1
            record.raw_outputs = redact_json(state.raw_outputs)
            record.usage = state.usage
            record.cost_usd = state.cost if state.cost_known else None
            record.error_type = type(error).__name__
            record.error_message = redact(str(error))
        record.endpoint = state.endpoint
        if self.on_call is not None:
            self.on_call(record)

    async def aclose(self) -> None:
        """Close the provider's network clients opened on the running loop."""
        await self.provider.aclose()


class _CallState:
    """Mutable tallies of one logical call."""

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self.raw_outputs: list[str] = []
        self.errors: list[str] = []
        self.usage = Usage()
        self.cost = 0.0
        self.cost_known = True
        self.retries = 0
        self.repairs = 0
        #: the endpoint that served (or last failed) a request, when the provider says
        self.endpoint: str | None = None

    def output(self, model: str, text: str, parsed: BaseModel | None) -> ModelOutput:
        return ModelOutput(
            model=model,
            text=text,
            parsed=parsed,
            usage=self.usage,
            cost_usd=self.cost if self.cost_known else None,
            retries=self.retries,
            repairs=self.repairs,
            raw_outputs=list(self.raw_outputs),
            endpoint=self.endpoint,
        )


def _cache_entry(output: ModelOutput) -> dict[str, Any]:
    return {
        "text": output.text,
        "usage": output.usage.model_dump(),
        "repairs": output.repairs,
        "raw_outputs": output.raw_outputs,
    }


_TRUNCATED = re.compile(r"…\[truncated: \d+ chars\]")


def truncate_reply(text: str, limit: int, chars: int) -> str:
    """``text`` cut to ``limit`` characters plus ``…[truncated: <chars> chars]``.

    A reply that already is such a truncation at this limit (a replayed one) is kept as
    is, so a resumed log records the original length.
    """
    if _TRUNCATED.fullmatch(text, limit):
        return text
    return f"{text[:limit]}…[truncated: {chars} chars]"


def _gave_up(error: ModelError, retries: int) -> ModelError:
    if retries:
        error.message = f"{error.message} (gave up after {retries} retries)"
        error.args = (error.message,)
    return error
