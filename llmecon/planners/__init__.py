"""Planners: baselines (fixed, Saez, bandits) and the numerical oracle.

Pure maths on top of :mod:`llmecon.economy`; the LLM planner lives in
:mod:`llmecon.agents` and shares the :class:`Planner` shape.
"""

from llmecon.planners.bandits import BanditPlanner
from llmecon.planners.base import (
    FIRST_YEAR_NOTE,
    Planner,
    PlannerContext,
    PlannerError,
    YearRecord,
    check_planner_spec,
    first_year_note,
    is_baseline,
    make_planner,
    parse_rates,
    planner_names,
    planner_warning,
    register_planner,
)
from llmecon.planners.fixed import FixedPlanner, rate_unit_warning
from llmecon.planners.oracle import OraclePlanner, OracleResult, optimal_rates
from llmecon.planners.saez import (
    EmpiricalSaezPlanner,
    SaezConvergenceWarning,
    SaezPlanner,
    SaezResult,
    SaezWeights,
    estimate_elasticity,
    saez_bracket_rates,
    saez_weights,
    solve_saez,
)

__all__ = [
    "FIRST_YEAR_NOTE",
    "BanditPlanner",
    "EmpiricalSaezPlanner",
    "FixedPlanner",
    "OraclePlanner",
    "OracleResult",
    "Planner",
    "PlannerContext",
    "PlannerError",
    "SaezConvergenceWarning",
    "SaezPlanner",
    "SaezResult",
    "SaezWeights",
    "YearRecord",
    "check_planner_spec",
    "estimate_elasticity",
    "first_year_note",
    "is_baseline",
    "make_planner",
    "optimal_rates",
    "parse_rates",
    "planner_names",
    "planner_warning",
    "rate_unit_warning",
    "register_planner",
    "saez_bracket_rates",
    "saez_weights",
    "solve_saez",
]
