"""``llmecon compare``: several planners on the same economy, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from llmecon.api import COMPARE_DEFAULTS, DEFAULT_PLANNERS
from llmecon.cli._common import (
    config_file_option,
    config_options,
    config_overrides,
    console,
    friendly_errors,
    out,
    year_progress,
)


@click.command()
@click.option(
    "--planners",
    default=",".join(DEFAULT_PLANNERS),
    show_default=True,
    help="Comma-separated baseline planners to compare.",
)
@config_file_option
@config_options("economy", defaults={**COMPARE_DEFAULTS, "agents": 1000})  # rational workers
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False),
    help="Also write the table to this CSV file.",
)
def compare(config_file: str | None, planners: str, csv_path: str | None, **options: Any) -> None:
    """Run baseline planners with rational workers on one economy and compare them.

    Prints, per planner: the share of the welfare gain from no tax to the oracle that
    its final year closes, (W − W_none) / (W_oracle − W_none) (0 = no tax, 100 % = the
    oracle; "n/a" when the two coincide), final and best SWF, % of the oracle's SWF
    (secondary: it depends on the SWF's origin), revenue per worker, mean weekly hours
    and the Gini of income (final year).

    \b
    Example:
      llmecon compare --planners none,us-federal,saez,oracle,ucb --agents 1000 --years 30
    """
    from llmecon.api import compare as compare_planners
    from llmecon.api import compare_config

    names = [p.strip() for p in planners.split(",") if p.strip()]
    if not names:
        raise click.UsageError("--planners is empty")
    overrides = config_overrides(options)
    settings = {k: v for k, v in overrides.items() if v is not None}
    with friendly_errors():
        base = compare_config(config_file, **settings)
        console.print(
            f"[bold]llmecon compare[/]: {len(names)} planners, {base.agents} agents, "
            f"{base.years} years, SWF {base.swf}, seed {base.seed}"
        )
        with year_progress() as progress:
            task = progress.add_task(
                "planner-years", total=int(base.years or 0) * len(names), status=""
            )
            comparison = compare_planners(
                names,
                base,
                progress=lambda name, record: progress.update(task, advance=1, status=name),
            )
    none_swf, oracle_swf = comparison.none_swf, comparison.oracle_swf
    rows = comparison.table.to_dict("records")
    table = Table(
        title=f"Planners compared (no-tax SWF {none_swf:,.6g}, oracle SWF {oracle_swf:,.6g}; "
        "gain closed = (W − W_none) / (W_oracle − W_none))"
    )
    for col in (
        "planner",
        "gain closed",
        "final SWF",
        "best SWF",
        "% of oracle",
        "revenue/worker",
        "mean hours",
        "Gini (income)",
    ):
        table.add_column(col, justify="left" if col == "planner" else "right")
    for row in rows:
        pct = row["pct_of_oracle"]
        gain = row["gain_closed"]
        table.add_row(
            row["planner"],
            f"{100 * gain:.2f} %" if gain is not None else "n/a",
            f"{row['final_swf']:,.6g}",
            f"{row['best_swf']:,.6g}",
            f"{pct:.2f} %" if pct is not None else "n/a",
            f"${row['revenue_per_worker_usd']:,.0f}",
            f"{row['mean_weekly_hours']:.2f}",
            f"{row['gini_income']:.4f}",
        )
    out.print(table)
    if csv_path:
        path = Path(csv_path)
        comparison.table.to_csv(path, index=False)
        console.print(f"table written to {path}")
