"""A small Chrome DevTools Protocol driver: render an HTML file in headless Chromium,
collect JavaScript exceptions and console errors, take a screenshot.

Chromium is Debian's package (``apt-get install -y chromium``); without it
:func:`chromium_path` fails the test with that instruction (never a skip: a report that
was never rendered is not known to render). The browser runs with networking features
off and its own throw-away profile; the DevTools socket is on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

INSTALL_HINT = (
    "headless Chromium is needed to render the report: install it with "
    "`apt-get install -y chromium` (Debian/Ubuntu), or set LLMECON_CHROMIUM to its path"
)
_DEVTOOLS_URL = re.compile(rb"DevTools listening on (ws://\S+)")


def chromium_path() -> str:
    """The Chromium binary (``$LLMECON_CHROMIUM``, ``/usr/bin/chromium`` or on PATH); fails
    the calling test with the install instruction when there is none."""
    candidates = [
        os.environ.get("LLMECON_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    pytest.fail(INSTALL_HINT, pytrace=False)


@dataclass
class Rendered:
    """What the browser saw: errors (exceptions, console errors, error log entries), the
    screenshot as PNG bytes and the values of the checks evaluated in the page."""

    errors: list[str] = field(default_factory=list)
    screenshot: bytes = b""
    checks: dict[str, Any] = field(default_factory=dict)


class _Session:
    """One page target over the browser's websocket (flattened session)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.loaded = asyncio.Event()
        self.session_id: str | None = None
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = msg.json()
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            elif "method" in data:
                self.events.append(data)
                if data["method"] == "Page.loadEventFired":
                    self.loaded.set()

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        msg_id = next(self.ids)
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if self.session_id is not None and not method.startswith("Target."):
            message["sessionId"] = self.session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[msg_id] = future
        await self.ws.send_json(message)
        reply = await future
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        method, params = e["method"], e.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            out.append(f"exception: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            out.append(f"console.{params['type']}: {args}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            out.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}")
    return out


async def _devtools_url(proc: asyncio.subprocess.Process, timeout: float) -> str:
    assert proc.stderr is not None
    seen = b""
    async with asyncio.timeout(timeout):
        while True:
            line = await proc.stderr.readline()
            if not line:
                raise RuntimeError(f"chromium exited before DevTools was up:\n{seen.decode()}")
            seen += line
            match = _DEVTOOLS_URL.search(line)
            if match:
                return match.group(1).decode()


async def _drain(stream: asyncio.StreamReader | None) -> None:
    """Keep reading Chromium's stderr so a full pipe never blocks it."""
    if stream is not None:
        while await stream.readline():
            pass


async def render_file(
    path: Path,
    checks: dict[str, str] | None = None,
    *,
    width: int = 1280,
    height: int = 2000,
    timeout: float = 50.0,
) -> Rendered:
    """Open ``path`` in headless Chromium, wait for its load event, evaluate ``checks``
    (name → JavaScript expression), and take a screenshot of ``width`` × ``height``."""
    binary = chromium_path()
    with tempfile.TemporaryDirectory(prefix="llmecon-chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        drain: asyncio.Task[None] | None = None
        try:
            url = await _devtools_url(proc, timeout)
            drain = asyncio.create_task(_drain(proc.stderr))
            async with (
                asyncio.timeout(timeout),
                aiohttp.ClientSession() as http,
                http.ws_connect(url, max_msg_size=0) as ws,
            ):
                return await _drive(ws, path, checks or {}, width, height)
        finally:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            if drain is not None:
                drain.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drain


async def _drive(
    ws: aiohttp.ClientWebSocketResponse,
    path: Path,
    checks: dict[str, str],
    width: int,
    height: int,
) -> Rendered:
    s = _Session(ws)
    try:
        target = await s.send("Target.createTarget", {"url": "about:blank"})
        attached = await s.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        s.session_id = attached["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            await s.send(f"{domain}.enable")
        await s.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        s.loaded.clear()
        await s.send("Page.navigate", {"url": path.resolve().as_uri()})
        await s.loaded.wait()
        result = Rendered()
        for name, expression in checks.items():
            value = await s.send(
                "Runtime.evaluate", {"expression": expression, "returnByValue": True}
            )
            if "exceptionDetails" in value:
                result.errors.append(f"check {name} threw: {value['exceptionDetails']}")
            result.checks[name] = value.get("result", {}).get("value")
        shot = await s.send("Page.captureScreenshot", {"format": "png"})
        result.screenshot = base64.b64decode(shot["data"])
        await asyncio.sleep(0.2)  # let late console events arrive before collecting
        result.errors += _errors(s.events)
        # Ask the browser to quit (no reply is awaited: the socket closes with it).
        await ws.send_json({"id": next(s.ids), "method": "Browser.close"})
        return result
    finally:
        s.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await s.reader
