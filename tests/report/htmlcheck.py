"""A strict-enough HTML checker for the report tests (stdlib ``html.parser``): every tag
closed in order; images, inline SVG charts and their hover titles collected."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from html.parser import HTMLParser

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_VOID = {"meta", "img", "br", "hr", "link", "input"}


@dataclass
class Page:
    tags: list[str] = field(default_factory=list)
    images: list[dict[str, str | None]] = field(default_factory=list)
    section_ids: list[str] = field(default_factory=list)
    charts: list[dict[str, str | None]] = field(default_factory=list)
    """Attributes of each ``<svg class="chart">``."""
    tips: list[str] = field(default_factory=list)
    """Text of every ``<title>`` inside an SVG (the hover values)."""
    details: int = 0
    text: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.page.tags.append(tag)
        if tag == "img":
            self.page.images.append(dict(attrs))
        if tag == "svg" and dict(attrs).get("class") == "chart":
            self.page.charts.append(dict(attrs))
        if tag == "details":
            self.page.details += 1
        if tag == "section":
            self.page.section_ids.append(dict(attrs).get("id") or "")
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.page.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] == "title" and "svg" in self.stack:
            self.page.tips.append(data)
            return
        self.page.text.append(data)


def parse(html: str) -> Page:
    checker = _Checker()
    checker.feed(html)
    checker.close()
    if checker.stack:
        checker.page.errors.append(f"unclosed tags: {checker.stack}")
    return checker.page


def png_payload(src: str | None) -> bytes:
    """The decoded PNG of a ``data:image/png;base64,`` URL (raises if it is not one)."""
    prefix = "data:image/png;base64,"
    assert src is not None and src.startswith(prefix), f"not an embedded PNG: {src!r:.60}"
    payload = src[len(prefix) :]
    assert payload, "empty image payload"
    try:
        data = base64.b64decode(payload, validate=True)
    except binascii.Error as exc:  # pragma: no cover - reported by the assert
        raise AssertionError(f"bad base64: {exc}") from None
    assert data.startswith(PNG_SIGNATURE), "payload is not a PNG"
    return data
