"""The economics core: schedules, utility, best response, welfare, metrics.

Pure numpy and deterministic; imports nothing from the LLM, I/O or CLI layers.
"""

from llmecon.economy.best_response import best_response_hours
from llmecon.economy.economy import (
    CALIBRATION_SCHEDULE,
    Economy,
    Equilibrium,
    Outcome,
    RatesScore,
    YearMetrics,
)
from llmecon.economy.population import Population, PopulationError, synthetic_population
from llmecon.economy.schedule import (
    BRACKET_PRESETS,
    US_FEDERAL_2025_EDGES,
    US_FEDERAL_2025_RATES,
    ScheduleError,
    TaxSchedule,
    parse_brackets,
)
from llmecon.economy.utility import UtilityConfig
from llmecon.economy.welfare import (
    SWF,
    SWFError,
    WelfareInputs,
    equality,
    gain_closed,
    get_swf,
    gini,
    inverse_income_weights,
    register_swf,
    registered_swf,
    swf_names,
    unregister_swf,
)

__all__ = [
    "BRACKET_PRESETS",
    "CALIBRATION_SCHEDULE",
    "SWF",
    "US_FEDERAL_2025_EDGES",
    "US_FEDERAL_2025_RATES",
    "Economy",
    "Equilibrium",
    "Outcome",
    "Population",
    "PopulationError",
    "RatesScore",
    "SWFError",
    "ScheduleError",
    "TaxSchedule",
    "UtilityConfig",
    "WelfareInputs",
    "YearMetrics",
    "best_response_hours",
    "equality",
    "gain_closed",
    "get_swf",
    "gini",
    "inverse_income_weights",
    "parse_brackets",
    "register_swf",
    "registered_swf",
    "swf_names",
    "synthetic_population",
    "unregister_swf",
]
