"""Census-calibrated worker personas (docs/design.md §4).

Personas are drawn jointly from official tables shipped in ``llmecon/personas/data/``
(derived by ``scripts/build_census_tables.py``; sources in ``data/SOURCES.md``):
occupation ∝ OEWS employment, sector given occupation, sex/age/education given
occupation, a wage from the occupation's OEWS quantile function through an
age/education copula with a Pareto top tail, usual hours by age (CPS ASEC), and a
household by weighted hot-deck from the taxcalc CPS file. ``mode="gb2"`` draws wages
from LLM Economist's GB2 ACS-2023 fit instead.

Example::

    import numpy as np
    from llmecon.personas import sample_personas, validate, population_from_personas

    sample = sample_personas(1000, np.random.default_rng(0))
    print(validate(sample))
    population = sample.to_population()          # or population_from_personas(list)

    # a stratified, weighted bank: at least 5 personas in every federal bracket
    bank = sample_personas(100, np.random.default_rng(0), min_per_bracket=5)
"""

from llmecon.personas._gb2 import GB2, LLM_ECONOMIST_GB2
from llmecon.personas._persona import (
    Persona,
    default_bank_path,
    load_bank,
    persona_text,
    persona_texts,
    population_from_personas,
    write_bank,
)
from llmecon.personas._sampler import (
    PersonaSample,
    SamplerConfig,
    WageMode,
    sample_personas,
    stratified_sample,
)
from llmecon.personas._tables import CensusTables, PersonaError, load_tables
from llmecon.personas._validate import (
    ValidationReport,
    ValidationRow,
    implausible_records,
    validate,
)

__all__ = [
    "GB2",
    "LLM_ECONOMIST_GB2",
    "CensusTables",
    "Persona",
    "PersonaError",
    "PersonaSample",
    "SamplerConfig",
    "ValidationReport",
    "ValidationRow",
    "WageMode",
    "default_bank_path",
    "implausible_records",
    "load_bank",
    "load_tables",
    "persona_text",
    "persona_texts",
    "population_from_personas",
    "sample_personas",
    "stratified_sample",
    "validate",
    "write_bank",
]
