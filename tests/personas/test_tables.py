"""The shipped tables: rebuilt byte for byte from the raw files; clear errors if broken."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from llmecon.personas import PersonaError, load_tables
from llmecon.personas._tables import DATA_DIR, table_files

ROOT = Path(__file__).resolve().parents[2]
RAW = ROOT.parent / "shared" / "data" / "census"
SCRIPT = ROOT / "scripts" / "build_census_tables.py"


def _build_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("build_census_tables", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_tables_are_small_and_cited() -> None:
    files = [DATA_DIR / name for name in (*table_files(), "SOURCES.md")]
    assert all(f.is_file() for f in files)
    assert sum(f.stat().st_size for f in files) < 2_000_000
    sources = (DATA_DIR / "SOURCES.md").read_text(encoding="utf-8")
    for cite in ("OEWS May 2024", "Tables 11 and 11b", "Table 5.3", "Tax-Calculator", "OG-USA"):
        assert cite in sources
    t = load_tables()
    assert t.n_occupations > 800 and t.employment.sum() == pytest.approx(154_187_380, rel=0.01)


@pytest.mark.slow
@pytest.mark.skipif(not RAW.is_dir(), reason=f"raw census folder {RAW} not present beside the repo")
def test_build_script_reproduces_the_committed_tables(tmp_path: Path) -> None:
    pytest.importorskip("openpyxl", reason="the build script needs openpyxl (dev extra)")
    build = _build_module()
    assert build.main(["--raw", str(RAW), "--out", str(tmp_path)]) == 0
    for name in (*table_files(), "SOURCES.md"):
        assert (tmp_path / name).read_bytes() == (DATA_DIR / name).read_bytes(), name


def test_build_script_names_a_missing_raw_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build = _build_module()
    assert build.main(["--raw", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 1
    assert "nowhere" in capsys.readouterr().err


@pytest.fixture
def table_copy(tmp_path: Path) -> Path:
    out = tmp_path / "data"
    shutil.copytree(DATA_DIR, out)
    return out


def test_missing_table_names_the_file(table_copy: Path) -> None:
    (table_copy / "hours_by_age.csv").unlink()
    with pytest.raises(PersonaError, match=r"hours_by_age\.csv"):
        load_tables(table_copy)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("occupations.csv", "soc,title\n11-1011,Chief Executives\n"),
        ("households.csv", "not,a,donor,table\n1,2,3,4\n"),
        ("published.json", "{not json"),
        ("industries.csv", ""),
    ],
)
def test_corrupt_table_names_the_file(table_copy: Path, name: str, content: str) -> None:
    (table_copy / name).write_text(content, encoding="utf-8")
    with pytest.raises(PersonaError, match=name.replace(".", r"\.")):
        load_tables(table_copy)


def test_non_numeric_wages_are_reported(table_copy: Path) -> None:
    path = table_copy / "occupations.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    cells = lines[1].split(",")
    cells[3] = "lots"
    lines[1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(PersonaError, match=r"occupations\.csv"):
        load_tables(table_copy)
