"""The wheel a user installs from an index ships what the code reads, and runs from it.

Every other test runs the editable checkout, where the prompts and the persona bank are
the repository's top-level folders; an installed wheel reads them from package data
(``llmecon/_data/``), a path nothing else exercises."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tracked(*folders: str) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", *folders], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [name for name in listed.split("\0") if name]


def test_the_wheel_ships_the_data_and_runs_from_its_install(tmp_path: Path) -> None:
    # hatchling (the build backend, in the dev extra) builds offline, as pip would
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path / "dist")],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = (tmp_path / "dist").glob("llmecon-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"llmecon/_data/{name}" for name in _tracked("prompts", "personas")}
    data = {name for name in _tracked("llmecon") if not name.endswith(".py")}
    assert shipped <= names, sorted(shipped - names)
    assert data <= names, sorted(data - names)  # tables, presets, the bank's sources
    assert "llmecon/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "benchmarks/", "runs/")) for n in names)

    # installed (no dependencies: the test's own environment has them) and run from
    # another folder, it reads its templates and bank from the package's data
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(target)}
    work = tmp_path / "work"
    work.mkdir()

    def llmecon(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "llmecon", *args],
            cwd=work, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    listing = llmecon("prompts", "list")
    assert listing.returncode == 0, listing.stderr
    assert str(target / "llmecon" / "_data" / "prompts") in " ".join(listing.stdout.split())
    ran = llmecon("run", "--planner", "saez", "--workers", "rational", "--agents", "20",
                  "--years", "2", "--no-reference", "--run-id", "w")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert (work / "runs" / "w" / "personas.jsonl").is_file()
    replayed = llmecon("replay", "runs/w")
    assert replayed.returncode == 0 and "replay matches" in replayed.stdout, replayed.stderr
