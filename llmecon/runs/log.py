"""The run folder: ``manifest.json`` + append-only ``events.jsonl`` + derived tables.

Events are written one JSON object per line and flushed as written (a SIGKILL loses
at most the line being written); the file is fsynced at every year boundary. The
JSONL log is the source of truth; ``years.csv`` is derived from it.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field

from llmecon.runs.events import EVENT_ADAPTER, LOG_FORMAT_VERSION, Blob, Event, parse_event

MANIFEST_NAME = "manifest.json"
EVENTS_NAME = "events.jsonl"
YEARS_TABLE_NAME = "years.csv"

_VERSIONED_PACKAGES = ("llmecon", "numpy", "scipy", "pandas", "pydantic", "jinja2")


class RunLogError(RuntimeError):
    """A run folder cannot be created or read."""


class Manifest(BaseModel):
    """What a run is: written once at the start, before any event."""

    model_config = ConfigDict(extra="allow")

    format_version: int = LOG_FORMAT_VERSION
    run_id: str
    created: str
    seed: int
    config: dict[str, Any]
    population: dict[str, Any] = Field(default_factory=dict)
    models: dict[str, str] = Field(default_factory=dict)
    prompts: dict[str, str] = Field(default_factory=dict)
    """Template name -> sha256 of the templates this run used."""
    package_versions: dict[str, str] = Field(default_factory=dict)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class RunLog:
    """Writer for one run folder."""

    def __init__(self, directory: Path, manifest: Manifest, events: IO[str], next_seq: int) -> None:
        self.directory = directory
        self.manifest = manifest
        self._events = events
        self._seq = next_seq
        self._blobs: set[str] = set()

    @classmethod
    def create(cls, directory: str | Path, manifest: Manifest) -> RunLog:
        """Create a fresh run folder; refuses to overwrite an existing run."""
        d = Path(directory)
        if (d / EVENTS_NAME).exists() or (d / MANIFEST_NAME).exists():
            raise RunLogError(f"run folder already holds a run: {d} (choose another --run-id)")
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunLogError(f"cannot create run folder {d}: {exc}") from None
        _atomic_write(d / MANIFEST_NAME, manifest.model_dump_json(indent=2) + "\n")
        events = open(d / EVENTS_NAME, "a", encoding="utf-8")  # noqa: SIM115 - held open
        return cls(d, manifest, events, 0)

    @classmethod
    def reopen(cls, directory: str | Path, kept: Sequence[Event]) -> RunLog:
        """Continue appending to a run whose events file holds exactly ``kept``."""
        d = Path(directory)
        manifest = read_manifest(d)
        events = open(d / EVENTS_NAME, "a", encoding="utf-8")  # noqa: SIM115 - held open
        log = cls(d, manifest, events, kept[-1].seq + 1 if kept else 0)
        log._blobs = {e.sha256 for e in kept if isinstance(e, Blob)}
        return log

    @property
    def events_path(self) -> Path:
        return self.directory / EVENTS_NAME

    def append(self, event: Event) -> Event:
        """Stamp ``seq`` and ``time``, write one line and flush it."""
        event.seq = self._seq
        event.time = round(time.time(), 6)
        self._events.write(event.model_dump_json() + "\n")
        self._events.flush()
        self._seq += 1
        return event

    def blob(self, text: str) -> str:
        """Store ``text`` once (a ``blob`` event) and return its sha256."""
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if digest not in self._blobs:
            self.append(Blob(sha256=digest, text=text))
            self._blobs.add(digest)
        return digest

    def sync(self) -> None:
        """Force written events to disk (called at year boundaries)."""
        self._events.flush()
        os.fsync(self._events.fileno())

    def write_years_table(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rewrite the derived per-year metrics table ``years.csv``."""
        write_csv(self.directory / YEARS_TABLE_NAME, rows)

    def close(self) -> None:
        if not self._events.closed:
            self.sync()
            self._events.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def read_manifest(directory: str | Path) -> Manifest:
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise RunLogError(f"not a run folder (no {MANIFEST_NAME}): {Path(directory)}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunLogError(f"corrupt manifest {path}: {exc}") from None
    version = data.get("format_version")
    if not isinstance(version, int):
        raise RunLogError(f"{path} has no integer format_version")
    if version > LOG_FORMAT_VERSION:
        raise RunLogError(
            f"{path} uses log format {version}, newer than this llmecon supports "
            f"({LOG_FORMAT_VERSION}); upgrade llmecon to read it"
        )
    if version < LOG_FORMAT_VERSION:
        data, _ = migrate_log(data, [])
    return Manifest.model_validate(data)


def read_events(directory: str | Path) -> list[Event]:
    """All events of a run, migrated to the current format when the manifest is older.

    A torn last line (a crash mid-write) is ignored; a corrupt line anywhere else is an
    error naming the line.
    """
    path = Path(directory) / EVENTS_NAME
    if not path.is_file():
        raise RunLogError(f"no {EVENTS_NAME} in {Path(directory)}")
    raw_manifest = _raw_manifest(Path(directory))
    version = raw_manifest.get("format_version", LOG_FORMAT_VERSION) if raw_manifest else None
    old = isinstance(version, int) and version < LOG_FORMAT_VERSION
    data = path.read_bytes()
    lines = data.split(b"\n")
    parsed: list[Any] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            parsed.append(json.loads(line) if old else parse_event(line))
        except ValueError as exc:
            is_last = all(not rest.strip() for rest in lines[number:])
            if is_last and not data.endswith(b"\n"):
                break  # torn final line: the write was interrupted
            raise RunLogError(f"{path}, line {number}: corrupt event ({exc})") from None
    if not old:
        return parsed
    assert raw_manifest is not None
    _, migrated = migrate_log(raw_manifest, parsed)
    try:
        return [EVENT_ADAPTER.validate_python(e) for e in migrated]
    except ValueError as exc:
        raise RunLogError(f"{path}: cannot migrate format {version}: {exc}") from None


def _raw_manifest(directory: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


# -- format migrations ---------------------------------------------------------------------

#: Upgrades a raw log (manifest dict, event dicts) by one format version.
LogMigration = Callable[
    [dict[str, Any], list[dict[str, Any]]], tuple[dict[str, Any], list[dict[str, Any]]]
]


def _v0_to_v1(
    manifest: dict[str, Any], events: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Format 0 (pre-release): the manifest said ``created_utc`` and ``worker_step``
    events said ``hours``; format 1 says ``created`` and ``weekly_hours``."""
    manifest = dict(manifest)
    if "created_utc" in manifest:
        manifest["created"] = manifest.pop("created_utc")
    upgraded = []
    for event in events:
        event = dict(event)
        if event.get("type") == "worker_step" and "hours" in event:
            event["weekly_hours"] = event.pop("hours")
        if event.get("type") == "run_started":
            event["format_version"] = 1
        upgraded.append(event)
    return manifest, upgraded


#: Format version -> the migration from that version to the next one.
MIGRATIONS: dict[int, LogMigration] = {0: _v0_to_v1}


def migrate_log(
    manifest: dict[str, Any], events: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Bring a raw log (parsed JSON, not yet validated) to :data:`LOG_FORMAT_VERSION`.

    Older versions are upgraded step by step through :data:`MIGRATIONS`; the current
    version passes through unchanged; a newer version is refused.
    """
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise RunLogError("manifest has no integer format_version")
    if version > LOG_FORMAT_VERSION:
        raise RunLogError(
            f"log format {version} is newer than this llmecon supports "
            f"({LOG_FORMAT_VERSION}); upgrade llmecon to read it"
        )
    while version < LOG_FORMAT_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise RunLogError(f"no migration from log format {version}")
        manifest, events = step(manifest, events)
        version += 1
        manifest = {**manifest, "format_version": version}
    return manifest, events
