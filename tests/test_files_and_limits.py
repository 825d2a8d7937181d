"""``llmecon._files`` (clear errors for unreadable text files) and ``llmecon._limits``
(concurrency below the open-file limit)."""

from __future__ import annotations

import os
import re
import resource
from pathlib import Path

import pytest

from llmecon import _limits
from llmecon._files import (
    TextFileError,
    atomic_write,
    atomic_write_text,
    is_stale_temp,
    make_folder,
    read_text_file,
    remove_stale_temps,
)
from llmecon._limits import max_safe_concurrency


def test_read_text_file_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "experiment.yaml"
    path.write_bytes(b"planner: saez\nnote: caf\xe9\n")
    with pytest.raises(TextFileError) as info:
        read_text_file(path, "config file")
    assert str(info.value) == f"config file {path} is not UTF-8 text (line 2, byte b'\\xe9')"
    assert isinstance(info.value, ValueError)


def test_read_text_file_missing_folder_and_bom(tmp_path: Path) -> None:
    with pytest.raises(TextFileError, match=r"^config file not found: .*nope\.toml$"):
        read_text_file(tmp_path / "nope.toml", "config file")
    with pytest.raises(TextFileError, match="is a folder, not a file"):
        read_text_file(tmp_path, "config file")
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbfyears: 3\n")
    assert read_text_file(bom) == "years: 3\n"


def test_make_folder_makes_parents_and_names_a_file_in_the_way(tmp_path: Path) -> None:
    assert make_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir()
    make_folder(tmp_path / "a" / "b")  # there already: fine
    (tmp_path / "f").write_text("x")
    for target in (tmp_path / "f", tmp_path / "f" / "sub", tmp_path / "f" / "sub" / "deeper"):
        with pytest.raises(NotADirectoryError) as caught:
            make_folder(target)
        assert caught.value.strerror == f"{tmp_path / 'f'} is a file, not a folder"


@pytest.mark.parametrize(
    ("soft", "cap"),
    [(1024, 480), (4096, 2016), (256, 96), (100, 18), (66, 1), (64, 1), (10, 1)],
)
def test_concurrency_cap_follows_the_soft_open_file_limit(
    monkeypatch: pytest.MonkeyPatch, soft: int, cap: int
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda which: (soft, 1_000_000))
    assert max_safe_concurrency() == cap


def test_concurrency_cap_with_no_limit_or_an_unknown_one(monkeypatch: pytest.MonkeyPatch) -> None:
    infinity = resource.RLIM_INFINITY
    monkeypatch.setattr(resource, "getrlimit", lambda which: (infinity, infinity))
    assert max_safe_concurrency() == (_limits.UNLIMITED_FILES - 64) // 2

    def fails(which: int) -> tuple[int, int]:
        raise OSError("not supported")

    monkeypatch.setattr(resource, "getrlimit", fails)
    assert max_safe_concurrency() == _limits.UNKNOWN_LIMIT_CAP


def test_concurrency_cap_reads_the_real_limit() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    expected = (_limits.UNLIMITED_FILES if soft == resource.RLIM_INFINITY else soft) - 64
    assert max_safe_concurrency() == max(1, expected // 2)


def test_a_device_or_pipe_given_as_a_file_is_named_as_such(tmp_path: Path) -> None:
    # `--personas /dev/null` said "persona file not found: /dev/null"; `--config
    # /dev/null` "config file not found"; read_text_file would have read a pipe for ever.
    import os

    import llmecon
    from llmecon.personas import PersonaError, load_bank

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    for device in (Path("/dev/null"), pipe):
        said = "is not a regular file (a device, pipe or socket)"
        with pytest.raises(TextFileError, match=re.escape(f"template {device} {said}")):
            read_text_file(device, "template")
        with pytest.raises(PersonaError, match=re.escape(f"persona file {device} {said}")):
            load_bank(device)
        with pytest.raises(llmecon.ConfigError, match=re.escape(f"config file {device} {said}")):
            llmecon.run(str(device), write_log=False)
    with pytest.raises(llmecon.ConfigError, match=r"config file .* is a folder, not a file"):
        llmecon.run(str(tmp_path), write_log=False)


def test_atomic_write_syncs_the_folder_after_the_rename(
    tmp_path: Path, disk_steps: list[tuple[str, object]]
) -> None:
    # The rename of a run's call file (or a resume's cut log) is a change to its
    # folder: unsynced, a power loss can take it back while the log naming the new
    # file, synced at the year's end, survives (a completed year whose calls are gone).
    atomic_write_text(tmp_path / "years.csv", "year\n1\n")
    folder = os.stat(tmp_path)
    renamed = disk_steps.index(("replace", "years.csv"))
    assert ("fsync", (folder.st_dev, folder.st_ino)) in disk_steps[renamed:]


def test_a_temporary_file_of_atomic_write_is_stale_once_its_process_is_gone(
    tmp_path: Path,
) -> None:
    # The name atomic_write gives its temporary file is the one the cleanup recognises:
    # being written (this process runs) it is not stale; the same name with the pid of
    # an ended process is.
    import subprocess
    import sys

    seen: list[Path] = []

    def write(tmp: Path) -> None:
        tmp.write_text("x")
        seen.append(tmp)
        assert not is_stale_temp(tmp)
        assert remove_stale_temps(tmp_path) == 0 and tmp.exists()

    atomic_write(tmp_path / "years.csv", write)
    ended = subprocess.Popen([sys.executable, "-c", ""])
    ended.wait()
    left = seen[0].with_name(seen[0].name.replace(f".{os.getpid()}-", f".{ended.pid}-"))
    left.write_text("x")
    folder = tmp_path / f".calls.{ended.pid}-0123abcd.tmp"  # a folder is never removed
    folder.mkdir()
    assert is_stale_temp(left) and not is_stale_temp(folder)
    assert remove_stale_temps(tmp_path) == 1 and not left.exists() and folder.is_dir()
    assert remove_stale_temps(tmp_path / "missing") == 0
