"""``anthropic/<model>`` (and bare ``claude-…``) through the official ``anthropic`` SDK.

The key comes from ``ANTHROPIC_API_KEY`` (also for a custom ``api_base``, which for
Anthropic is normally a gateway in front of the real API). Structured output is a forced
tool call: the schema is the tool's ``input_schema`` and the reply is the tool input.
"""

from __future__ import annotations

import json
import os
from typing import Any

from llmecon.models._config import GenerateConfig
from llmecon.models._errors import (
    AuthError,
    MissingKeyError,
    ModelTimeoutError,
    ProviderError,
    RateLimitError,
)
from llmecon.models._pricing import price_known
from llmecon.models._provider import (
    ModelProvider,
    PerLoopClients,
    ProviderResponse,
    parse_retry_after,
)
from llmecon.models._schema import StructuredSpec
from llmecon.models._types import ChatMessage, Usage

MISSING_ANTHROPIC_KEY = (
    "ANTHROPIC_API_KEY is not set: set ANTHROPIC_API_KEY or use --planner local/smollm2-135m"
)
#: Anthropic requires max_tokens on every request.
DEFAULT_MAX_TOKENS = 1024


class AnthropicProvider(ModelProvider):
    """The Messages API through ``anthropic.AsyncAnthropic`` (SDK retries off)."""

    provider_name = "anthropic"
    supports_native_schema = True
    default_max_concurrency = 32

    def __init__(self, model_name: str, api_base: str | None = None) -> None:
        super().__init__(model_name, api_base)
        self._clients: PerLoopClients[Any] = PerLoopClients(self._new_client)

    @property
    def prices_known(self) -> bool:
        return price_known(self.model_name)  # a gateway still bills Anthropic's prices

    def check_ready(self) -> None:
        if not os.environ.get("ANTHROPIC_API_KEY"):
            raise MissingKeyError(MISSING_ANTHROPIC_KEY)
        # Import now (~1 s, once per process) rather than inside the first request,
        # where it would eat into that request's timeout.
        import anthropic  # noqa: F401

    def _new_client(self) -> Any:
        import anthropic

        return anthropic.AsyncAnthropic(
            api_key=os.environ.get("ANTHROPIC_API_KEY"), base_url=self.api_base, max_retries=0
        )

    def _request_args(
        self, messages: list[ChatMessage], spec: StructuredSpec | None, config: GenerateConfig
    ) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        turns = [{"role": m.role, "content": m.content} for m in messages if m.role != "system"]
        args: dict[str, Any] = {
            "model": self.model_name,
            "messages": turns,
            "max_tokens": config.max_tokens or DEFAULT_MAX_TOKENS,
            "timeout": config.timeout_s,
        }
        if system:
            args["system"] = system
        optional = {
            "temperature": config.temperature,
            "top_p": config.top_p,
            "stop_sequences": config.stop,
        }
        args.update({k: v for k, v in optional.items() if v is not None})
        if spec is not None:
            args["tools"] = [
                {
                    "name": spec.name,
                    "description": f"Record the answer as a {spec.name} object.",
                    "input_schema": spec.json_schema,
                }
            ]
            args["tool_choice"] = {"type": "tool", "name": spec.name}
        return args

    async def generate(
        self, messages: list[ChatMessage], spec: StructuredSpec | None, config: GenerateConfig
    ) -> ProviderResponse:
        import anthropic

        where = f"anthropic/{self.model_name}"
        try:
            reply = await self._clients.get().messages.create(
                **self._request_args(messages, spec, config)
            )
        except anthropic.APIStatusError as exc:
            status = exc.status_code
            detail = _error_message(exc)
            if status in (401, 403):
                raise AuthError(
                    f"{where}: HTTP {status}: authentication failed ({detail}); "
                    "check ANTHROPIC_API_KEY"
                ) from None
            if status == 429:
                retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
                raise RateLimitError(
                    f"{where}: HTTP 429: {detail}", retry_after_s=retry_after
                ) from None
            raise ProviderError(
                f"{where}: HTTP {status}: {detail}",
                status=status,
                retryable=status >= 500 or status in (408, 409),  # incl. 529 overloaded
            ) from None
        except anthropic.APITimeoutError:
            raise ModelTimeoutError(f"{where}: request timed out") from None
        except anthropic.APIConnectionError as exc:
            raise ProviderError(
                f"{where}: connection failed ({type(exc).__name__})", retryable=True
            ) from None
        except (anthropic.APIResponseValidationError, ValueError) as exc:
            raise ProviderError(
                f"{where}: malformed response ({type(exc).__name__})", retryable=True
            ) from None
        return _to_response(reply, where)

    async def aclose(self) -> None:
        client = self._clients.pop_current()
        if client is not None:
            await client.close()


def _to_response(reply: Any, where: str) -> ProviderResponse:
    blocks = getattr(reply, "content", None)
    if not isinstance(blocks, list):
        raise ProviderError(f"{where}: response without content", retryable=True)
    text = ""
    for block in blocks:
        if getattr(block, "type", None) == "tool_use":
            text = json.dumps(block.input)
            break
        text += getattr(block, "text", "") or ""
    usage = getattr(reply, "usage", None)
    return ProviderResponse(
        text=text,
        usage=Usage(
            input_tokens=getattr(usage, "input_tokens", 0) or 0,
            output_tokens=getattr(usage, "output_tokens", 0) or 0,
        ),
    )


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
    return type(exc).__name__
