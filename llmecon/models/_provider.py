"""The provider interface: one small async method. Everything shared lives in ``Model``."""

from __future__ import annotations

import asyncio
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from llmecon.models._config import GenerateConfig
from llmecon.models._schema import StructuredSpec
from llmecon.models._types import ChatMessage, Usage


@dataclass
class ProviderResponse:
    """One attempt's reply, as the provider got it."""

    text: str
    usage: Usage | None = None
    cost_usd: float | None = None
    """Cost reported by the provider itself (litellm); else the price table is used."""


class ModelProvider(ABC):
    """A backend that can answer one chat request.

    Subclasses implement :meth:`generate` only: retries, timeouts, concurrency limits,
    re-asks, caching, accounting and redaction belong to :class:`llmecon.models.Model`.
    Raise :class:`~llmecon.models.ProviderError` (``retryable=True`` for transient
    faults), :class:`~llmecon.models.RateLimitError`, :class:`~llmecon.models.AuthError`
    or :class:`~llmecon.models.ModelTimeoutError`; never swallow cancellation.
    """

    #: registry name, e.g. ``"openai"``
    provider_name: str = ""
    #: whether :meth:`generate` can enforce a JSON schema natively
    supports_native_schema: bool = False
    #: concurrency limit per endpoint when the caller gives none
    default_max_concurrency: int = 16

    def __init__(self, model_name: str, api_base: str | None = None) -> None:
        self.model_name = model_name
        self.api_base = api_base

    @property
    def endpoint(self) -> str:
        """Identifies the endpoint that concurrency limits are shared over."""
        return f"{self.provider_name}|{self.api_base or 'default'}"

    @property
    def prices_known(self) -> bool:
        """False for endpoints whose price we cannot know (self-hosted servers)."""
        return self.api_base is None

    def check_ready(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Fail fast (missing key, missing extra) before any request is made."""

    @abstractmethod
    async def generate(
        self,
        messages: list[ChatMessage],
        spec: StructuredSpec | None,
        config: GenerateConfig,
    ) -> ProviderResponse:
        """Answer ``messages``; with ``spec``, constrain the reply natively (if supported)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release network clients opened on the running event loop."""

    def __repr__(self) -> str:
        base = f", api_base={self.api_base!r}" if self.api_base else ""
        return f"{type(self).__name__}({self.model_name!r}{base})"


ClientT = TypeVar("ClientT")


class PerLoopClients(Generic[ClientT]):
    """SDK clients are bound to the event loop they were created on: keep one per loop."""

    def __init__(self, factory: Callable[[], ClientT]) -> None:
        self._factory = factory
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ClientT] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> ClientT:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self._factory()
        return client

    def pop_current(self) -> ClientT | None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return self._clients.pop(loop, None)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` (or ``retry-after-ms``-converted) header value."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime
        from time import time

        try:
            seconds = parsedate_to_datetime(value).timestamp() - time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds)
