"""Optional on-disk response cache, keyed by a hash of the full request."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from llmecon._files import make_folder, os_reason
from llmecon._warn import warn

#: Bumped when the stored entry format changes (older entries are then ignored).
CACHE_FORMAT = 1


def request_key(request: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that determines the reply."""
    canonical = json.dumps(
        {"format": CACHE_FORMAT, **request}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class CacheWriteWarning(UserWarning):
    """The response cache could not be written (a full disk, no permission)."""


class ResponseCache:
    """One JSON file per request under ``root/<2 hex>/<hash>.json``, written atomically."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._warned = False

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return entry if isinstance(entry, dict) and entry.get("format") == CACHE_FORMAT else None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Store ``entry`` under ``key``. The cache only saves calls: when it cannot be
        written, the reply is still returned (and logged, and paid for once), and a
        :class:`CacheWriteWarning` says so, once per cache."""
        path = self._path(key)
        tmp: str | None = None
        try:
            make_folder(path.parent)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"format": CACHE_FORMAT, **entry}, fh)
            os.replace(tmp, path)
        except OSError as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            if not self._warned:
                self._warned = True
                reason = os_reason(exc)
                where = "" if str(self.root) in reason else f" {self.root}"
                warn(
                    f"cannot write the response cache{where}: {reason}; replies go on "
                    "without being cached",
                    CacheWriteWarning,
                )
