"""Third-party planners and providers register through entry points, loaded lazily; a
broken plug-in is a warning naming it, never a crash."""

from __future__ import annotations

import asyncio
import importlib.metadata
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmecon._plugins import PluginWarning
from llmecon.cli import main
from llmecon.models import _registry
from llmecon.planners import base

FIXTURE = "tests.cli.plugin_fixture"
ENTRY_POINTS = {
    "llmecon.planners": [
        EntryPoint("half", f"{FIXTURE}:half_planner", "llmecon.planners"),
        EntryPoint("broken-planner", f"{FIXTURE}:no_such_factory", "llmecon.planners"),
        EntryPoint("saez", f"{FIXTURE}:half_planner", "llmecon.planners"),  # name taken
    ],
    "llmecon.providers": [
        EntryPoint("myprov", f"{FIXTURE}:MyProvider", "llmecon.providers"),
        EntryPoint("brokenprov", "no_such_module_for_llmecon:Provider", "llmecon.providers"),
    ],
}


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the entry points above are installed; registries restored afterwards."""

    def entry_points(*, group: str) -> list[EntryPoint]:
        return ENTRY_POINTS.get(group, [])

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    monkeypatch.setattr(base, "_plugins_loaded", False)
    monkeypatch.setattr(_registry, "_PROVIDERS", dict(_registry._PROVIDERS))
    monkeypatch.setattr(_registry, "_plugins_loaded", False)


@pytest.mark.usefixtures("plugins")
@pytest.mark.filterwarnings("ignore::llmecon._plugins.PluginWarning")
def test_planner_plugin(tmp_path: Path) -> None:
    from llmecon.planners import is_baseline, planner_names

    with pytest.warns(PluginWarning) as caught:
        names = planner_names()
    messages = " ".join(str(w.message) for w in caught)
    assert "broken-planner" in messages and "no_such_factory" in messages
    assert "'saez'" in messages  # a plug-in may not replace a built-in
    assert names["half"] == "every marginal rate 50 % (a plug-in)"
    assert is_baseline("half")
    assert planner_names()["saez"] != names["half"]

    help_text = CliRunner().invoke(main, ["run", "--help"]).output
    assert "half" in " ".join(help_text.split())
    args = ["run", "--planner", "half", "--workers", "rational", "--agents", "20"]
    args += ["--years", "2", "--personas", "synthetic", "--no-reference"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path), "--run-id", "p"])
    assert result.exit_code == 0, result.output
    import llmecon

    rates = llmecon.load_run(tmp_path / "p").rates
    assert rates.loc[rates["bracket"] == 0, "rate"].tolist() == [0.5, 0.5]


@pytest.mark.usefixtures("plugins")
@pytest.mark.filterwarnings("ignore::llmecon._plugins.PluginWarning")
def test_provider_plugin() -> None:
    from llmecon.models import ChatMessage, get_model, provider_names

    with pytest.warns(PluginWarning, match="brokenprov"):
        assert "myprov" in provider_names()
    model = get_model("myprov/x", outputs=["hello"])
    assert model.name == "myprov/x"
    reply = asyncio.run(model.generate([ChatMessage(role="user", content="hi")]))
    assert reply.text == "hello"

    listing = CliRunner().invoke(main, ["models"]).output
    assert "myprov" in listing and "plug-in" in listing
    assert "myprov" in " ".join(CliRunner().invoke(main, ["run", "--help"]).output.split())


def test_broken_entry_points_do_not_stop_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    def entry_points(*, group: str) -> list[EntryPoint]:
        raise RuntimeError("corrupt metadata")

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(base, "_plugins_loaded", False)
    with pytest.warns(PluginWarning, match="corrupt metadata"):
        result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0 and "--planner" in result.output
