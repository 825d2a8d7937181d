"""The batch endpoints of the fake servers: OpenAI's Batch API and Anthropic's Message
Batches, enough of each for :mod:`llmecon.models._batch` to be tested offline.

A batch is pending for ``batch_delay_s`` after it was created (progress grows linearly
over that time), then ends as ``batch_end`` says: ``completed`` (every request answered,
each drawing a fault from the server's script or rates as a synchronous request would:
``500``, ``429``, … make that request fail inside the batch, ``wrong_schema`` &c. spoil
its reply), or ``expired`` / ``cancelled`` (every other request answered, the rest
never). ``POST …/cancel`` cancels a pending batch: requests not answered yet never are.
The delay is read at each poll, so a test may shorten it while a batch is pending;
``fail_polls`` makes the next polls fail with a 503.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

if TYPE_CHECKING:
    from llmecon.testing.fake_servers import _FakeServer

BatchEnd = Literal["completed", "expired", "cancelled"]
BATCH_ENDS = ("completed", "expired", "cancelled")
#: Faults that make a batched request fail (rather than spoil its reply).
_FAILING = ("429", "500", "503", "401", "hang", "malformed_body", "truncated_body")


@dataclass
class FakeBatch:
    id: str
    requests: list[tuple[str, dict[str, Any]]]
    created: float
    cancelled_at: float | None = None
    #: custom_id -> (reply payload, error message): filled once, when the batch ends
    answers: dict[str, tuple[dict[str, Any] | None, str | None]] | None = None
    end: BatchEnd = "completed"


@dataclass
class BatchStore:
    """The batches and uploaded files of one fake server."""

    server: _FakeServer
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, FakeBatch] = field(default_factory=dict)
    #: batches created (a resumed run must not create another)
    created: int = 0
    polls: int = 0
    #: the next this many polls fail with a 503 (a transient fault)
    fail_polls: int = 0

    # -- state ----------------------------------------------------------------------
    def _create(self, requests: list[tuple[str, dict[str, Any]]], prefix: str) -> FakeBatch:
        self.created += 1
        batch = FakeBatch(f"{prefix}{self.created:04d}", requests, time.monotonic())
        self.batches[batch.id] = batch
        return batch

    def _ended(self, batch: FakeBatch) -> bool:
        if batch.answers is not None:
            return True
        now = time.monotonic()
        if batch.cancelled_at is None and now < batch.created + self.server.batch_delay_s:
            return False
        batch.end = "cancelled" if batch.cancelled_at is not None else self.server.batch_end
        answered = self._progress(batch, now)
        batch.answers = {}
        for i, (custom_id, body) in enumerate(batch.requests):
            if batch.end != "completed" and (i % 2 or i >= answered):
                continue
            batch.answers[custom_id] = self._answer(body)
        return True

    def _progress(self, batch: FakeBatch, now: float) -> int:
        """Requests answered by ``now``: all once the delay is over."""
        delay = self.server.batch_delay_s
        until = batch.cancelled_at if batch.cancelled_at is not None else now
        share = 1.0 if delay <= 0 else min(1.0, (until - batch.created) / delay)
        return int(len(batch.requests) * share)

    def _answer(self, body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        fault = self.server._next_fault()
        self.server.stats.faults[fault] += 1
        if fault in _FAILING:
            return None, f"the fake server failed this request ({fault})"
        reply = self.server.completion(body, fault)
        return json.loads(reply.body), None

    # -- HTTP -----------------------------------------------------------------------
    async def serve(self, request: web.Request) -> web.Response | None:
        """Answer a batch request, or ``None`` when ``request`` is not one."""
        parts = [p for p in request.path.split("/") if p]
        method = request.method
        route = self._openai if self.server.batch_api == "openai" else self._anthropic
        if not parts or parts[0] != "v1":
            return None
        headers = {k.lower(): v for k, v in request.headers.items()}
        key = self.server.received_key(headers)
        matched = await route(method, parts[1:], request, dry=True)
        if matched is None:
            return None
        if self.server.api_key is not None and key != self.server.api_key:
            return _json(401, {"error": {"type": "authentication_error", "message": "bad key"}})
        if self.fail_polls and method == "GET" and parts[-1] in self.batches:
            self.fail_polls -= 1
            return _json(503, {"error": {"type": "overloaded_error", "message": "try later"}})
        return await route(method, parts[1:], request, dry=False)

    async def _openai(
        self, method: str, parts: list[str], request: web.Request, *, dry: bool
    ) -> web.Response | None:
        n = len(parts)
        if method == "POST" and parts == ["files"]:
            if dry:
                return _OK
            form = await request.post()
            upload = form.get("file")
            content = upload.file.read() if isinstance(upload, web.FileField) else b""
            file_id = f"file-{len(self.files) + 1:04d}"
            self.files[file_id] = content
            return _json(200, {"id": file_id, "object": "file", "purpose": "batch"})
        if method == "POST" and parts == ["batches"]:
            if dry:
                return _OK
            job = await request.json()
            uploaded = self.files.get(str(job.get("input_file_id")))
            if uploaded is None:
                return _json(400, {"error": {"message": "no such input file"}})
            lines = [json.loads(x) for x in uploaded.splitlines() if x.strip()]
            batch = self._create([(x["custom_id"], x["body"]) for x in lines], "batch_")
            return _json(200, self._openai_batch(batch))
        if n >= 2 and parts[0] == "batches" and parts[1] in self.batches:
            batch = self.batches[parts[1]]
            if method == "GET" and n == 2:
                return _OK if dry else _json(200, self._openai_batch(batch, poll=True))
            if method == "POST" and parts[2:] == ["cancel"]:
                if not dry and batch.cancelled_at is None and batch.answers is None:
                    batch.cancelled_at = time.monotonic()
                return _OK if dry else _json(200, self._openai_batch(batch))
        if method == "GET" and n == 3 and parts[0] == "files" and parts[2] == "content":
            return (
                None
                if parts[1] not in self._openai_files()
                else (_OK if dry else web.Response(body=self._openai_files()[parts[1]]))
            )
        return None

    def _openai_batch(self, batch: FakeBatch, *, poll: bool = False) -> dict[str, Any]:
        self.polls += poll
        total = len(batch.requests)
        if not self._ended(batch):
            done = self._progress(batch, time.monotonic())
            status = "cancelling" if batch.cancelled_at is not None else "in_progress"
            return {
                "id": batch.id,
                "object": "batch",
                "status": status,
                "request_counts": {"total": total, "completed": done, "failed": 0},
                "output_file_id": None,
                "error_file_id": None,
            }
        assert batch.answers is not None
        failed = total - sum(1 for reply, _ in batch.answers.values() if reply is not None)
        return {
            "id": batch.id,
            "object": "batch",
            "status": batch.end,
            "request_counts": {"total": total, "completed": total - failed, "failed": failed},
            "output_file_id": f"{batch.id}-output",
            "error_file_id": f"{batch.id}-errors",
        }

    def _openai_files(self) -> dict[str, bytes]:
        """The output and error files of every ended batch."""
        out: dict[str, bytes] = {}
        for batch in self.batches.values():
            if batch.answers is None:
                continue
            ok, bad = [], []
            for custom_id, _ in batch.requests:
                reply, error = batch.answers.get(custom_id, (None, f"batch {batch.end}"))
                if reply is not None:
                    response = {"status_code": 200, "request_id": custom_id, "body": reply}
                    ok.append(
                        {"id": f"r-{custom_id}", "custom_id": custom_id, "response": response}
                    )
                else:
                    code = "server_error" if custom_id in batch.answers else f"batch_{batch.end}"
                    err = {"code": code, "message": error}
                    bad.append({"id": f"r-{custom_id}", "custom_id": custom_id, "error": err})
            out[f"{batch.id}-output"] = _jsonl(ok)
            out[f"{batch.id}-errors"] = _jsonl(bad)
        return out

    async def _anthropic(
        self, method: str, parts: list[str], request: web.Request, *, dry: bool
    ) -> web.Response | None:
        if parts[:2] != ["messages", "batches"]:
            return None
        rest = parts[2:]
        if method == "POST" and not rest:
            if dry:
                return _OK
            body = await request.json()
            requests = [(r["custom_id"], r["params"]) for r in body.get("requests", [])]
            return _json(200, self._anthropic_batch(self._create(requests, "msgbatch_")))
        if not rest or rest[0] not in self.batches:
            return None
        batch = self.batches[rest[0]]
        if method == "GET" and len(rest) == 1:
            return _OK if dry else _json(200, self._anthropic_batch(batch, poll=True))
        if method == "POST" and rest[1:] == ["cancel"]:
            if not dry and batch.cancelled_at is None and batch.answers is None:
                batch.cancelled_at = time.monotonic()
            return _OK if dry else _json(200, self._anthropic_batch(batch))
        if method == "GET" and rest[1:] == ["results"] and batch.answers is not None:
            return _OK if dry else web.Response(body=self._anthropic_results(batch))
        return None

    def _anthropic_batch(self, batch: FakeBatch, *, poll: bool = False) -> dict[str, Any]:
        self.polls += poll
        total = len(batch.requests)
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        ended = self._ended(batch)
        if not ended:
            counts["succeeded"] = self._progress(batch, time.monotonic())
            counts["processing"] = total - counts["succeeded"]
        else:
            assert batch.answers is not None
            for custom_id, _ in batch.requests:
                reply, _error = batch.answers.get(custom_id, (None, None))
                if custom_id not in batch.answers:
                    counts["canceled" if batch.end == "cancelled" else "expired"] += 1
                else:
                    counts["succeeded" if reply is not None else "errored"] += 1
        results = f"{self.server.url}/v1/messages/batches/{batch.id}/results"
        word = "ended" if ended else "canceling" if batch.cancelled_at else "in_progress"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": word,
            "request_counts": counts,
            "results_url": results if ended else None,
        }

    def _anthropic_results(self, batch: FakeBatch) -> bytes:
        assert batch.answers is not None
        lines = []
        for custom_id, _ in batch.requests:
            if custom_id not in batch.answers:
                kind = "canceled" if batch.end == "cancelled" else "expired"
                lines.append({"custom_id": custom_id, "result": {"type": kind}})
                continue
            reply, error = batch.answers[custom_id]
            result: dict[str, Any] = (
                {"type": "succeeded", "message": reply}
                if reply is not None
                else {
                    "type": "errored",
                    "error": {"type": "error", "error": {"type": "api_error", "message": error}},
                }
            )
            lines.append({"custom_id": custom_id, "result": result})
        return _jsonl(lines)


_OK = web.Response(status=200)


def _json(status: int, payload: dict[str, Any]) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(payload).encode(), content_type="application/json"
    )


def _jsonl(objects: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objects)
