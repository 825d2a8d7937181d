"""Small, fast sweeps: rational workers, a synthetic population, a few years."""

from __future__ import annotations

from typing import Any

import pytest

#: Base settings of the test sweeps (each cell runs in well under a second).
SMALL: dict[str, Any] = {
    "workers": "rational",
    "agents": 120,
    "years": 4,
    "personas": "synthetic",
}
#: 2 planners × 3 seeds (ucb draws from its random stream: resume must restore it).
GRID: dict[str, Any] = {"planner": ["saez", "ucb"], "seed": "0-2"}

#: Per-cell numbers every backend must reproduce exactly.
METRICS = (
    "final_swf",
    "best_swf",
    "gain_closed",
    "revenue_per_worker_usd",
    "mean_weekly_hours",
    "gini_income",
    "fallbacks",
    "years_completed",
)


def metrics_of(cells: Any) -> dict[str, tuple[Any, ...]]:
    """cell id -> its metrics, for exact comparison."""
    return {row["cell_id"]: tuple(row[m] for m in METRICS) for row in cells.to_dict("records")}


@pytest.fixture(autouse=True)
def _quiet_saez(recwarn: pytest.WarningsRecorder) -> None:
    """Saez's fixed point may not converge on tiny economies: a warning, not a failure."""
