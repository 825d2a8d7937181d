"""The ``llmecon`` command line: one module per concern, loaded only when used.

Subcommands are imported lazily so that ``llmecon --help`` and quick commands stay
fast and never import provider SDKs they do not need.
"""

from __future__ import annotations

import contextlib
import importlib
import warnings
from collections.abc import Iterator

import click

#: command name -> ("module:attribute" of a click command or group, one-line help).
#: The help is kept here so that ``llmecon --help`` imports none of the commands.
_COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "llmecon.cli.run:run",
        "Simulate tax years: a planner sets schedules, workers choose hours.",
    ),
    "compare": ("llmecon.cli.compare:compare", "Compare planners on one economy (a sweep)."),
    "sweep": (
        "llmecon.cli.sweep:sweep",
        "Run many runs over a grid of settings and seeds, with 95 % intervals.",
    ),
    "personas": (
        "llmecon.cli.personas:personas",
        "Sample, show and validate Census-calibrated personas.",
    ),
    "models": ("llmecon.cli.models:models", "List model providers and test a model."),
    "replay": ("llmecon.cli.replay:replay", "Re-simulate a logged run offline and verify it."),
    "resume": ("llmecon.cli.replay:resume", "Continue a crashed run from its last complete year."),
    "prompts": ("llmecon.cli.prompts:prompts", "List, render and check the prompt templates."),
    "probe": ("llmecon.cli.probe:probe", "Test a model as a worker: elasticity, anchoring, …"),
    "report": ("llmecon.cli.report:report", "Write an HTML report of one or more logged runs."),
    "export": ("llmecon.cli.export:export", "Write a logged run's tables as Parquet or CSV."),
}


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Within a command, a Python warning (the Saez fixed point that did not converge,
    a run's log that could not be finished) reads ``warning: <message>`` on the
    terminal, without Python's file, line and source line. Only its text is changed:
    where it goes, and a caller recording warnings, stay as they were."""

    def text(message: Warning | str, *args: object, **kwargs: object) -> str:
        return f"warning: {message}\n"

    previous = warnings.formatwarning
    warnings.formatwarning = text
    try:
        yield
    finally:
        warnings.formatwarning = previous


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr = entry[0].split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> object:
        """Any command; a storage error no command turned into a message of its own (its
        output on a full disk, say) is one line, never a traceback. Other errors keep
        theirs (a bug's), and a closed pipe is click's to handle quietly."""
        from llmecon._files import is_storage_error, os_error_text

        try:
            with _warnings_as_lines():
                return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            # Ctrl-C (or a scheduler's SIGINT) before or outside a command's own handling,
            # e.g. while it starts: exit 130 as documented, not click's "Aborted!" and 1.
            # While a new run's folder was set up, that folder was discarded: said so.
            from llmecon.runs.log import SetupInterrupted

            click.echo(str(exc) if isinstance(exc, SetupInterrupted) else "interrupted", err=True)
            raise SystemExit(130) from None
        except OSError as exc:
            if not is_storage_error(exc):
                raise
            raise click.ClickException(os_error_text(exc)) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="llmecon")
def main() -> None:
    """Design tax policy with language models.

    Census-calibrated worker personas choose their hours under a piecewise-linear tax
    schedule; a planner (an LLM learning in context, or a baseline) sets the schedule
    each tax year. Every run is logged under runs/ for offline replay.

    \b
    Quick start (no API key needed):
      llmecon run                                   # embedded model, small run
      llmecon run --planner saez --workers rational --agents 1000 --years 20
      llmecon compare --planners none,us-federal,saez,oracle,ucb
      llmecon sweep --planners saez,ucb --workers rational --seeds 0-9
    """
