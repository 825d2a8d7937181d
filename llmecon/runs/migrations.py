"""Run-log format migrations: each upgrades a raw log (the parsed JSON, before
validation) by one format version; :func:`migrate_log` chains them up to
:data:`~llmecon.runs.events.LOG_FORMAT_VERSION` and refuses newer logs. Re-exported by
:mod:`llmecon.runs.log`; see ``docs/log-format.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmecon.runs.events import LOG_FORMAT_VERSION


class MigrationError(ValueError):
    """A log's format version cannot be migrated (not an integer, newer, no step);
    :func:`llmecon.runs.log.read_log` reports it as a ``RunLogError`` naming the file."""


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


def _v1_to_v2(
    manifest: dict[str, Any], events: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Format 2 added optional fields only (``endpoint`` of ``llm_call``, ``error`` and
    the ``deadline_exceeded`` status of ``run_completed``, ``endpoints`` in the
    manifest): a format-1 log is valid as it is."""
    upgraded = []
    for event in events:
        if event.get("type") == "run_started":
            event = {**event, "format_version": 2}
        upgraded.append(event)
    return manifest, upgraded


def _v2_to_v3(
    manifest: dict[str, Any], events: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Format 3 moved worker calls to columnar files (``call_file`` events); a reader
    of format 3 still reads ``llm_call`` events of any role, so a format-2 log is valid
    as it is."""
    upgraded = []
    for event in events:
        if event.get("type") == "run_started":
            event = {**event, "format_version": 3}
        upgraded.append(event)
    return manifest, upgraded


#: Format version -> the migration from that version to the next one.
MIGRATIONS: dict[int, LogMigration] = {0: _v0_to_v1, 1: _v1_to_v2, 2: _v2_to_v3}


def migrate_log(
    manifest: dict[str, Any], events: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Bring a raw log (parsed JSON, not yet validated) to :data:`LOG_FORMAT_VERSION`.

    Older versions are upgraded step by step through :data:`MIGRATIONS`; the current
    version passes through unchanged; a newer version is refused.
    """
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise MigrationError("manifest has no integer format_version")
    if version > LOG_FORMAT_VERSION:
        raise MigrationError(
            f"log format {version} is newer than this llmecon supports "
            f"({LOG_FORMAT_VERSION}); upgrade llmecon to read it"
        )
    while version < LOG_FORMAT_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise MigrationError(f"no migration from log format {version}")
        manifest, events = step(manifest, events)
        version += 1
        manifest = {**manifest, "format_version": version}
    return manifest, events
