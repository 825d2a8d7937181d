"""A request's timeout measures the request, not its wait for the endpoint's limit.

The embedded model answers one request at a time, so its calls queue; before, their
timeout ran while they queued and a busy run timed out calls that never started.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from llmecon.models import ChatMessage, GenerateConfig, Model, ModelTimeoutError
from llmecon.models._local import LocalProvider
from llmecon.models._provider import ModelProvider, ProviderResponse
from llmecon.models._schema import StructuredSpec

_ENDPOINTS = itertools.count()


class SlowProvider(ModelProvider):
    """Answers after ``delay_s``; records the most requests it saw at once."""

    provider_name = "slow"

    def __init__(self, delay_s: float) -> None:
        super().__init__("slow")
        self.delay_s = delay_s
        self.in_flight = 0
        self.most_in_flight = 0
        # A fresh endpoint per instance: limits are shared per endpoint, process-wide.
        self._endpoint = f"slow|test-{next(_ENDPOINTS)}"

    @property
    def endpoint(self) -> str:
        return self._endpoint

    async def generate(
        self, messages: list[ChatMessage], spec: StructuredSpec | None, config: GenerateConfig
    ) -> ProviderResponse:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        return ProviderResponse(text="ok", cost_usd=0.0)


def _calls(model: Model, n: int, config: GenerateConfig) -> list[object]:
    async def main() -> list[object]:
        return await asyncio.gather(
            *[
                model.generate([ChatMessage(role="user", content=f"call {i}")], config=config)
                for i in range(n)
            ],
            return_exceptions=True,
        )

    return asyncio.run(main())


def test_queued_calls_do_not_time_out_while_waiting_for_a_slot() -> None:
    # 4 × 0.3 s one at a time = 1.2 s in all; each request alone fits in 1 s.
    provider = SlowProvider(delay_s=0.3)
    model = Model(provider, max_concurrency=1)
    config = GenerateConfig(timeout_s=1.0, max_retries=0)
    t0 = time.perf_counter()
    results = _calls(model, 4, config)
    wall = time.perf_counter() - t0
    assert [getattr(r, "text", r) for r in results] == ["ok"] * 4
    assert provider.most_in_flight == 1
    assert wall > config.timeout_s  # so the last call queued longer than its timeout allows
    assert model.failures == 0 and model.retries_total == 0


def test_a_request_longer_than_its_timeout_still_times_out() -> None:
    provider = SlowProvider(delay_s=2.0)
    model = Model(provider, max_concurrency=1)
    results = _calls(model, 2, GenerateConfig(timeout_s=0.3, max_retries=0))
    assert all(isinstance(r, ModelTimeoutError) for r in results)
    assert "no reply within 0.3 s" in str(results[0])


def test_the_local_model_queues_outside_its_timeout() -> None:
    """One request at a time per child: its default limit is 1, so a call waits for the
    child at the endpoint's limit, where the timeout is not yet running."""
    assert LocalProvider.default_max_concurrency == 1


class NotingProvider(SlowProvider):
    """Never answers in time; says what stopping it did, as the local provider does."""

    async def generate(
        self, messages: list[ChatMessage], spec: StructuredSpec | None, config: GenerateConfig
    ) -> ProviderResponse:
        try:
            return await super().generate(messages, spec, config)
        except asyncio.CancelledError as exc:
            exc.add_note("generation cancelled; the worker was stopped")
            raise


def test_the_timeout_message_says_what_cancelling_did() -> None:
    model = Model(NotingProvider(delay_s=30.0))
    (error,) = _calls(model, 1, GenerateConfig(timeout_s=0.2, max_retries=0))
    assert isinstance(error, ModelTimeoutError)
    assert str(error).endswith(
        "no reply within 0.2 s (generation cancelled; the worker was stopped)"
    )
