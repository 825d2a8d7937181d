"""``mock/…``: a deterministic test model that ships inside the package.

* ``mock/default`` (rule-based): for a schema, a schema-valid JSON instance whose values
  come from a PRNG seeded by a hash of the request (messages, schema, ``config.seed``):
  the same request always gets the same reply. Integer/number bounds, string and list
  lengths, enums, ``const``, nested models and optional fields are honoured.
* scripted: ``get_model("mock/default", outputs=[...])`` replies with the given raw
  strings in order (an exception instance in the list is raised instead, e.g.
  ``RateLimitError(...)`` to exercise retries); when the script runs out, replies are
  rule-based again.
* callable: ``get_model("mock/default", responder=fn)`` with
  ``fn(messages, schema_json_or_None) -> str``.
* ``mock/reask-<n>`` (rule-based, for runs that exercise re-asks): about one request in
  three (picked by the request's hash) gets ``n`` off-format replies before the
  rule-based one, i.e. ``n`` re-asks (``n > max_repairs``: the call fails). A pure
  function of the request and the attempt (:func:`~llmecon.models.current_attempt`), so
  a resumed run gets the same replies.

Token usage is estimated as characters / 4; the cost is 0.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from llmecon.models._config import GenerateConfig
from llmecon.models._provider import ModelProvider, ProviderResponse, current_attempt
from llmecon.models._schema import StructuredSpec
from llmecon.models._types import ChatMessage, Usage

#: ``responder(messages, json_schema_or_None) -> raw reply text``
Responder = Callable[[list[ChatMessage], "dict[str, Any] | None"], str]

_WORDS = ("steady", "hours", "tax", "income", "plan", "work", "rate", "fair", "growth", "save")


class MockProvider(ModelProvider):
    """Deterministic scripted / rule-based model (see the module docstring)."""

    provider_name = "mock"
    in_process = True
    supports_native_schema = True
    default_max_concurrency = 10_000

    def __init__(
        self,
        model_name: str = "default",
        api_base: str | None = None,
        *,
        outputs: Iterable[str | BaseException] | None = None,
        responder: Responder | None = None,
        latency_s: float = 0.0,
    ) -> None:
        super().__init__(model_name, api_base)
        self._script: deque[str | BaseException] = deque(outputs or ())
        self._responder = responder
        self.latency_s = latency_s
        #: every request received, for assertions in tests
        self.requests: list[list[ChatMessage]] = []

    @property
    def prices_known(self) -> bool:
        return True

    def push(self, *outputs: str | BaseException) -> None:
        """Append raw replies (or exceptions to raise) to the script."""
        self._script.extend(outputs)

    @property
    def remaining(self) -> int:
        return len(self._script)

    async def generate(
        self, messages: list[ChatMessage], spec: StructuredSpec | None, config: GenerateConfig
    ) -> ProviderResponse:
        self.requests.append(list(messages))
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        if self._script:
            item = self._script.popleft()
            if isinstance(item, BaseException):
                raise item
            text = item
        elif self._responder is not None:
            text = self._responder(messages, spec.json_schema if spec else None)
        else:
            text = self._rule_based(messages, spec.json_schema if spec else None, config.seed)
        chars_in = sum(len(m.content) for m in messages)
        usage = Usage(input_tokens=chars_in // 4 + 1, output_tokens=len(text) // 4 + 1)
        return ProviderResponse(text=text, usage=usage, cost_usd=0.0)

    def _rule_based(
        self, messages: list[ChatMessage], schema: dict[str, Any] | None, seed: int | None
    ) -> str:
        bad_replies = _reasks_of(self.model_name)
        if not bad_replies:
            return rule_based_reply(messages, schema, seed)
        attempt = current_attempt()
        # A re-ask is the first request plus the bad reply and the repair message.
        first = messages[:-2] if attempt else messages
        if request_seed(first, schema, seed) % 3 == 0 and attempt < bad_replies:
            return f"Off-format reply {attempt + 1} of {bad_replies} (not JSON)."
        return rule_based_reply(first, schema, seed)


def _reasks_of(model_name: str) -> int:
    """``n`` of ``reask-<n>``; 0 for any other mock model name."""
    prefix, _, count = model_name.partition("-")
    return int(count) if prefix == "reask" and count.isdigit() else 0


def request_seed(messages: list[Any], schema: dict[str, Any] | None, seed: int | None) -> int:
    """A stable 64-bit seed from the request (messages as ChatMessage or dicts)."""
    payload = json.dumps(
        [
            [m.role, m.content] if isinstance(m, ChatMessage) else [m.get("role"), m.get("content")]
            for m in messages
        ]
        + [schema, seed],
        sort_keys=True,
        default=str,
    )
    return int.from_bytes(hashlib.sha256(payload.encode()).digest()[:8], "big")


def rule_based_reply(
    messages: list[Any], schema: dict[str, Any] | None, seed: int | None = None
) -> str:
    """The deterministic reply of ``mock/default`` to a request."""
    rng = random.Random(request_seed(messages, schema, seed))
    if schema is None:
        return "Mock reply: " + " ".join(rng.choice(_WORDS) for _ in range(6)) + "."
    return json.dumps(instance_from_schema(schema, rng), separators=(",", ":"))


def instance_from_schema(schema: dict[str, Any], rng: random.Random) -> Any:
    """A random JSON value valid under ``schema`` (the subset pydantic emits)."""
    return _Generator(schema, rng).value(schema, depth=0)


class _Generator:
    def __init__(self, root: dict[str, Any], rng: random.Random) -> None:
        self.defs: dict[str, Any] = {**root.get("definitions", {}), **root.get("$defs", {})}
        self.rng = rng

    def value(self, schema: Any, depth: int) -> Any:
        if not isinstance(schema, dict) or depth > 12:
            return None
        if "$ref" in schema:
            return self.value(self.defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), depth + 1)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.rng.choice(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if key in schema:
                branches = [b for b in schema[key] if b.get("type") != "null"] or schema[key]
                return self.value(self.rng.choice(branches), depth + 1)
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged.update(
                    self.defs.get(part["$ref"].rsplit("/", 1)[-1], {}) if "$ref" in part else part
                )
            return self.value(merged, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "string"
        return getattr(self, f"_{kind}", self._string)(schema, depth)

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props = schema.get("properties", {})
        out = {name: self.value(sub, depth + 1) for name, sub in props.items()}
        extra = schema.get("additionalProperties")
        if not props and isinstance(extra, dict):
            lo = int(schema.get("minProperties", 0))
            for i in range(max(lo, 1)):
                out[f"key{i}"] = self.value(extra, depth + 1)
        return out

    def _array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        if prefix:
            return [self.value(item, depth + 1) for item in prefix]
        lo = int(schema.get("minItems", 0))
        hi = int(schema.get("maxItems", max(lo, 3)))
        n = self.rng.randint(lo, max(lo, hi))
        items = schema.get("items", {})
        if schema.get("uniqueItems"):
            seen: list[Any] = []
            for _ in range(n * 20):
                if len(seen) >= n:
                    break
                candidate = self.value(items, depth + 1)
                if candidate not in seen:
                    seen.append(candidate)
            return seen
        return [self.value(items, depth + 1) for _ in range(n)]

    def _bounds(
        self, schema: dict[str, Any], default_lo: float, default_hi: float
    ) -> tuple[float, float, bool, bool]:
        lo = schema.get("minimum", schema.get("exclusiveMinimum", default_lo))
        hi = schema.get("maximum", schema.get("exclusiveMaximum", default_hi))
        if "minimum" not in schema and "exclusiveMinimum" not in schema and "maximum" in schema:
            lo = min(default_lo, hi)
        if "maximum" not in schema and "exclusiveMaximum" not in schema and "minimum" in schema:
            hi = max(default_hi, lo)
        return float(lo), float(hi), "exclusiveMinimum" in schema, "exclusiveMaximum" in schema

    def _integer(self, schema: dict[str, Any], depth: int) -> int:
        lo, hi, ex_lo, ex_hi = self._bounds(schema, 0, 100)
        ilo = int(lo) + 1 if ex_lo and lo == int(lo) else -int(-lo // 1)
        ihi = int(hi) - 1 if ex_hi and hi == int(hi) else int(hi // 1)
        step = int(schema.get("multipleOf", 1)) or 1
        if ihi < ilo:
            return ilo
        value = self.rng.randint(ilo, ihi)
        return value - (value % step) if value - (value % step) >= ilo else value

    def _number(self, schema: dict[str, Any], depth: int) -> float:
        lo, hi, ex_lo, ex_hi = self._bounds(schema, 0.0, 1.0)
        value = round(self.rng.uniform(lo, hi), 4)
        if (ex_lo and value <= lo) or (ex_hi and value >= hi) or not lo <= value <= hi:
            value = (lo + hi) / 2
        return value

    def _boolean(self, schema: dict[str, Any], depth: int) -> bool:
        return self.rng.random() < 0.5

    def _null(self, schema: dict[str, Any], depth: int) -> None:
        return None

    def _string(self, schema: dict[str, Any], depth: int) -> str:
        lo = int(schema.get("minLength", 0))
        hi = int(schema.get("maxLength", max(lo, 40)))
        words: list[str] = []
        while len(" ".join(words)) < lo or (not words and hi > 0):
            words.append(self.rng.choice(_WORDS))
        text = " ".join(words)
        target = self.rng.randint(lo, max(lo, min(hi, len(text))))
        text = text[:target]
        return text + "x" * (lo - len(text))
