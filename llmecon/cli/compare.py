"""``llmecon compare``: several planners on the same economy, side by side."""

from __future__ import annotations

import csv
from pathlib import Path
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

DEFAULT_PLANNERS = "none,us-federal,saez,oracle,ucb"


@click.command()
@click.option(
    "--planners",
    default=DEFAULT_PLANNERS,
    show_default=True,
    help="Comma-separated baseline planners to compare.",
)
@economy_options
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
    from llmecon.economy import gain_closed
    from llmecon.planners import optimal_rates
    from llmecon.runs import Simulation, build_config

    names = [p.strip() for p in planners.split(",") if p.strip()]
    if not names:
        raise click.UsageError("--planners is empty")
    overrides = {k: options.get(k) for k in ECONOMY_KEYS}
    if overrides.get("years") is None:
        overrides["years"] = 30
    overrides.update(workers="rational", reference=False)
    rows: list[dict[str, Any]] = []
    with friendly_errors():
        base = build_config(config_file, {**overrides, "planner": names[0]})
        sims = [Simulation(base.model_copy(update={"planner": n}), write_log=False) for n in names]
        first = sims[0]
        console.print(
            f"[bold]llmecon compare[/]: {len(names)} planners, {base.agents} agents, "
            f"{base.years} years, SWF {base.swf}, seed {base.seed}"
        )
        oracle = optimal_rates(
            first.economy, first.edges, min_rate=base.min_rate, max_rate=base.max_rate
        )
        context = first.planner_context
        none_swf = first.economy.evaluate(context.schedule([0.0] * context.n_brackets))[1].swf
        total = int(base.years or 0) * len(names)
        with year_progress() as progress:
            task = progress.add_task("planner-years", total=total, status="")
            for name, sim in zip(names, sims, strict=True):
                progress.update(task, status=name)
                result = sim.run(lambda record, stats: progress.update(task, advance=1))
                final = result.records[-1].metrics
                swfs = [r.metrics.swf for r in result.records]
                rows.append(
                    {
                        "planner": name,
                        "gain_closed": gain_closed(final.swf, none_swf, oracle.swf),
                        "final_swf": final.swf,
                        "best_swf": max(swfs),
                        "pct_of_oracle": 100.0 * final.swf / oracle.swf if oracle.swf else None,
                        "revenue_per_worker_usd": final.revenue_usd / sim.economy.size,
                        "mean_weekly_hours": final.mean_weekly_hours,
                        "gini_income": final.gini_income,
                    }
                )
    table = Table(
        title=f"Planners compared (no-tax SWF {none_swf:,.6g}, oracle SWF {oracle.swf:,.6g}; "
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
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        console.print(f"table written to {path}")
