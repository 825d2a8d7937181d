"""What a sweep's tables say beside their numbers: the economy every cell simulated,
that the gain closed assumes rational workers when the cells' are not, and what the
intervals across seeds cover. One text for the terminal (``llmecon sweep``, ``llmecon
compare``) and the sweep page (``llmecon report SWEEP``), read from the sweep's
manifest (``sweep.json``: its resolved settings and its cells)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llmecon._format import counted, named_few, references_caveat

#: The settings the economy line names, in its order (those that are axes of the sweep
#: are columns of its tables instead).
ECONOMY_SETTINGS = ("workers", "agents", "years", "brackets", "swf", "personas")


def shared_settings(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The settings every cell of the sweep shares (its resolved settings without the
    axes; an earlier release's manifest: the base settings as given), a persona bank
    named by its path as given rather than its digest."""
    shared = dict(manifest.get("settings_identity") or manifest.get("base") or {})
    given = (manifest.get("base") or {}).get("personas")
    if given is not None and str(shared.get("personas", "")).startswith("sha256:"):
        shared["personas"] = given
    return shared


def _values(manifest: Mapping[str, Any], name: str) -> list[Any]:
    """The values ``name`` takes in the sweep's cells, in order of first appearance."""
    if name in (manifest.get("axes") or []):
        found = [(c.get("settings") or {}).get(name) for c in manifest.get("cells") or []]
        return list(dict.fromkeys(v for v in found if v is not None))
    value = shared_settings(manifest).get(name)
    return [] if value is None else [value]


def _bank_size() -> int | None:
    from llmecon.personas import default_bank_path
    from llmecon.runs.config import _bank_size as lines

    return lines(str(default_bank_path()))


def population_by_seed(personas: Any, agents: Any) -> bool:
    """Whether a run's population is drawn with its seed: ``synthetic`` personas, or more
    agents than the shipped bank holds (the rest are fresh draws from the sampler); a
    bank's first ``agents`` personas are the same at every seed (as
    :func:`llmecon.runs.wiring.build_population` builds them)."""
    if personas == "synthetic":
        return True
    size = _bank_size()
    return personas in (None, "default") and size is not None and int(agents or 0) > size


def _personas_words(personas: Any, agents: Any) -> str:
    n = int(agents or 0)
    if personas == "synthetic":
        return "synthetic personas (drawn with each seed)"
    if personas in (None, "default"):
        if population_by_seed(personas, agents):
            return f"the shipped bank topped up by draws with each seed ({n:,} in all)"
        return f"the first {n:,} of the shipped bank"
    return f"the first {n:,} of the bank {personas}"


def economy_line(manifest: Mapping[str, Any]) -> str:
    """``Economy of every cell: rational workers, 50 agents, 10 tax years, …``: the
    settings of :data:`ECONOMY_SETTINGS` that the cells share (an axis is a column of
    the table, and said to vary)."""
    shared = shared_settings(manifest)
    axes = set(manifest.get("axes") or [])
    words = []
    for name in ECONOMY_SETTINGS:
        if name in axes:
            words.append(f"{name} varies (a column of the table)")
            continue
        value = shared.get(name)
        if value is None:
            continue
        if name == "workers":
            words.append(f"{value} workers")
        elif name == "agents":
            words.append(counted(int(value), "agent"))
        elif name == "years":
            words.append(counted(int(value), "tax year"))
        elif name == "brackets":
            words.append(f"brackets {value}")
        elif name == "swf":
            words.append(f"SWF {value}")
        elif "agents" not in axes:
            words.append(f"personas: {_personas_words(value, shared.get('agents'))}")
        else:
            words.append(f"personas {value}")
    return "Economy of every cell: " + ", ".join(words) + "."


def economy_notes(
    manifest: Mapping[str, Any], table: Any = None, by: Sequence[str] = ()
) -> list[str]:
    """What the tables of the sweep must be read with: :func:`workers_note`, then
    :func:`seed_notes`."""
    said = workers_note(manifest)
    return [*([said] if said else []), *seed_notes(manifest, table, by)]


def workers_note(manifest: Mapping[str, Any]) -> str | None:
    """That the gain closed assumes rational workers, when the cells' workers (some of
    them, when the workers are an axis) are other (the run report's caveat); nothing
    when no cell computed the references (``--no-reference``)."""
    workers = _values(manifest, "workers")
    other = [str(w) for w in workers if w != "rational"]
    if not other or _values(manifest, "reference") == [False]:
        return None
    said = references_caveat(named_few(other), "the cells'" if len(workers) == 1 else "some cells'")
    return said[0].upper() + said[1:] + "."


def seed_notes(manifest: Mapping[str, Any], table: Any = None, by: Sequence[str] = ()) -> list[str]:
    """What the intervals across seeds cover: with ``table`` (the per-setting table,
    columns ``by``) the settings whose seeds all ended alike (intervals of no width);
    over several seeds, that every seed used the same personas."""
    notes = []
    if table is not None and (same := seed_free(table, by)):
        # a setting of several values is "a=1, b=2": bracketed, so that the list reads
        named = named_few([f"({s})" if ", " in s else s for s in same], 4)
        notes.append(
            f"Every seed of {named} gave the same final SWF: nothing in these runs depends "
            "on the seed, so their intervals have no width (a persona sample, a model's "
            "sampling or a randomised planner varies with it)."
        )
    seeds = _values(manifest, "seed")
    personas, agents = _values(manifest, "personas"), _values(manifest, "agents")
    if len(seeds) > 1 and not any(population_by_seed(p, a) for p in personas for a in agents):
        notes.append(
            "Every seed used the same personas: the intervals across seeds cover the "
            "planner's and the workers' randomness, not another draw of the population "
            "(--personas synthetic draws one per seed)."
        )
    return notes


def seed_free(table: Any, by: Sequence[str]) -> list[str]:
    """The settings of ``table`` whose seeds (two or more completed) all ended with the
    same final SWF, as ``a=1, b=2`` (or the value alone for one setting column)."""
    found = []
    for row in table.to_dict("records"):
        lo, hi = row.get("final_swf_lo"), row.get("final_swf_hi")
        completed = int(row.get("n") or 0) - sum(
            int(row.get(k) or 0) for k in ("failed", "unfinished")
        )
        if completed < 2 or lo is None or hi is None or not hi - lo <= 1e-9 * abs(hi):
            continue  # (not: NaN bounds are no identical seeds)
        values = [str(row[c]) for c in by]
        found.append(
            values[0]
            if len(by) == 1
            else ", ".join(f"{c}={v}" for c, v in zip(by, values, strict=True))
        )
    return found


#: Summary metrics of model calls: a sweep's tables show them only where they say
#: something (:func:`shown_metrics`).
MODEL_METRICS = ("cost_usd", "fallbacks")


def shown_metrics(table: Any, cells: Any = None) -> dict[str, str]:
    """The summary metrics a sweep's tables show (metric -> label), in the terminal
    and on the sweep page alike: cost and fallbacks when a cell made a model call
    (``cells``' ``calls``) or a setting spent or fell back; for baselines on rational
    workers, neither."""
    import pandas as pd

    from llmecon.sweeps.results import SUMMARY_METRICS

    def used(frame: Any, name: str) -> bool:
        if frame is None or name not in frame:
            return False
        return bool((pd.to_numeric(frame[name], errors="coerce").fillna(0) != 0).any())

    models = used(cells, "calls") or any(used(table, m) for m in MODEL_METRICS)
    return {m: label for m, label in SUMMARY_METRICS.items() if models or m not in MODEL_METRICS}
