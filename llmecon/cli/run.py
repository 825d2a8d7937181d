"""``llmecon run``: simulate tax years with a planner and workers, logged to runs/."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from llmecon.cli._common import (
    ECONOMY_KEYS,
    console,
    economy_options,
    friendly_errors,
    out,
    year_progress,
)


@click.command()
@click.option(
    "--planner",
    help="A baseline (none, us-federal, flat:<r>, fixed:<r,…>, saez, "
    "saez-empirical, oracle, ucb, thompson, egreedy) or a model name. [default: saez]",
)
@click.option(
    "--workers", help="'rational' (exact best response) or a model name. [default: rational]"
)
@click.option("--worker-steps", type=int, help="Hour decisions per worker per year. [default: 1]")
@economy_options
@click.option("--out", help="Folder for run outputs. [default: runs]")
@click.option("--run-id", help="Name of the run folder. [default: <timestamp>-<planner>]")
@click.option(
    "--no-reference",
    is_flag=True,
    default=None,
    help="Skip the status-quo/oracle reference welfare in the summary.",
)
def run(config_file: str | None, no_reference: bool | None, **options: Any) -> None:
    """Simulate tax years: the planner sets a schedule, workers choose hours.

    Writes runs/<run-id>/ with manifest.json, events.jsonl (every event, flushed as
    written) and years.csv (per-year metrics), then prints a summary against the
    status quo and the oracle.

    \b
    Examples:
      llmecon run --planner saez --workers rational --agents 1000 --years 20
      llmecon run --planner oracle --swf utilitarian --personas synthetic
      llmecon run --config experiment.yaml --seed 3
    """
    from llmecon.runs import Simulation, build_config

    overrides = {
        k: options.get(k)
        for k in ("planner", "workers", "worker_steps", "out", "run_id", *ECONOMY_KEYS)
    }
    if no_reference:
        overrides["reference"] = False
    with friendly_errors():
        config = build_config(config_file, overrides)
        console.print(
            f"[bold]llmecon run[/]: planner [cyan]{config.planner}[/], "
            f"workers [cyan]{config.workers}[/], "
            f"{config.agents} agents, {config.years} years, SWF {config.swf}, seed {config.seed}"
        )
        if config.planner.startswith("local/") or str(config.workers).startswith("local/"):
            console.print(
                "using the embedded offline model (SmolLM2-135M via llama.cpp, no API key): "
                "small and weak, but real; pass --planner gpt-4o (or another model) for a "
                "stronger run"
            )
        with year_progress(config.years or 0, "years") as progress:
            task = progress.add_task("tax years", total=config.years, status="starting…")
            state: dict[str, Any] = {"year": "", "calls": ""}

            def show() -> None:
                progress.update(task, status=f"{state['year']}{state['calls']}")

            def on_calls(totals: dict[str, Any]) -> None:
                cost = totals["cost_usd"]
                state["calls"] = (
                    f"  calls {totals['calls']}  tokens "
                    f"{totals['input_tokens'] + totals['output_tokens']:,}  "
                    f"cost {'n/a' if cost is None else f'${cost:.4f}'}  "
                    f"failures {totals['failures']}"
                )
                show()

            def on_year(record: Any, stats: dict[str, Any]) -> None:
                last = record.year == (config.years or 0) - 1
                state["year"] = (
                    f"year {record.year}  SWF {record.metrics.swf:,.1f}  "
                    f"fallbacks {stats['fallbacks']}"
                    + ("  (computing reference welfare…)" if last and config.reference else "")
                )
                progress.advance(task)
                show()

            sim = Simulation(config, on_call_progress=on_calls)
            result = sim.run(on_year)
    _print_summary(result.summary, result.records[-1].schedule.describe())
    console.print(f"run written to [bold]{result.run_dir}[/]")


def _print_summary(summary: dict[str, Any], final_schedule: str) -> None:
    table = Table(title="Run summary", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("final SWF", f"{summary['final_swf']:,.2f}")
    table.add_row("best SWF (year)", f"{summary['best_swf']:,.2f} ({summary['best_year']})")
    if "status_quo_swf" in summary:
        table.add_row("status-quo SWF", f"{summary['status_quo_swf']:,.2f}")
    if summary.get("oracle_swf") is not None:
        table.add_row("oracle SWF", f"{summary['oracle_swf']:,.2f}")
        table.add_row("final, % of oracle", f"{summary['final_pct_of_oracle']:.2f} %")
    elif summary.get("oracle_note"):
        table.add_row("oracle", summary["oracle_note"])
    table.add_row("fallbacks", str(summary["fallbacks"]))
    if "calls" in summary:
        table.add_row("model calls (failed)", f"{summary['calls']} ({summary['failures']})")
        table.add_row(
            "tokens in / out", f"{summary['input_tokens']:,} / {summary['output_tokens']:,}"
        )
        cost = summary["cost_usd"]
        table.add_row("cost", "unknown (price not in table)" if cost is None else f"${cost:.4f}")
    out.print(table)
    out.print("[bold]final schedule[/]\n" + final_schedule)
