"""CLI options are generated from ``RunConfig``: one declaration per setting."""

from __future__ import annotations

import re

import click
from click.testing import CliRunner

from llmecon.cli import main
from llmecon.cli._common import ConfigOption, format_default, option_name
from llmecon.cli.compare import compare
from llmecon.cli.replay import resume
from llmecon.cli.run import run
from llmecon.runs.config import OPERATIONAL_FIELDS, RunConfig, fields_in_groups

#: Flags scripts, docs and tests use: they must keep working.
KEPT_FLAGS = [
    "--config",
    "--planner",
    "--workers",
    "--worker-steps",
    "--agents",
    "--years",
    "--personas",
    "--swf",
    "--brackets",
    "--elasticity",
    "--crra",
    "--rebate-share",
    "--min-rate",
    "--max-rate",
    "--seed",
    "--out",
    "--run-id",
    "--no-reference",
    "--worker-style",
    "--worker-history",
    "--worker-reasons",
    "--no-worker-reasons",
    "--planner-history",
    "--planner-best",
    "--trust-region",
    "--planner-hints",
    "--no-planner-hints",
    "--planner-temperature",
    "--worker-temperature",
    "--prompts",
    "--timeout",
    "--max-retries",
    "--max-concurrency",
    "--max-reply-chars",
    "--deadline",
    "--max-consecutive-failures",
    "--max-failure-share",
    "--max-cost",
    "--price",
    "--api-base",
    "--planner-api-base",
    "--workers-api-base",
    "--voters-api-base",
    "--cache-dir",
    "--vote-every",
    "--vote-rule",
    "--candidates",
    "--candidate-source",
    "--voters",
    "--voter-model",
    "--fork",
    "--from-year",
]


def _config_params(command: click.Command) -> list[ConfigOption]:
    return [p for p in command.params if isinstance(p, ConfigOption)]


def _help_records(command: click.Command) -> dict[str, str]:
    ctx = click.Context(command)
    records = {}
    for p in _config_params(command):
        record = p.get_help_record(ctx)
        assert record is not None and p.name is not None
        records[p.name] = " ".join(record[1].split())
    return records


def test_every_field_has_exactly_one_run_option() -> None:
    names = [p.name for p in _config_params(run)]
    assert sorted(names) == sorted(RunConfig.model_fields)  # each once, none missing
    for p in _config_params(run):
        assert p.name is not None
        assert option_name(p.name) in p.opts
    flags = {o for p in run.params for o in (*p.opts, *p.secondary_opts)}
    assert set(KEPT_FLAGS) <= flags


def test_help_defaults_are_the_field_defaults() -> None:
    for name, text in _help_records(run).items():
        default = RunConfig.model_fields[name].default
        shown = re.findall(r"\[default: ([^\]]*)\]", text)
        if default is None:
            assert shown == [], name  # depends on other fields: the docstring explains
        else:
            assert shown == [format_default(default)], name
    assert "[default: 16]" not in CliRunner().invoke(main, ["run", "--help"]).output


def test_commands_take_their_groups() -> None:
    # compare is a sweep of planners × seeds: the economy options (--seeds replaces
    # --seed), the operational ones (--max-cost is the whole sweep's, below; its
    # workers are rational, so no --workers-api-base and no batching of their
    # decisions, nor its chat template) and --out
    economy = [n for n in fields_in_groups("economy") if n != "seed"]
    not_compare = (
        "max_cost",
        "workers_api_base",
        "batch_api",
        "batch_poll",
        "completions_batch",
        "chat_template",
    )
    operational = [n for n in OPERATIONAL_FIELDS if n not in not_compare]
    assert [p.name for p in _config_params(compare)] == [*economy, *operational, "out"]
    assert "[default: 30]" in _help_records(compare)["years"]
    assert {"--seeds", "--jobs", "--max-cost", "--ray", "--ray-address"} <= {
        o for p in compare.params for o in p.opts
    }
    assert [p.name for p in _config_params(resume)] == list(OPERATIONAL_FIELDS)
    assert {"--config", "--planners", "--csv"} <= {o for p in compare.params for o in p.opts}


def test_generated_options_reach_the_config() -> None:
    from llmecon.cli._common import config_overrides
    from llmecon.runs import build_config

    seen: dict[str, object] = {}

    @click.command()
    @click.pass_context
    def probe(ctx: click.Context, **options: object) -> None:
        seen.update(config_overrides(options))

    for p in reversed(run.params):
        probe.params.insert(0, p)
    args = ["--no-reference", "--swf", "rawlsian", "--vote-rule", "borda", "--price", "1,2"]
    result = CliRunner().invoke(probe, [*args, "--planner", "none", "--agents", "3"])
    assert result.exit_code == 0, result.output
    config = build_config(overrides=seen)
    assert (config.reference, config.swf, config.vote_rule) == (False, "rawlsian", "borda")
    assert config.price == (1.0, 2.0) and config.agents == 3
    bad = CliRunner().invoke(main, ["run", "--vote-rule", "nope"])
    assert bad.exit_code == 2 and "plurality" in bad.output


def test_planner_help_lists_the_registered_baselines() -> None:
    from llmecon.models import provider_names
    from llmecon.planners import planner_names

    text = _help_records(run)["planner"]
    for name in planner_names():
        assert name in text
    for name in provider_names():
        assert name in text
    vote_rules = _help_records(run)["vote_rule"]
    from llmecon.voting import vote_rule_names

    assert all(n in vote_rules for n in vote_rule_names())
