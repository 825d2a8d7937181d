"""Generation settings: one pydantic model, every field documented."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GenerateConfig(BaseModel):
    """Settings of one ``generate`` call (or a model's defaults).

    A per-call config overrides only the fields it sets explicitly: see :meth:`merged`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    """Sampling temperature; ``None`` keeps the provider's default."""

    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    """Nucleus-sampling mass; ``None`` keeps the provider's default."""

    max_tokens: int | None = Field(default=None, ge=1)
    """Most tokens to generate per attempt (Anthropic needs one: 1024 when unset)."""

    seed: int | None = None
    """Sampling seed, where the provider supports one (OpenAI, llama.cpp, mock)."""

    stop: list[str] | None = None
    """Stop sequences."""

    timeout_s: float = Field(default=60.0, gt=0.0)
    """Wall-clock limit of the first attempt of a request (the SDK call is also
    cancelled). An attempt that timed out is retried with twice its time, up to
    ``timeout_growth_max · timeout_s``: on a loaded machine or a busy server the same
    request more often needs longer than another try of the same length."""

    timeout_growth_max: float = Field(default=4.0, ge=1.0)
    """Longest attempt after timeouts, as a multiple of ``timeout_s`` (1: every attempt
    gets ``timeout_s``). With the defaults a request that never answers gives up after
    60 + 120 + 4 × 240 s; a logical call takes at most ``max_repairs + 1`` such requests
    plus backoff."""

    max_retries: int = Field(default=5, ge=0)
    """Transport retries per request on 429, 5xx, timeouts and broken connections."""

    backoff_base_s: float = Field(default=0.5, ge=0.0)
    """First backoff delay; attempt k waits a uniform draw in ``[d/2, d]``, ``d = base·2^k``."""

    backoff_max_s: float = Field(default=30.0, ge=0.0)
    """Cap of the exponential backoff delay."""

    retry_after_max_s: float = Field(default=60.0, ge=0.0)
    """Longest ``Retry-After`` honoured; a longer one is cut to this."""

    max_repairs: int = Field(default=2, ge=0)
    """Re-asks when the reply fails schema validation (the error is shown to the model)."""

    max_reply_chars: int = Field(default=20_000, ge=1)
    """Longest reply accepted, in characters. A longer one fails the call with
    :class:`~llmecon.models.ReplyTooLongError` (not retried, not re-asked) and is recorded
    cut to this length plus a ``…[truncated: N chars]`` marker."""

    structured_output: Literal["auto", "native", "prompt"] = "auto"
    """How a schema is enforced: ``native`` (OpenAI json_schema, Anthropic forced tool,
    llama.cpp grammar), ``prompt`` (schema in the prompt, reply parsed), or ``auto``
    (native when the provider supports it)."""

    def merged(self, override: GenerateConfig | None) -> GenerateConfig:
        """This config with the fields explicitly set in ``override`` replaced."""
        if override is None:
            return self
        update = {name: getattr(override, name) for name in override.model_fields_set}
        return self.model_copy(update=update)
