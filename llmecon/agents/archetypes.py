"""Archetype workers: ask the model once per archetype, not once per persona.

With ``--workers-mode archetypes --archetypes K`` the population is clustered into at
most ``K`` archetypes (:func:`cluster_archetypes`), each archetype is played by one
**representative**, a real member persona, and the model is asked the usual LLM worker
prompt once per archetype and step. Every member then moves its hours by its
archetype's **relative change from usual hours**:

``l_i = clip(h_i⁰ · a_k / h_r⁰, 0, l_max)``   for member ``i`` of archetype ``k``,

``a_k`` the representative's answer and ``h_r⁰`` its usual hours (so the representative
itself works exactly what it answered). A ratio, not an absolute level, because hours
respond to taxes in proportion (the calibrated best response is
``l = h⁰ · ((1 − τ)/(1 − τ⁰))^ε`` inside a bracket): a part-timer and a full-timer of one
archetype both cut by the same share. A failed call (after the model layer's retries and
re-asks) is a fallback for every member: each keeps its previous hours. The economy
settles every member exactly (taxes, rebate, utility per member): only the decisions
are shared.

**Clustering** (deterministic for a seed): features are standardised (survey-weighted
mean and standard deviation) and scaled by importance (:data:`ARCHETYPE_FEATURES`: log
wage weighs 5, log usual hours 3, each household and demographic feature 1; the first
two set a worker's bracket and its response to a schedule, the others shape the persona
text a model reads). Weighted k-means on a uniform subsample of at most
``max(20 K, 10 000)`` personas: k-means++ seeding from the passed
:class:`numpy.random.Generator`, then Lloyd iterations (until fewer than 0.1 % of rows
change archetype, at most 20); then one nearest-centroid pass over everybody. In the
fit each persona counts by its survey weight times ``(1 + z⁰/z̄⁰)/2`` (``z⁰`` its
usual earnings, ``z̄⁰`` their mean): half the clustering mass follows people, half the
tax base, so archetypes are finer where revenue is made (without it, revenue's error
on a steep schedule was 0.85 % instead of 0.37 % at 100 000 personas and K = 1 000,
docs/scale.md). The representative is the
member nearest its archetype's centroid; it carries the archetype's total survey weight.
Archetypes are numbered by mean log wage, lowest first.

A run saves its assignment (``archetypes.npz`` in the run folder); replaying, resuming
or forking it reads that back (:func:`load_archetypes`) instead of trusting a new
clustering to come out the same.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import numpy as np
from numpy.typing import NDArray

from llmecon.agents.base import FloatArray, WorkerDecision, WorkerRequest
from llmecon.agents.llm_workers import LLMWorkers
from llmecon.economy import Economy, Population
from llmecon.personas._persona import Education
from llmecon.planners import YearRecord

if TYPE_CHECKING:
    import pandas as pd

IntArray = NDArray[np.int64]

#: What reading a damaged ``.npz`` (a zip archive of ``.npy`` arrays) raises: a cut
#: file is not a zip archive, an altered one fails its checksum, inflation or header,
#: or names a compression or encryption that ``zipfile`` does not support.
UNREADABLE_NPZ: tuple[type[Exception], ...] = (
    OSError,
    EOFError,
    KeyError,
    ValueError,
    RuntimeError,
    zipfile.BadZipFile,
    zlib.error,
)

#: (feature, importance): the columns :func:`archetype_features` builds, and how much
#: one standard deviation of each counts in the clustering distance.
ARCHETYPE_FEATURES: tuple[tuple[str, float], ...] = (
    ("log_wage", 5.0),
    ("log_usual_hours", 3.0),
    ("household_size", 1.0),
    ("children", 1.0),
    ("married", 1.0),
    ("log_spouse_earnings", 1.0),
    ("age", 1.0),
    ("female", 1.0),
    ("education", 1.0),
)

#: Education levels in order (the ``education`` feature is the level's rank).
_EDUCATION_RANK = {name: float(rank) for rank, name in enumerate(get_args(Education))}
#: The subsample k-means runs on: this many rows per archetype, at least _MIN_SAMPLE.
_SAMPLE_PER_ARCHETYPE = 20
_MIN_SAMPLE = 10_000
#: Lloyd iterations on the subsample, at most; they stop earlier once fewer than
#: _TOLERANCE of the rows change archetype.
_MAX_ITERATIONS = 20
_TOLERANCE = 1e-3
#: Rows per block of a distance computation (bounds the temporary at 4 096 · K floats).
_BLOCK = 4096


#: The persona fields :func:`archetype_features` reads.
FEATURE_COLUMNS = (
    "hourly_wage_usd",
    "usual_weekly_hours",
    "household_size",
    "children",
    "filing_status",
    "spouse_earnings_usd",
    "age",
    "sex",
    "education",
)
_MARRIED = {
    "single": 0.0,
    "married_joint": 1.0,
    "married_separate": 1.0,
    "head_of_household": 0.0,
    "widow": 0.0,
}


def archetype_features(columns: Mapping[str, Any] | pd.DataFrame) -> FloatArray:
    """The clustering features ``(N, F)`` in :data:`ARCHETYPE_FEATURES` order, from the
    persona fields :data:`FEATURE_COLUMNS` (a persona sample's frame, or arrays built
    from a bank)."""

    def num(name: str) -> FloatArray:
        return np.asarray(columns[name], dtype=float)

    return np.column_stack(
        [
            np.log(num("hourly_wage_usd")),
            np.log(num("usual_weekly_hours")),
            num("household_size"),
            num("children"),
            _lookup(columns["filing_status"], _MARRIED, "filing_status"),
            np.log1p(num("spouse_earnings_usd") / 1000.0),
            num("age"),
            _lookup(columns["sex"], {"female": 1.0, "male": 0.0}, "sex"),
            _lookup(columns["education"], _EDUCATION_RANK, "education"),
        ]
    )


def _lookup(values: Any, table: Mapping[str, float], name: str) -> FloatArray:
    """A text column mapped through ``table``, by its categories (a million strings are
    hashed once, or not at all when the column is already categorical)."""
    import pandas as pd

    cat = pd.Categorical(values)
    unknown = [c for c in cat.categories if c not in table]
    if unknown or np.any(cat.codes < 0):
        raise ValueError(f"{name}: unknown values {unknown or ['(missing)']}")
    return np.array([table[c] for c in cat.categories], dtype=float)[cat.codes]


@dataclass(frozen=True)
class Archetypes:
    """A population's archetypes.

    Attributes:
        labels: each persona's archetype, ``0 … K−1`` (``(N,)``).
        representatives: each archetype's representative, a persona index (``(K,)``).
        weight: each archetype's total survey weight (``(K,)``; the population's
            weights have mean 1, so these sum to ``N``).
        size: members per archetype (``(K,)``).
    """

    labels: IntArray
    representatives: IntArray
    weight: FloatArray
    size: IntArray

    @property
    def k(self) -> int:
        return int(self.representatives.size)

    def ids(self) -> tuple[str, ...]:
        """The archetypes' agent ids in the run log (``archetype-0007``)."""
        return tuple(f"archetype-{k:04d}" for k in range(self.k))

    def representative_population(self, population: Population) -> Population:
        """The representatives as a population of ``K`` workers (their own wages and
        usual hours), each weighted by its archetype's total survey weight."""
        reps = self.representatives
        return Population(
            population.hourly_wage_usd[reps],
            population.usual_weekly_hours[reps],
            self.ids(),
            source=f"{self.k} archetypes of {population.source}",
            weight=self.weight,
        )


def load_archetypes(path: str | Path, ids: Sequence[str]) -> Archetypes:
    """The assignment a run saved in ``path`` (``labels``, ``representatives``,
    ``representative_ids``, ``weight``, ``size``), checked against the persona ``ids``
    of the population it is for: :class:`ValueError` naming the file when it does not
    fit."""
    try:
        # opened here: numpy leaves a file it could not read as a zip archive open
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            labels = np.asarray(data["labels"], dtype=np.int64)
            reps = np.asarray(data["representatives"], dtype=np.int64)
            rep_ids = [str(x) for x in data["representative_ids"]]
            weight = np.asarray(data["weight"], dtype=float)
            size = np.asarray(data["size"], dtype=np.int64)
    except UNREADABLE_NPZ as exc:
        raise ValueError(f"{path}: not a readable archetype assignment ({exc})") from None
    k = reps.size
    if (
        labels.shape != (len(ids),)
        or k == 0
        or weight.shape != (k,)
        or size.shape != (k,)
        or labels.min() < 0
        or labels.max() >= k
        or reps.min() < 0
        or reps.max() >= len(ids)
        or not np.array_equal(np.bincount(labels, minlength=k), size)
        or not np.array_equal(labels[reps], np.arange(k))
    ):
        raise ValueError(f"{path}: the assignment does not fit a population of {len(ids)}")
    if rep_ids != [ids[i] for i in reps]:
        raise ValueError(f"{path}: its representatives are other personas than the population's")
    return Archetypes(labels=labels, representatives=reps, weight=weight, size=size)


def cluster_archetypes(
    features: FloatArray,
    k: int,
    rng: np.random.Generator,
    weight: FloatArray | None = None,
) -> Archetypes:
    """At most ``k`` archetypes of the rows of ``features`` (see the module docstring).

    Fewer when the rows have fewer distinct values than ``k``; one per persona when
    ``k ≥ N``. ``weight``: survey weights (default equal).
    """
    x = np.asarray(features, dtype=float)
    n = x.shape[0]
    if x.ndim != 2 or n == 0 or not np.all(np.isfinite(x)):
        raise ValueError("features must be a non-empty, finite (N, F) array")
    if k < 1:
        raise ValueError(f"need at least one archetype, got {k}")
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=float)
    if w.shape != (n,) or np.any(w < 0) or not w.sum() > 0:
        raise ValueError("weights must be N non-negative numbers, not all zero")
    importance = np.array([imp for _, imp in ARCHETYPE_FEATURES])
    if x.shape[1] != importance.size:
        raise ValueError(f"expected {importance.size} feature columns, got {x.shape[1]}")
    mean = (w @ x) / w.sum()
    std = np.sqrt((w @ (x - mean) ** 2) / w.sum())
    z = (x - mean) / np.where(std > 0, std, 1.0) * importance
    if k >= n:  # every distinct profile is its own archetype
        _, first, inverse = np.unique(z, axis=0, return_index=True, return_inverse=True)
        return _summarise(first[inverse.ravel()], np.zeros(n), w, x[:, 0])
    # Half the clustering mass follows people, half follows usual earnings (the tax
    # base): archetypes are finer where revenue is made, not only where people are.
    earnings = np.exp(x[:, 0] + x[:, 1])
    fit = w * (0.5 + 0.5 * earnings / ((w @ earnings) / w.sum()))
    m = min(n, max(_SAMPLE_PER_ARCHETYPE * k, _MIN_SAMPLE))
    sample = np.sort(rng.choice(n, size=m, replace=False)) if m < n else np.arange(n)
    zs, ws = z[sample], fit[sample]
    centroids = _lloyd(zs, ws, _kmeans_pp(zs, ws, k, rng))
    labels, dist = _nearest(z, centroids)
    return _summarise(labels, dist, w, x[:, 0])


def _kmeans_pp(z: FloatArray, w: FloatArray, k: int, rng: np.random.Generator) -> FloatArray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007), each pick ∝ weight · D²; stops
    early when every row coincides with a centre."""
    p = w / w.sum()
    first = int(rng.choice(z.shape[0], p=p))
    centres = [z[first]]
    d2 = np.sum((z - z[first]) ** 2, axis=1)
    for _ in range(1, k):
        mass = w * d2
        total = mass.sum()
        if total <= 0:
            break
        pick = int(np.searchsorted(np.cumsum(mass), rng.random() * total, side="right"))
        pick = min(pick, z.shape[0] - 1)
        centres.append(z[pick])
        np.minimum(d2, np.sum((z - z[pick]) ** 2, axis=1), out=d2)
    return np.array(centres)


def _lloyd(z: FloatArray, w: FloatArray, centroids: FloatArray) -> FloatArray:
    """Weighted Lloyd iterations until no assignment changes (at most
    :data:`_MAX_ITERATIONS`); an archetype left empty keeps its centroid."""
    labels: IntArray | None = None
    k = centroids.shape[0]
    for _ in range(_MAX_ITERATIONS):
        new, _ = _nearest(z, centroids)
        if labels is not None and np.count_nonzero(new != labels) <= _TOLERANCE * new.size:
            break
        labels = new
        mass = np.bincount(labels, weights=w, minlength=k)
        sums = np.stack(
            [np.bincount(labels, weights=w * z[:, j], minlength=k) for j in range(z.shape[1])],
            axis=1,
        )
        filled = mass > 0
        centroids = centroids.copy()
        centroids[filled] = sums[filled] / mass[filled, None]
    return centroids


def _nearest(z: FloatArray, centroids: FloatArray) -> tuple[IntArray, FloatArray]:
    """Each row's nearest centroid and squared distance.

    ``‖x − c‖² = ‖x‖² − 2 x·c + ‖c‖²``: ``‖x‖²`` does not change the argmin, and the
    other two terms are one matrix product of ``[x, 1]`` with ``[−2c, ‖c‖²]``, so the
    search is one BLAS call and an argmin per block of rows (the temporary bounded at
    :data:`_BLOCK` · K). In float64: float32 was no faster on our 2-core machine, and
    its rounding could send a near-tie to another archetype on another CPU (a replay
    re-clusters from the seed). The winner's distance is then computed directly.
    """
    aug = np.vstack([-2.0 * centroids.T, np.sum(centroids**2, axis=1)[None, :]])
    ones = np.hstack([z, np.ones((z.shape[0], 1))])
    labels = np.empty(z.shape[0], dtype=np.int64)
    for start in range(0, z.shape[0], _BLOCK):
        labels[start : start + _BLOCK] = np.argmin(ones[start : start + _BLOCK] @ aug, axis=1)
    dist = np.sum((z - centroids[labels]) ** 2, axis=1)
    return labels, dist


def _summarise(
    labels: IntArray, dist: FloatArray, w: FloatArray, log_wage: FloatArray
) -> Archetypes:
    """Drop empty clusters, number archetypes by mean log wage, pick representatives."""
    used = np.unique(labels)
    compact = np.searchsorted(used, labels)
    k = used.size
    size = np.bincount(compact, minlength=k)
    mean_wage = np.bincount(compact, weights=log_wage, minlength=k) / size
    order = np.lexsort((np.arange(k), mean_wage))  # by wage; ties by first cluster
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    final = rank[compact]
    # representative: the member nearest its centroid (lowest persona index on ties)
    by = np.lexsort((np.arange(final.size), dist, final))
    first = np.flatnonzero(np.r_[True, final[by][1:] != final[by][:-1]])
    return Archetypes(
        labels=final,
        representatives=by[first].astype(np.int64),
        weight=np.bincount(final, weights=w, minlength=k).astype(float),
        size=np.bincount(final, minlength=k).astype(np.int64),
    )


class ArchetypeWorkers:
    """A worker pool that asks an :class:`LLMWorkers` pool of archetype
    representatives and maps each answer to the archetype's members (module docstring).

    ``inner`` must be built on :meth:`representative_economy`'s economy, so its worker
    ``k`` is archetype ``k``.
    """

    def __init__(self, economy: Economy, archetypes: Archetypes, inner: LLMWorkers) -> None:
        if inner.economy.size != archetypes.k:
            raise ValueError(
                f"inner pool has {inner.economy.size} workers for {archetypes.k} archetypes"
            )
        self.economy = economy
        self.archetypes = archetypes
        self.inner = inner
        reps = archetypes.representatives
        usual = economy.population.usual_weekly_hours
        self._usual = usual
        self._rep_usual = usual[reps]

    @staticmethod
    def representative_economy(economy: Economy, archetypes: Archetypes) -> Economy:
        """The economy the representatives play in: same preferences and objective,
        ``K`` workers weighted by their archetypes' survey weights."""
        return Economy(
            archetypes.representative_population(economy.population),
            economy.utility_config,
            swf=economy.swf,
        )

    @property
    def name(self) -> str:
        return self.inner.name

    def _inner_request(self, request: WorkerRequest) -> WorkerRequest:
        """The request as the representatives see it: their own previous hours and
        their own recent years (a representative's mapped hours are its answers)."""
        reps = self.archetypes.representatives
        keep = self.inner.history_len
        recent = list(request.history)[-keep:] if keep > 0 else []
        history = [
            YearRecord(
                r.year, r.schedule, r.metrics, r.weekly_hours[reps], r.income_usd[reps], r.source
            )
            for r in recent
        ]
        return WorkerRequest(
            year=request.year,
            step=request.step,
            schedule=request.schedule,
            previous_hours=np.asarray(request.previous_hours, dtype=float)[reps],
            last_rebate_usd=request.last_rebate_usd,
            history=history,
        )

    def member_hours(self, answers: FloatArray) -> FloatArray:
        """Every member's hours from its archetype's answered hours ``(K,)``: the
        archetype's relative change from usual hours, clipped to the hour bounds."""
        ratio = np.asarray(answers, dtype=float) / self._rep_usual
        cap = self.economy.utility_config.max_weekly_hours
        return np.clip(self._usual * ratio[self.archetypes.labels], 0.0, cap)

    async def decide(self, request: WorkerRequest) -> WorkerDecision:
        answer = await self.inner.decide(self._inner_request(request))
        hours = self.member_hours(answer.weekly_hours)
        reasons = self._spread(answer.fallback_reasons)
        if reasons:
            failed = np.fromiter(reasons, dtype=np.int64, count=len(reasons))
            hours[failed] = np.asarray(request.previous_hours, dtype=float)[failed]
        return WorkerDecision(hours, reasons)

    async def satisfaction(
        self, request: WorkerRequest, weekly_hours: FloatArray
    ) -> tuple[NDArray[np.bool_], dict[int, str]]:
        """Each member answers as its archetype's representative did (asked once per
        archetype, with the representative's hours)."""
        reps = self.archetypes.representatives
        inner = self._inner_request(request)
        answers, failed = await self.inner.satisfaction(inner, np.asarray(weekly_hours)[reps])
        return np.asarray(answers, dtype=bool)[self.archetypes.labels], self._spread(failed)

    def _spread(self, reasons: dict[int, str]) -> dict[int, str]:
        """Archetype failures (archetype -> reason) as member failures (persona index ->
        reason)."""
        if not reasons:
            return {}
        labels = self.archetypes.labels
        out: dict[int, str] = {}
        for k, why in reasons.items():
            text = f"archetype {k}: {why}"
            out.update(dict.fromkeys(np.flatnonzero(labels == k).tolist(), text))
        return out
