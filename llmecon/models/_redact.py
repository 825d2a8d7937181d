"""Keep API keys out of every text the model layer emits (errors, logs, call records).

Keys are only ever read from the environment; :func:`redact` replaces the value of any
secret-looking environment variable, the credentials of the base URLs providers were
built with (:func:`register_url_credentials`), anything shaped like a well-known key
format and the credentials of any URL in the text (:func:`redact_url`) with ``***``.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import re
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

_SECRET_NAME = re.compile(
    r"(API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?|JWT|_KEY$|_PAT$)", re.IGNORECASE
)
#: Variables holding a proxy URL, whose ``user:password@`` is masked.
_PROXY_NAME = re.compile(r"_PROXY$", re.IGNORECASE)
# Key shapes that may reach us from a server echoing a request (e.g. "Incorrect API key
# provided: sk-..."), even when the key did not come from this process's environment.
_KEY_SHAPES = re.compile(
    r"(sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{8,}|(?i:bearer)\s+[A-Za-z0-9_\-\.=]{8,})"
)
# "Basic <base64 of user:password>": what a URL's credentials become in a request header
# (masked when the token decodes to a user:password pair, not in "basic economics").
_BASIC_AUTH = re.compile(r"(?i:basic)\s+([A-Za-z0-9+/]{8,}={0,2})(?![A-Za-z0-9+/=])")
_MIN_SECRET_LEN = 6


#: (a copy of the environment's raw mapping, how many secrets were registered, the
#: secrets found in both)
_SECRETS_SEEN: tuple[dict[Any, Any], int, list[str]] | None = None
#: Secrets that are not in the environment: the credentials of the base URLs providers
#: were built with (:func:`register_url_credentials`); kept for the process's life.
_REGISTERED: set[str] = set()


def register_url_credentials(url: str) -> None:
    """Mask the credentials of ``url`` (``http://user:pass@host/v1?code=…``) wherever
    :func:`redact` looks from now on, as the environment's keys are: the password, the
    ``user:pass`` pair (as written and percent-decoded) and its base64 (what a
    ``Basic`` header carries, and what a server echoing the header sends back bare),
    and the value of every query parameter whose name looks like a credential
    (``?code=…``, ``?api_key=…``).
    A user name without a password is the credential itself (a token as user name).
    Pieces shorter than 6 characters are left alone (masking them would garble text)."""
    new = _credential_pieces(url) - _REGISTERED
    if new:
        _REGISTERED.update(new)  # the next _secret_values() sees a new count: scans again


def _credential_pieces(url: str) -> set[str]:
    """What :func:`register_url_credentials` masks of ``url``."""
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return set()
    pieces: set[str] = set()
    if user is not None:
        for name, word in ((user, password or ""), (unquote(user), unquote(password or ""))):
            pair = f"{name}:{word}"
            pieces.update((word or name, pair, base64.b64encode(pair.encode()).decode()))
    for query in (parts.query, parts.fragment):
        for item in query.split("&"):
            name, _, value = item.partition("=")
            if value and _is_secret_param(name):
                word = unquote_plus(value)
                pieces.update((value, word, base64.b64encode(word.encode()).decode()))
    return {p for p in pieces if len(p) >= _MIN_SECRET_LEN}


def _secret_values() -> list[str]:
    global _SECRETS_SEEN
    # Scanning os.environ decodes every variable (~250 µs, the largest per-call cost of
    # the model layer at scale): compare its raw mapping with the one last scanned (one
    # C-level dict comparison) and scan again only when the environment (or the
    # registered secrets) changed.
    raw = getattr(os.environ, "_data", None)
    seen = _SECRETS_SEEN
    if raw is not None and seen is not None and seen[1] == len(_REGISTERED) and seen[0] == raw:
        return seen[2]
    values: set[str] = set()
    for name, value in os.environ.items():
        if _SECRET_NAME.search(name) and len(value) >= _MIN_SECRET_LEN:
            # and its base64, as a server echoing an encoded header may send it back
            values.update((value, base64.b64encode(value.encode()).decode()))
        elif _PROXY_NAME.search(name) and "@" in value:  # HTTPS_PROXY=http://u:pw@host
            values |= _credential_pieces(value if "://" in value else f"http://{value}")
    values |= _REGISTERED
    # Longest first, so a key that contains another is replaced whole.
    secrets = sorted(values, key=len, reverse=True)
    if raw is not None:
        _SECRETS_SEEN = (dict(raw), len(_REGISTERED), secrets)
    return secrets


def redaction_key() -> object:
    """What :func:`redact` masks now, as a token to compare by identity (``is``): the
    same object for as long as the environment's secrets stay the same, so a text
    redacted while it was current needs no second pass while it still is."""
    return _secret_values()


def redact(text: str) -> str:
    """``text`` with every secret from the environment, every key-shaped token and the
    credentials of every URL in it masked."""
    return _redact(text, _secret_values())


def _redact(text: str, secrets: list[str]) -> str:
    if not text:
        return text
    lowered = text.lower()  # a server may echo a key upper-cased (and some do)
    for value in secrets:
        if value.lower() in lowered:
            text = re.sub(re.escape(value), "***", text, flags=re.IGNORECASE)
            lowered = text.lower()
    # a secret in a JSON string may be written with escapes (\u0041: keys are ASCII, so
    # only a text escaping an ASCII character, rare but for such an echo, is searched)
    if "\\u" in text and _ASCII_ESCAPE.search(text):
        unescaped = _JSON_ESCAPE.sub(_unescape, text)
        for value in secrets:  # one search of the text for each secret it holds
            if value in unescaped:
                text = _escaped(value).sub("***", text)
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda m: _mask_url(m.group()), text)
    if "=" in text:  # a query string without its URL, e.g. a path a server echoes
        text = _PARAM_IN_TEXT.sub(_mask_param_match, text)
    if "asic" in text:
        text = _BASIC_AUTH.sub(_mask_basic, text)
    return _KEY_SHAPES.sub("***", text)


#: A JSON escape of a printable ASCII character (``\u0041``), as no JSON writer needs.
_ASCII_ESCAPE = re.compile(r"\\u00[2-7][0-9a-fA-F]")
#: A JSON escape of one character: ``\u0041``, ``\/``.
_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\/")


def _unescape(match: re.Match[str]) -> str:
    return chr(int(match.group(1), 16)) if match.group(1) else "/"


@functools.lru_cache(maxsize=256)
def _escaped(secret: str) -> re.Pattern[str]:
    """``secret`` as JSON may write it: any of its characters as ``\\uXXXX`` (hex in
    either case), ``/`` also as ``\\/``."""
    parts = []
    for char in secret:
        code = ord(char)
        forms = [re.escape(char)]
        if code <= 0xFFFF:
            forms.append(rf"\\u(?i:{code:04x})")
        if char == "/":
            forms.append(r"\\/")
        parts.append(f"(?:{'|'.join(forms)})")
    return re.compile("".join(parts))


def _mask_basic(match: re.Match[str]) -> str:
    try:
        pair = base64.b64decode(match.group(1), validate=True)
    except ValueError:
        return match.group()
    return (
        match.group()[: match.start(1) - match.start()] + "***" if b":" in pair else match.group()
    )


def redact_json(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, scalars) with every string :func:`redact`-ed."""
    secrets = _secret_values()

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return _redact(item, secrets)
        if isinstance(item, dict):
            return {walk(k) if isinstance(k, str) else k: walk(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        return item

    return walk(value)


# A query/fragment parameter whose name looks like a secret: one of the long words
# anywhere at the end of the name (``api_key``, ``apiKey``, ``x-api-key``, ``client_secret``,
# ``access_token``), or a short one as the whole name or after a separator (``key``,
# ``sig``, ``auth``; not ``monkey``).
_SECRET_PARAM = re.compile(
    r"(?:api[_\-]?key|token|secret|password|passwd|passphrase|credentials?|authorization"
    r"|jwt|hmac|session(?:[_\-]?id)?)$"
    r"|(?:^|[_\-.])(?:key\d*|sig|signature|pwd|pw|pass|auth|code|sid|bearer)$"
    r"|^(?:user|access|secret|private|client)[_\-]?key$",
    re.IGNORECASE,
)
# A URL inside free text (an error message, a log line, a model's reply).
# (Trailing punctuation is not part of it: "see https://h/?token=abc." keeps its dot.
# The scheme is bounded so that long runs like "a.a.a.a…" are scanned in linear time.)
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]{0,31}://[^\s\"'<>`]*[^\s\"'<>`.,;:!?)\]}]")
# A ``name=value`` right after ``?``, ``&`` or ``#``: a query string without its URL.
_PARAM_IN_TEXT = re.compile(
    r"(?<=[?&#])([A-Za-z0-9_.\-]{1,64})=([^&#\s\"'<>`]*[^&#\s\"'<>`.,;:!?)\]}])"
)


def _mask_param_match(match: re.Match[str]) -> str:
    name = match.group(1)
    return f"{name}=***" if _is_secret_param(name) else match.group()


def _is_secret_param(name: str) -> bool:
    """Whether a parameter named ``name`` (``api_key``, ``api_key[]``, ``key1``) looks
    like a credential, in a URL or query text found in free text."""
    return bool(_SECRET_PARAM.search(unquote_plus(name).strip().removesuffix("[]")))


def check_base_url(url: str) -> str:
    """``url`` when it is an http(s) URL with a host; :class:`ValueError` saying how to
    write one otherwise (``localhost:8000/v1`` has no scheme; ``http://local host/v1``
    would fail at the first call as a name that does not resolve). The URL is
    redacted."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"{redact_url(url)!r} is not an http(s) URL: give the scheme, e.g. "
            "http://127.0.0.1:8000/v1"
        )
    if any(c.isspace() for c in parts.netloc):
        raise ValueError(
            f"{redact_url(url)!r} has a space in its host: a host name or address has"
            " none (e.g. http://127.0.0.1:8000/v1)"
        )
    try:
        parts.port  # noqa: B018 - reading it checks it
    except ValueError:
        raise ValueError(
            f"{redact_url(url)!r} has no valid port (a whole number from 0 to 65535)"
        ) from None
    return url


def redact_url(url: str) -> str:
    """``url`` without credentials: ``user:pass@`` removed, the query (and fragment)
    parameters whose name looks like a credential masked (``?code=***``), then
    :func:`redact` applied. Other parameters stay (``?deployment=east`` tells two
    endpoints of a fleet apart).

    >>> redact_url("https://bob:hunter2@gw.example/v1?api-version=2024-06-01&code=abc")
    'https://gw.example/v1?api-version=2024-06-01&code=***'
    """
    return redact(_mask_url(url))


def _mask_url(url: str) -> str:
    """``url`` without ``user:pass@`` and with its secret-looking parameters masked."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced IPv6 bracket: strip what looks like userinfo
        return re.sub(r"(://)[^/@\s]*@", r"\1", url)
    netloc = parts.netloc.rpartition("@")[2]
    query, fragment = _mask_params(parts.query), _mask_params(parts.fragment)
    if (netloc, query, fragment) == (parts.netloc, parts.query, parts.fragment):
        return url  # nothing to hide: keep the text exactly as it was
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def _mask_params(query: str) -> str:
    """``a=1&token=s`` -> ``a=1&token=***``; everything else is kept byte for byte."""
    if "=" not in query:
        return query
    out = []
    for item in query.split("&"):
        name, sep, value = item.partition("=")
        if sep and value and _is_secret_param(name):
            item = f"{name}=***"
        out.append(item)
    return "&".join(out)


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
