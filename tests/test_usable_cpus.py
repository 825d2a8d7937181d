"""The cores a process may use: its affinity, capped by a container's CPU quota."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmecon._limits import usable_cpus
from llmecon.models._local import LocalProvider


@pytest.mark.parametrize(
    ("cpu_max", "cores"),
    [
        ("200000 100000\n", 2),  # a container given 2 CPUs on a 64-core host
        ("150000 100000\n", 2),  # 1.5 CPUs: 2 threads, not 1
        ("max 100000\n", 64),  # no quota
        ("garbage", 64),
        (None, 64),  # no cgroup v2 file
    ],
)
def test_usable_cpus_follows_the_quota_then_the_affinity(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cpu_max: str | None, cores: int
) -> None:
    # llama.cpp got os.cpu_count() threads: the host's 64 on a container's 2 CPUs
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    path = tmp_path / "cpu.max"
    if cpu_max is not None:
        path.write_text(cpu_max)
    assert usable_cpus(str(path)) == cores


def test_the_embedded_model_uses_the_cores_the_process_may_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr("llmecon.models._local.usable_cpus", lambda: usable_cpus("/nonexistent"))
    assert LocalProvider().n_threads == 3
