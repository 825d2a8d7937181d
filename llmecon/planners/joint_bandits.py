"""Joint-arm bandits of *Large Legislative Models* (Gasztowtt et al. 2024).

Each arm is a whole rate vector on a grid: ``K`` grid points and ``B`` brackets give
``K^B`` arms, numbered as in the paper's ``BanditWrapper.convert_action`` (base-``K``
digits, the first bracket the most significant). Unlike the factored bandits in
:mod:`llmecon.planners.bandits` the arms share nothing, so on many brackets these
planners spend the whole run exploring; that is the paper's baseline, kept as is.

Statistics are rebuilt from the history each year (every enacted rate snapped to the
nearest grid point), only for the arms pulled, so ``11^7`` arms cost nothing. Rewards are
the year's SWF min–max normalised over the years seen (the paper feeds raw principal
rewards; normalising keeps ``c`` meaningful across SWFs).

- ``ucb-joint``: untried arms first, in arm order; then ``argmax Q + c √(ln t / N)``,
  ``c = 0.2`` by default (the paper code's ``config.py``, hegasz/large-legislative-models
  at commit 2161cd5; see docs/presets.md).
- ``thompson-joint``: Gaussian arms with unknown mean and variance, normal-inverse-gamma
  prior ``NIG(mean 0, count 0.05, shape 1, scale 25)`` (the paper code's defaults).
- ``egreedy-joint``: ``argmax Q`` (untried arms count 0) with probability ``1 − ε``, else
  a uniform arm; ``ε = 0.1`` by default (the paper code's ``config.py``, as above).

Arguments (``name:key=value,…``): ``step=`` grid step (fraction, or percent above 1;
default 0.1), ``grid=`` explicit rates separated by ``/`` (``grid=0/0.2/0.5``), and
``c=`` (UCB, ≥ 0) or ``eps=`` (ε-greedy). Grid points outside
``--min-rate``/``--max-rate`` are dropped; at least two must remain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from llmecon.economy import TaxSchedule
from llmecon.planners.base import PlannerContext, PlannerError, YearRecord, register_planner

FloatArray = NDArray[np.float64]

JOINT_STRATEGIES = ("ucb", "thompson", "egreedy")
DEFAULT_C = 0.2
DEFAULT_EPS = 0.1
DEFAULT_STEP = 0.1
#: Thompson prior NIG(mean, count, shape, scale), as in the paper's code.
NIG_PRIOR = (0.0, 0.05, 1.0, 25.0)
#: Up to this many arms Thompson draws every untried arm; above, the maximum of the
#: untried arms' (identical) prior draws is drawn directly.
_DENSE_ARMS = 100_000


def make_grid(
    ctx: PlannerContext, step: float | None, points: Sequence[float] | None
) -> FloatArray:
    """The rate grid within the context's bounds (sorted, at least one point)."""
    if points is not None:
        grid = np.unique(np.asarray(points, dtype=float))
        if not ((grid >= 0) & (grid <= 1)).all():  # a NaN fails too
            wrong = ", ".join(f"{100 * p:g} %" for p in grid if not 0 <= p <= 1)
            raise PlannerError(f"grid points must be rates from 0 to 100 %, got {wrong}")
    else:
        s = DEFAULT_STEP if step is None else step
        if not 0 < s <= 1:
            raise PlannerError(f"grid step must be in (0, 1], got {s}")
        n = int(np.floor(1.0 / s + 1e-9)) + 1
        grid = np.round(np.arange(n) * s, 10)
    lo, hi = ctx.min_rate - 1e-12, ctx.max_rate + 1e-12
    kept = grid[(grid >= lo) & (grid <= hi)]
    if kept.size < 2:  # one arm: a fixed schedule that calls itself a bandit
        inside = "no grid point lies" if kept.size == 0 else f"only {100 * kept[0]:g} % lies"
        raise PlannerError(
            f"{inside} within the rate bounds [{ctx.min_rate:g}, {ctx.max_rate:g}] of the "
            f"grid {'/'.join(f'{100 * p:g}' for p in grid)} %: a bandit needs two rates "
            "or more"
        )
    return kept


class JointBanditPlanner:
    """A bandit whose arms are whole rate vectors on a grid."""

    def __init__(
        self,
        ctx: PlannerContext,
        strategy: str,
        *,
        parameter: float | None = None,
        step: float | None = None,
        points: Sequence[float] | None = None,
    ) -> None:
        if strategy not in JOINT_STRATEGIES:
            raise PlannerError(f"unknown joint bandit strategy {strategy!r}")
        self.name = f"{strategy}-joint"
        self._ctx = ctx
        self.strategy = strategy
        if strategy == "ucb":
            self.parameter = DEFAULT_C if parameter is None else parameter
            if not self.parameter >= 0:  # a NaN fails too
                raise PlannerError(f"c must be ≥ 0, got {self.parameter:g}")
        elif strategy == "egreedy":
            self.parameter = DEFAULT_EPS if parameter is None else parameter
            if not 0 <= self.parameter <= 1:
                raise PlannerError(f"eps must be in [0, 1], got {self.parameter}")
        else:
            self.parameter = 0.0
        self.grid = make_grid(ctx, step, points)
        self.n_arms = int(self.grid.size) ** ctx.n_brackets
        #: Its arms, and the years it takes to pull each once (one arm a year):
        #: :func:`~llmecon.planners.planner_warning`.
        self.arms_label = f"{self.n_arms:,} arms".replace(",", " ")
        self.years_to_try_every_arm = self.n_arms

    # -- arms <-> rate vectors ------------------------------------------------------
    def arm_of(self, rates: FloatArray) -> int:
        """The arm of a rate vector (each rate snapped to the nearest grid point)."""
        digits = np.abs(np.asarray(rates)[:, None] - self.grid[None, :]).argmin(axis=1)
        arm = 0
        for d in digits:
            arm = arm * self.grid.size + int(d)
        return arm

    def rates_of(self, arm: int) -> FloatArray:
        k = self.grid.size
        digits = []
        for _ in range(self._ctx.n_brackets):
            digits.append(arm % k)
            arm //= k
        return np.asarray(self.grid[digits[::-1]], dtype=float)

    # -- statistics -----------------------------------------------------------------
    def arm_statistics(self, history: Sequence[YearRecord]) -> dict[int, list[float]]:
        """Pulled arms only: ``arm -> normalised rewards`` in year order."""
        pulls: dict[int, list[float]] = {}
        if not history:
            return pulls
        rewards = np.array([rec.metrics.swf for rec in history], dtype=float)
        span = rewards.max() - rewards.min()
        norm = (rewards - rewards.min()) / span if span > 0 else np.full(rewards.size, 0.5)
        for rec, r in zip(history, norm, strict=True):
            pulls.setdefault(self.arm_of(rec.schedule.rates_array), []).append(float(r))
        return pulls

    def _first_untried(self, pulls: dict[int, list[float]]) -> int | None:
        if len(pulls) >= self.n_arms:
            return None
        arm = 0
        while arm in pulls:
            arm += 1
        return arm

    def _random_untried(self, pulls: dict[int, list[float]]) -> int:
        rng = self._ctx.rng
        while True:  # untried arms are the vast majority whenever this is called
            arm = int(rng.integers(self.n_arms))
            if arm not in pulls:
                return arm

    def choose_arm(self, history: Sequence[YearRecord]) -> int:
        rng = self._ctx.rng
        pulls = self.arm_statistics(history)
        arms = sorted(pulls)
        means = np.array([np.mean(pulls[a]) for a in arms])
        counts = np.array([len(pulls[a]) for a in arms], dtype=float)
        if self.strategy == "ucb":
            untried = self._first_untried(pulls)
            if untried is not None:
                return untried
            t = len(history) + 1
            score = means + self.parameter * np.sqrt(np.log(t) / counts)
            return arms[int(np.argmax(score))]
        if self.strategy == "egreedy":
            if rng.random() < self.parameter:
                return int(rng.integers(self.n_arms))
            if not arms or means.max() <= 0.0:
                # every tried arm is worth 0, like every untried one: the paper's argmax
                # over a zero-initialised table takes the lowest arm.
                zero = [a for a, m in zip(arms, means, strict=True) if m <= 0.0]
                untried = self._first_untried(pulls)
                candidates = zero + ([untried] if untried is not None else [])
                return min(candidates)
            return arms[int(np.argmax(means))]
        return self._thompson(pulls, arms, counts, means)

    def _thompson(
        self,
        pulls: dict[int, list[float]],
        arms: list[int],
        counts: FloatArray,
        means: FloatArray,
    ) -> int:
        rng = self._ctx.rng
        m0, k0, a0, b0 = NIG_PRIOR
        best_arm, best = -1, -np.inf
        if arms:
            ssd = np.array([np.sum((np.asarray(pulls[a]) - np.mean(pulls[a])) ** 2) for a in arms])
            kn = k0 + counts
            rho = (k0 * m0 + counts * means) / kn
            beta = b0 + 0.5 * ssd + counts * k0 * (means - m0) ** 2 / (2.0 * kn)
            sigma2 = 1.0 / rng.gamma(0.5 * counts + a0, 1.0 / beta)
            draws = rng.normal(rho, np.sqrt(sigma2 / kn))
            i = int(np.argmax(draws))
            best_arm, best = arms[i], float(draws[i])
        n_untried = self.n_arms - len(arms)
        if n_untried > 0:
            if n_untried <= _DENSE_ARMS:
                sigma2 = 1.0 / rng.gamma(a0, 1.0 / b0, size=n_untried)
                draws = rng.normal(m0, np.sqrt(sigma2 / k0))
                untried = [a for a in range(self.n_arms) if a not in pulls]
                i = int(np.argmax(draws))
                if draws[i] > best:
                    best_arm = untried[i]
            else:
                # Under the prior each mean is Student-t with 2·shape degrees of freedom
                # and scale √(scale / (shape · count)); the largest of n draws is the
                # u^(1/n) quantile, and which untried arm holds it is uniform.
                u = rng.random() ** (1.0 / n_untried)
                from scipy import stats  # ~0.5 s to import: only for many arms

                top = float(stats.t.ppf(u, df=2 * a0, loc=m0, scale=np.sqrt(b0 / (a0 * k0))))
                if top > best:
                    best_arm = self._random_untried(pulls)
        return best_arm

    def propose(self, history: Sequence[YearRecord]) -> TaxSchedule:
        return self._ctx.schedule(self.rates_of(self.choose_arm(history)))


@dataclass(frozen=True)
class JointArgs:
    """Parsed ``name:key=value,…`` arguments of a joint bandit."""

    parameter: float | None = None
    step: float | None = None
    points: tuple[float, ...] | None = None


def parse_joint_args(name: str, arg: str | None) -> JointArgs:
    """``key=value,…`` (``c``/``eps``, ``step``, ``grid`` with ``/``-separated rates);
    a bare number is the strategy's parameter. Percent values above 1 are divided by 100."""
    out: dict[str, Any] = {}
    if arg is None:
        return JointArgs()
    allowed = {"ucb-joint": "c", "egreedy-joint": "eps", "thompson-joint": None}[name]
    for part in (p.strip() for p in arg.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        if not sep:
            key, value = (allowed or ""), part
        key = key.strip().lower()
        if key not in ("grid", "step") and (allowed is None or key != allowed):
            options = ", ".join(k for k in ("step", "grid", allowed) if k)
            raise PlannerError(f"{name}: unknown argument {part!r} (use {options})")
        try:
            if key == "grid":
                pts = [float(v) for v in value.split("/") if v.strip()]
                if not pts:
                    raise ValueError
                out["points"] = tuple(p / 100 if any(q > 1 for q in pts) else p for p in pts)
            elif key == "step":
                s = float(value)
                out["step"] = s / 100 if s > 1 else s
            else:
                out["parameter"] = float(value)
        except ValueError:
            raise PlannerError(f"{name}: {part!r} needs a number") from None
    return JointArgs(**out)


def _factory(strategy: str) -> Callable[[PlannerContext, str | None], JointBanditPlanner]:
    name = f"{strategy}-joint"

    def build(ctx: PlannerContext, arg: str | None) -> JointBanditPlanner:
        args = parse_joint_args(name, arg)
        try:
            return JointBanditPlanner(
                ctx, strategy, parameter=args.parameter, step=args.step, points=args.points
            )
        except PlannerError as exc:
            raise PlannerError(f"{name}: {exc}") from None

    return build


register_planner(
    "ucb-joint",
    "UCB over whole rate vectors (Large Legislative Models), e.g. "
    "ucb-joint:c=0.2,step=0.1 (or grid=0/20/50)",
)(_factory("ucb"))
register_planner(
    "thompson-joint",
    "normal-inverse-gamma Thompson sampling over whole rate vectors (LLM-P), e.g. "
    "thompson-joint:step=0.1 (or grid=0/20/50)",
)(_factory("thompson"))
register_planner(
    "egreedy-joint",
    "ε-greedy over whole rate vectors (LLM-P), e.g. egreedy-joint:eps=0.1,step=0.1",
)(_factory("egreedy"))
