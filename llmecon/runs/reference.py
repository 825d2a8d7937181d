"""Reference welfare for a run's economy: the status quo and the oracle."""

from __future__ import annotations

from typing import Any

from llmecon.planners import PlannerContext, optimal_rates

#: Above this many workers the oracle is skipped in run summaries (it scales linearly,
#: ~3 s per 1 000 workers on 2 cores); `llmecon compare` still computes it on request.
ORACLE_MAX_AGENTS = 20_000


def reference_welfare(ctx: PlannerContext) -> dict[str, Any]:
    """Status-quo SWF and, for economies up to :data:`ORACLE_MAX_AGENTS`, the oracle's."""
    economy = ctx.economy
    _, status_quo = economy.evaluate(ctx.status_quo())
    out: dict[str, Any] = {"status_quo_swf": status_quo.swf}
    if economy.size <= ORACLE_MAX_AGENTS:
        best = optimal_rates(economy, ctx.edges, min_rate=ctx.min_rate, max_rate=ctx.max_rate)
        out["oracle_swf"] = best.swf
        out["oracle_rates"] = [round(float(r), 6) for r in best.rates]
    else:
        out["oracle_swf"] = None
        out["oracle_note"] = f"skipped: more than {ORACLE_MAX_AGENTS} agents"
    return out
