"""One persona (a pydantic model, one JSONL line in a bank), its text, and banks."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmecon._files import (
    TextFileError,
    atomic_write_text,
    make_folder,
    missing_path,
    read_text_file,
)
from llmecon._paths import shipped_dir
from llmecon.economy.population import MIN_WAGE_USD, Population
from llmecon.personas._tables import EDUCATION_LABELS, PersonaError

if TYPE_CHECKING:
    from llmecon.prompts import PromptLibrary

Sex = Literal["female", "male"]
AgeBand = Literal["16-19", "20-24", "25-34", "35-44", "45-54", "55-64", "65+"]
Education = Literal[
    "less_than_high_school",
    "high_school",
    "some_college",
    "associate",
    "bachelor",
    "master",
    "doctoral_professional",
]
FilingStatus = Literal["single", "married_joint", "married_separate", "head_of_household", "widow"]

#: Highest hourly wage a persona may have: $208 M a year at 40 hours, far above any real
#: wage (the sampler cuts its Pareto tail at $10 000) and far below where the
#: economy's arithmetic would overflow.
MAX_HOURLY_WAGE_USD = 100_000.0

#: Highest annual amount (earnings, spouse's earnings) a persona may state.
MAX_ANNUAL_USD = 1e9

_FILING_TEXT = {
    "single": "You are single",
    "married_joint": "You are married and file jointly",
    "married_separate": "You are married and file separately",
    "head_of_household": "You file as head of household",
    "widow": "You are a surviving spouse",
}


class Persona(BaseModel):
    """A Census-calibrated worker (flat, one line of a persona bank)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    occupation_code: str = Field(pattern=r"^\d\d-\d{4}$", description="2018 SOC code")
    occupation_title: str
    industry: str = Field(description="NAICS sector (OEWS), short label")
    sex: Sex
    age: int = Field(ge=16, le=85)
    age_band: AgeBand
    education: Education
    hourly_wage_usd: float = Field(
        gt=0,
        le=MAX_HOURLY_WAGE_USD,
        allow_inf_nan=False,
        description="skill s_i, USD per hour (at least $7.25 unless wage_floor is false)",
    )
    usual_weekly_hours: int = Field(ge=1, le=80, description="usual hours h_i⁰ (CPS ASEC)")
    annual_earnings_usd: float = Field(
        ge=0, le=MAX_ANNUAL_USD, allow_inf_nan=False, description="52 · wage · usual hours"
    )
    filing_status: FilingStatus
    children: int = Field(ge=0, le=20, description="children under 18 in the tax unit")
    household_size: int = Field(ge=1, le=40, description="people in the tax unit")
    spouse_earnings_usd: float = Field(
        ge=0, le=MAX_ANNUAL_USD, allow_inf_nan=False, description="annual, USD"
    )
    state: str = Field(description="state of residence (name)")
    state_code: str = Field(pattern=r"^[A-Z]{2}$")
    wage_mode: Literal["census", "gb2"] = "census"
    narrative: str | None = Field(default=None, description="optional LLM-written backstory")
    weight: float = Field(
        default=1.0,
        ge=0,
        le=1e9,
        allow_inf_nan=False,
        description=(
            "survey weight: how many people the persona stands for, relative to an average "
            "persona of its bank (a stratified bank's weights have mean 1); 1 when unweighted"
        ),
    )
    wage_floor: bool = Field(
        default=True,
        description=(
            "whether the wage was drawn with the federal minimum wage ($7.25/h) as a floor; "
            "false only in banks drawn without it (``--mode gb2 --no-wage-floor``, LLM "
            "Economist's unfloored GB2 wages). Written to a bank only when false."
        ),
    )

    @model_validator(mode="after")
    def _household_fits(self) -> Persona:
        if self.household_size < 1 + self.children:
            raise ValueError("household_size must count the persona and the children")
        if self.wage_floor and self.hourly_wage_usd < MIN_WAGE_USD:
            raise ValueError(
                f"hourly_wage_usd {self.hourly_wage_usd} is below the federal minimum wage "
                f"${MIN_WAGE_USD}: only a persona marked wage_floor false (a bank drawn "
                "without the floor) may earn less"
            )
        return self


def default_bank_path() -> Path:
    """The shipped default bank, ``personas/default.jsonl``: 1 000 personas (seed 0)
    stratified by income bracket (at least 5 per federal 2025 bracket), weighted."""
    return shipped_dir("personas") / "default.jsonl"


def write_bank(path: str | Path, personas: Iterable[Persona]) -> Path:
    """Write personas as JSONL (one persona per line), atomically: a write that fails
    (a full disk) leaves the file as it was; returns the path."""
    path = Path(path)
    make_folder(path.parent)
    # ``wage_floor`` is written only when false, so floored banks keep their format.
    lines = [
        p.model_dump_json(exclude_none=True, exclude={"wage_floor"} if p.wage_floor else None)
        for p in personas
    ]
    if not lines:
        raise PersonaError(f"refusing to write an empty persona bank to {path}")
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def load_bank(path: str | Path) -> list[Persona]:
    """Read a JSONL persona bank; a missing or corrupt file raises :class:`PersonaError`."""
    path = Path(path)
    if path.is_dir():
        raise PersonaError(f"{path} is a folder; a persona bank is a JSONL file")
    if not path.is_file():
        raise PersonaError(f"persona file not found: {missing_path(path)}")
    try:
        text = read_text_file(path, "persona file")
    except TextFileError as exc:  # unreadable, or not UTF-8 (naming the line)
        raise PersonaError(str(exc)) from None
    personas: list[Persona] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            personas.append(Persona.model_validate(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise PersonaError(f"{path}, line {lineno}: not valid JSON ({exc.msg})") from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "persona"
            value = first.get("input")
            got = f" (got {value!r})" if isinstance(value, int | float) else ""
            raise PersonaError(f"{path}, line {lineno}: {where}: {first['msg']}{got}") from exc
    if not personas:
        raise PersonaError(f"persona file {path} holds no personas")
    ids = [p.id for p in personas]
    if len(set(ids)) != len(ids):
        raise PersonaError(f"persona file {path} repeats persona ids")
    return personas


def population_from_personas(personas: Sequence[Persona], source: str = "personas") -> Population:
    """The economy's view of the personas: wages, usual hours (for the calibration) and
    survey weights."""
    if not personas:
        raise PersonaError("no personas to build a population from")
    weight = np.array([p.weight for p in personas], dtype=float)
    if not weight.sum() > 0:
        raise PersonaError("every persona has weight 0: nobody to simulate")
    return Population(
        np.array([p.hourly_wage_usd for p in personas], dtype=float),
        np.array([p.usual_weekly_hours for p in personas], dtype=float),
        tuple(p.id for p in personas),
        source=source,
        weight=weight,
    )


def persona_context(persona: Persona) -> dict[str, object]:
    """The ``persona`` variable templates see: the fields plus ready-made phrases."""
    ctx: dict[str, object] = persona.model_dump()
    ctx["person_word"] = "woman" if persona.sex == "female" else "man"
    ctx["education_text"] = EDUCATION_LABELS[persona.education]
    ctx["filing_text"] = _FILING_TEXT[persona.filing_status]
    ctx["has_spouse"] = persona.filing_status in ("married_joint", "married_separate")
    return ctx


def persona_text(persona: Persona, library: PromptLibrary | None = None) -> str:
    """The persona in the second person, rendered from ``prompts/persona.j2``.

    ``library`` is a :class:`llmecon.prompts.PromptLibrary` (default: the shipped
    templates). The narrative, if present, is appended by the template.
    """
    # Imported here: the prompt layer sits above the persona layer (CONTRIBUTING.md).
    from llmecon.prompts import PromptLibrary

    lib = library if library is not None else PromptLibrary()
    return lib.render("persona.j2", persona=persona_context(persona)).text
