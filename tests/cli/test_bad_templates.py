"""A ``--prompts`` folder with a template that is not UTF-8 is refused up front, naming
the file, by every command that takes one."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from llmecon.cli import main
from llmecon.prompts import PromptError, PromptLibrary


@pytest.fixture
def latin1_prompts(tmp_path: Path) -> Path:
    folder = tmp_path / "my_prompts"
    folder.mkdir()
    (folder / "worker_system.j2").write_bytes("Vous êtes {{ persona.id }}.\n".encode("latin-1"))
    return folder


def test_library_names_the_file_and_line(latin1_prompts: Path) -> None:
    with pytest.raises(PromptError) as info:
        PromptLibrary(latin1_prompts)
    assert str(info.value) == (
        f"template {latin1_prompts / 'worker_system.j2'} is not UTF-8 text (line 1, byte b'\\xea')"
    )


@pytest.mark.parametrize(
    "args",
    [
        ("prompts", "check"),
        ("prompts", "render", "worker_system.j2"),
        ("prompts", "list"),
        ("run", "--planner", "mock/default", "--agents", "2", "--years", "1"),
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_commands_print_one_clear_line(
    latin1_prompts: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    extra = ["--out", str(tmp_path / "runs")] if args[0] == "run" else []
    result = CliRunner().invoke(main, [*args, "--prompts", str(latin1_prompts), *extra])
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    assert "worker_system.j2 is not UTF-8 text (line 1" in result.output
    assert not (tmp_path / "runs").exists()


def test_a_utf8_override_with_a_byte_order_mark_still_works(tmp_path: Path) -> None:
    folder = tmp_path / "bom"
    folder.mkdir()
    (folder / "extra.j2").write_bytes("\ufeffHallo {{ name }}\n".encode())
    library = PromptLibrary(folder)
    assert library.source("extra.j2") == "Hallo {{ name }}\n"
