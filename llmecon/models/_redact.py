"""Keep API keys out of every text the model layer emits (errors, logs, call records).

Keys are only ever read from the environment; :func:`redact` replaces the value of any
secret-looking environment variable, plus anything shaped like a well-known key format,
with ``***``.
"""

from __future__ import annotations

import logging
import os
import re

_SECRET_NAME = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD|_KEY$)", re.IGNORECASE)
# Key shapes that may reach us from a server echoing a request (e.g. "Incorrect API key
# provided: sk-..."), even when the key did not come from this process's environment.
_KEY_SHAPES = re.compile(
    r"(sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{8,}|(?i:bearer)\s+[A-Za-z0-9_\-\.=]{8,})"
)
_MIN_SECRET_LEN = 6


def _secret_values() -> list[str]:
    values = {
        value
        for name, value in os.environ.items()
        if _SECRET_NAME.search(name) and len(value) >= _MIN_SECRET_LEN
    }
    # Longest first, so a key that contains another is replaced whole.
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every secret from the environment and every key-shaped token masked."""
    if not text:
        return text
    for value in _secret_values():
        if value in text:
            text = text.replace(value, "***")
    return _KEY_SHAPES.sub("***", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is not ours to fix here
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


#: The model layer's logger; every record it emits is redacted.
logger = logging.getLogger("llmecon.models")
logger.addFilter(RedactingFilter())
