"""Reference welfare for a run's economy: no tax, the status quo and the oracle.

The headline number of a run is the share of the welfare gain from no tax to the oracle
that it closes, ``gain_closed = (W − W_none) / (W_oracle − W_none)``
(:func:`llmecon.economy.gain_closed`): 0 for the free market, 1 for the oracle,
defined for negative SWFs (CRRA with η > 1), ``None`` ("n/a") when the two coincide.
"""

from __future__ import annotations

from typing import Any

from llmecon.economy import gain_closed
from llmecon.planners import PlannerContext, optimal_rates

#: Above this many workers the oracle is skipped in run summaries (it scales linearly,
#: ~1 s per 1 000 quasi-linear workers on 2 cores, ~30 times that under CRRA);
#: `llmecon compare` still computes it on request.
ORACLE_MAX_AGENTS = 20_000


def reference_welfare(ctx: PlannerContext) -> dict[str, Any]:
    """SWF with no tax (every rate at the lowest allowed, as the ``none`` planner sets
    it), under the status quo and, for economies up to :data:`ORACLE_MAX_AGENTS`, the
    oracle's (with its rates and whether its within-year equilibrium converged)."""
    economy = ctx.economy
    _, status_quo = economy.evaluate(ctx.status_quo())
    _, no_tax = economy.evaluate(ctx.schedule([0.0] * ctx.n_brackets))
    out: dict[str, Any] = {"status_quo_swf": status_quo.swf, "none_swf": no_tax.swf}
    if economy.size <= ORACLE_MAX_AGENTS:
        best = optimal_rates(economy, ctx.edges, min_rate=ctx.min_rate, max_rate=ctx.max_rate)
        out["oracle_swf"] = best.swf
        out["oracle_rates"] = [round(float(r), 6) for r in best.rates]
        out["oracle_converged"] = best.converged
    else:
        out["oracle_swf"] = None
        out["oracle_note"] = f"skipped: more than {ORACLE_MAX_AGENTS} agents"
    return out


def gain_closed_of(swf: float, reference: dict[str, Any]) -> float | None:
    """:func:`~llmecon.economy.gain_closed` of ``swf`` against a :func:`reference_welfare`
    result (``None`` when the oracle was skipped or the gap is nil)."""
    return gain_closed(swf, reference.get("none_swf"), reference.get("oracle_swf"))
