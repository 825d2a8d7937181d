"""``openai/<model>`` and OpenAI-compatible servers (``--api-base``: vLLM, Ollama,
llama.cpp server), through the official ``openai`` SDK (imported lazily).

Keys: ``OPENAI_API_KEY`` for api.openai.com. A self-hosted ``api_base`` gets
``LLMECON_API_KEY`` if set, else a placeholder: your OpenAI key is never sent to a
third-party host.

Structured output: OpenAI ``response_format={"type": "json_schema", ...}``. Servers that
reject it (llama.cpp server only knows ``{"type": "json_object", "schema": ...}``) are
switched to that dialect, then to prompt + parse, after one 400/422 reply.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

from llmecon.models._config import GenerateConfig
from llmecon.models._errors import (
    AuthError,
    MissingKeyError,
    ModelTimeoutError,
    ProviderError,
    RateLimitError,
)
from llmecon.models._provider import ModelProvider, PerLoopClients, ProviderResponse, parse_retry_after
from llmecon.models._schema import StructuredSpec, with_schema_instruction
from llmecon.models._types import ChatMessage, Usage

MISSING_OPENAI_KEY = (
    "OPENAI_API_KEY is not set: set OPENAI_API_KEY or use --planner local/smollm2-135m"
)
#: structured-output dialects tried in order against a self-hosted server
_DIALECTS = ("json_schema", "json_object_schema", "prompt")


def is_openai_host(api_base: str | None) -> bool:
    return api_base is None or (urlparse(api_base).hostname or "").endswith("api.openai.com")


class OpenAIProvider(ModelProvider):
    """Chat Completions through ``openai.AsyncOpenAI`` (SDK retries off: ``Model`` retries)."""

    provider_name = "openai"
    supports_native_schema = True
    default_max_concurrency = 64

    def __init__(
        self, model_name: str, api_base: str | None = None, *, schema_dialect: str | None = None
    ) -> None:
        super().__init__(model_name, api_base)
        if schema_dialect is not None and schema_dialect not in _DIALECTS:
            raise ValueError(f"schema_dialect must be one of {_DIALECTS}")
        self._dialect = schema_dialect or "json_schema"
        self._dialect_fixed = schema_dialect is not None or is_openai_host(api_base)
        self._clients: PerLoopClients[Any] = PerLoopClients(self._new_client)

    @property
    def prices_known(self) -> bool:
        return is_openai_host(self.api_base)

    def _key_env(self) -> str:
        return "OPENAI_API_KEY" if is_openai_host(self.api_base) else "LLMECON_API_KEY"

    def check_ready(self) -> None:
        if is_openai_host(self.api_base) and not os.environ.get("OPENAI_API_KEY"):
            raise MissingKeyError(MISSING_OPENAI_KEY)

    def _new_client(self) -> Any:
        import openai

        key = os.environ.get(self._key_env()) or "not-needed"
        return openai.AsyncOpenAI(api_key=key, base_url=self.api_base, max_retries=0)

    def _request_args(
        self, messages: list[ChatMessage], spec: StructuredSpec | None, config: GenerateConfig
    ) -> dict[str, Any]:
        if spec is not None and self._dialect == "prompt":
            messages, spec = with_schema_instruction(messages, spec), None
        args: dict[str, Any] = {
            "model": self.model_name,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "timeout": config.timeout_s,
        }
        optional = {
            "temperature": config.temperature,
            "top_p": config.top_p,
            "seed": config.seed,
            "stop": config.stop,
        }
        args.update({k: v for k, v in optional.items() if v is not None})
        if config.max_tokens is not None:
            # api.openai.com's newer models only accept max_completion_tokens.
            name = "max_completion_tokens" if is_openai_host(self.api_base) else "max_tokens"
            args[name] = config.max_tokens
        if spec is not None:
            if self._dialect == "json_schema":
                args["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": spec.name, "schema": spec.json_schema, "strict": False},
                }
            else:
                args["response_format"] = {"type": "json_object", "schema": spec.json_schema}
        return args

    async def generate(
        self, messages: list[ChatMessage], spec: StructuredSpec | None, config: GenerateConfig
    ) -> ProviderResponse:
        import openai

        client = self._clients.get()
        while True:
            try:
                completion = await client.chat.completions.create(
                    **self._request_args(messages, spec, config)
                )
                break
            except openai.APIStatusError as exc:
                status = exc.status_code
                if spec is not None and status in (400, 422) and not self._dialect_fixed:
                    if self._next_dialect():
                        continue
                raise _map_status_error(exc, self.model_name) from None
            except openai.APITimeoutError:
                raise ModelTimeoutError(f"openai/{self.model_name}: request timed out") from None
            except openai.APIConnectionError as exc:
                raise ProviderError(
                    f"openai/{self.model_name}: connection failed ({type(exc).__name__})",
                    retryable=True,
                ) from None
            except (openai.APIResponseValidationError, ValueError) as exc:
                raise ProviderError(
                    f"openai/{self.model_name}: malformed response ({type(exc).__name__})",
                    retryable=True,
                ) from None
        return _to_response(completion, self.model_name)

    def _next_dialect(self) -> bool:
        position = _DIALECTS.index(self._dialect)
        if position + 1 >= len(_DIALECTS):
            return False
        self._dialect = _DIALECTS[position + 1]
        return True

    async def aclose(self) -> None:
        client = self._clients.pop_current()
        if client is not None:
            await client.close()


def _to_response(completion: Any, model: str) -> ProviderResponse:
    choices = getattr(completion, "choices", None)
    if not choices:
        # e.g. a server that answered 200 with a body the SDK could not parse into a model
        raise ProviderError(f"openai/{model}: response without choices", retryable=True)
    text = choices[0].message.content or ""
    usage = None
    if completion.usage is not None:
        usage = Usage(
            input_tokens=completion.usage.prompt_tokens or 0,
            output_tokens=completion.usage.completion_tokens or 0,
        )
    return ProviderResponse(text=text, usage=usage)


def _map_status_error(exc: Any, model: str) -> Exception:
    """An ``openai.APIStatusError`` as one of our typed (redacted) errors."""
    status = exc.status_code
    detail = _error_message(exc)
    where = f"openai/{model}: HTTP {status}"
    if status in (401, 403):
        return AuthError(f"{where}: authentication failed ({detail}); check the API key")
    if status == 429:
        headers = exc.response.headers
        retry_after = parse_retry_after(headers.get("retry-after"))
        if retry_after is None and headers.get("retry-after-ms"):
            retry_after = (parse_retry_after(headers.get("retry-after-ms")) or 0.0) / 1000
        return RateLimitError(f"{where}: {detail}", retry_after_s=retry_after)
    return ProviderError(
        f"{where}: {detail}", status=status, retryable=status >= 500 or status in (408, 409)
    )


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
    return type(exc).__name__
