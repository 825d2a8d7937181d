"""Prompt templates: every prompt text lives in a Jinja template in ``prompts/``.

Templates render in a sandboxed environment with ``StrictUndefined``: a missing or
misspelt variable is an error, never silently empty. ``--prompts DIR`` overrides the
shipped folder template by template (a file in DIR wins, the rest fall back to the
shipped ones). Each template's sha256 is recorded in the run manifest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from llmecon._files import TextFileError, read_text_file
from llmecon._paths import shipped_dir


class PromptError(ValueError):
    """A template is missing, unreadable (not UTF-8) or failed to render."""


def shipped_prompts_dir() -> Path:
    return shipped_dir("prompts")


@dataclass(frozen=True)
class RenderedPrompt:
    """A rendered template with its provenance."""

    name: str
    text: str
    sha256: str


class PromptLibrary:
    """The templates of one run: the shipped set, optionally overridden by a folder."""

    def __init__(self, override_dir: str | Path | None = None) -> None:
        dirs: list[Path] = []
        if override_dir is not None:
            override = Path(override_dir)
            if not override.is_dir():
                raise PromptError(f"prompt folder not found: {override}")
            for template in sorted(override.glob("*.j2")):  # fail now, naming the file
                _read_template(template)
            dirs.append(override)
        dirs.append(shipped_prompts_dir())
        self.search_path = tuple(dirs)
        self._env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader([str(d) for d in dirs]),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            # A library serves one run: templates are read once (hashes stay truthful).
            auto_reload=False,
        )
        self._paths: dict[str, Path] = {}
        self._hashes: dict[str, str] = {}
        self._env.filters["usd"] = _usd
        self._env.filters["pct"] = _pct

    def names(self) -> list[str]:
        """All template names (``*.j2``) visible to this library."""
        found: set[str] = set()
        for d in self.search_path:
            found.update(p.name for p in d.glob("*.j2"))
        return sorted(found)

    def path(self, name: str) -> Path:
        if name in self._paths:
            return self._paths[name]
        for d in self.search_path:
            candidate = d / name
            if candidate.is_file():
                self._paths[name] = candidate
                return candidate
        raise PromptError(f"no template named {name!r} in {', '.join(map(str, self.search_path))}")

    def source(self, name: str) -> str:
        return _read_template(self.path(name))

    def sha256(self, name: str) -> str:
        if name not in self._hashes:
            self._hashes[name] = hashlib.sha256(self.path(name).read_bytes()).hexdigest()
        return self._hashes[name]

    def hashes(self) -> dict[str, str]:
        """``{template name: sha256}`` for the run manifest."""
        return {name: self.sha256(name) for name in self.names()}

    def render(self, name: str, **context: Any) -> RenderedPrompt:
        """Render ``name`` with ``context``; any undefined variable raises PromptError."""
        self.path(name)  # clear error for a missing template
        try:
            text = self._env.get_template(name).render(**context)
        except jinja2.UndefinedError as exc:
            raise PromptError(f"template {name}: {exc.message}") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise PromptError(f"template {name}, line {exc.lineno}: {exc.message}") from exc
        except jinja2.TemplateError as exc:
            raise PromptError(f"template {name}: {exc}") from exc
        except UnicodeDecodeError:  # a template included by this one
            raise PromptError(f"template {name} includes a file that is not UTF-8 text") from None
        return RenderedPrompt(name, text.strip() + "\n", self.sha256(name))


def _read_template(path: Path) -> str:
    try:
        return read_text_file(path, "template")
    except TextFileError as exc:
        raise PromptError(str(exc)) from None


def _usd(value: float, decimals: int = 0) -> str:
    return f"${value:,.{decimals}f}"


def _pct(value: float, decimals: int = 0) -> str:
    """A fraction as a percentage: ``0.22 -> 22%``."""
    return f"{100 * value:.{decimals}f}%"
