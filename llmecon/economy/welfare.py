"""Social welfare functions and inequality measures (docs/design.md §2).

All functions work on the last axis, so a batch of outcomes ``(S, N)`` gives ``(S,)``.

SWFs live in a registry: :func:`register_swf` adds one (its name, help, the objective
the LLM planner is told, its value and its marginal social weights for the Saez
planner), and everything that lists SWFs (``RunConfig.swf``, ``--swf``, the per-year
metrics and the ``years`` table) reads :func:`swf_names`. Adding an SWF is one call.

Survey weights: a persona may stand for more or fewer people than another (a stratified
bank oversamples the top brackets). :class:`WelfareInputs` carries them as
``survey_weight`` (``None``: every worker counts once); the built-in SWFs, :func:`gini`
and :func:`equality` take means, minima and ranks over people, not over personas. With
``survey_weight=None`` every function runs its original unweighted code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from llmecon._plugins import guard_registry, is_llmecon_code
from llmecon.economy.utility import marginal_consumption_utility

FloatArray = NDArray[np.float64]


def weighted_mean(values: FloatArray, weight: FloatArray | None = None) -> FloatArray:
    """Mean along the last axis, weighted by ``weight`` (``(N,)``) when given."""
    x = np.asarray(values, dtype=float)
    if weight is None:
        return np.asarray(x.mean(axis=-1))
    w = np.asarray(weight, dtype=float)
    return np.asarray((x * w).sum(axis=-1) / w.sum())


def effective_size(weight: FloatArray | None, n: int) -> float:
    """Kish's effective sample size ``(Σ w)² / Σ w²`` (``n`` when unweighted)."""
    if weight is None:
        return float(n)
    w = np.asarray(weight, dtype=float)
    return float(w.sum() ** 2 / (w @ w))


def gini(values: FloatArray, weight: FloatArray | None = None) -> FloatArray:
    """Gini coefficient along the last axis (0 = equal; negative values allowed).

    With survey weights ``w`` (``(N,)``): ``2 Σ_k w_k r_k x_(k) / (W Σ_k w_k x_k) − 1``,
    ``r_k = Σ_{j<k} w_j + w_k/2`` the mid-point cumulative weight of the ``k``-th
    smallest value and ``W = Σ w``; with equal weights this is the unweighted formula.
    """
    if weight is not None:
        return _weighted_gini(values, weight)
    x = np.sort(np.asarray(values, dtype=float), axis=-1)
    n = x.shape[-1]
    total = x.sum(axis=-1)
    rank = np.arange(1, n + 1, dtype=float)
    weighted = (rank * x).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = (2.0 * weighted) / (n * total) - (n + 1.0) / n
    return np.where(total != 0, g, 0.0)


def _weighted_gini(values: FloatArray, weight: FloatArray) -> FloatArray:
    x = np.asarray(values, dtype=float)
    w = np.broadcast_to(np.asarray(weight, dtype=float), x.shape)
    order = np.argsort(x, axis=-1, kind="stable")
    xs = np.take_along_axis(x, order, axis=-1)
    ws = np.take_along_axis(w, order, axis=-1)
    mid = np.cumsum(ws, axis=-1) - 0.5 * ws
    total_w = ws.sum(axis=-1)
    total = (ws * xs).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = 2.0 * (ws * mid * xs).sum(axis=-1) / (total_w * total) - 1.0
    return np.where(total != 0, g, 0.0)


def _equality_scale(n: float) -> float:
    return n / (n - 1.0) if n > 1 else 1.0


def equality(consumption: FloatArray, weight: FloatArray | None = None) -> FloatArray:
    """AI Economist's equality ``1 − Gini(c)·N/(N−1)`` (1 = perfectly equal); with survey
    weights, the weighted Gini and Kish's effective size in place of ``N``."""
    n = effective_size(weight, consumption.shape[-1])
    return 1.0 - gini(consumption, weight) * _equality_scale(n)


def inverse_income_weights(
    hourly_wage: FloatArray, survey_weight: FloatArray | None = None
) -> FloatArray:
    """Saez-style weights ``g_i ∝ 1/(52·40·s_i)``, normalised to mean 1 (over people:
    the ``survey_weight``-weighted mean, when given).

    Potential (not realised) income, so the weights are fixed across policies and do
    not reward workers who stop working.
    """
    w = 1.0 / (52.0 * 40.0 * np.asarray(hourly_wage, dtype=float))
    if survey_weight is not None:
        return w / float(weighted_mean(w, survey_weight))
    return w / w.mean()


def utilitarian_welfare(utility: FloatArray, survey_weight: FloatArray | None = None) -> FloatArray:
    """Mean utility (over people, with survey weights)."""
    if survey_weight is None:
        return np.asarray(utility).mean(axis=-1)
    return weighted_mean(utility, survey_weight)


def inverse_income_welfare(
    utility: FloatArray, weights: FloatArray, survey_weight: FloatArray | None = None
) -> FloatArray:
    """``mean(g_i u_i)`` with fixed inverse-potential-income weights."""
    if survey_weight is None:
        return (np.asarray(utility) * weights).mean(axis=-1)
    return weighted_mean(np.asarray(utility) * weights, survey_weight)


def rawlsian_welfare(utility: FloatArray, survey_weight: FloatArray | None = None) -> FloatArray:
    """The worst-off worker's utility (among workers with a positive survey weight)."""
    if survey_weight is None:
        return np.asarray(utility).min(axis=-1)
    counted = np.asarray(survey_weight) > 0
    return np.asarray(np.asarray(utility)[..., counted].min(axis=-1))


def equality_times_productivity(
    consumption: FloatArray, income: FloatArray, survey_weight: FloatArray | None = None
) -> FloatArray:
    """AI Economist's ``(1 − Gini(c)·N/(N−1)) · mean(z)``."""
    if survey_weight is None:
        return equality(consumption) * np.asarray(income).mean(axis=-1)
    return equality(consumption, survey_weight) * weighted_mean(income, survey_weight)


@dataclass(frozen=True)
class WelfareInputs:
    """What an SWF sees: per-agent arrays on the last axis (``(N,)`` or a batch
    ``(S, N)``).

    Attributes:
        utility: each worker's utility.
        consumption: each worker's consumption (income − tax + rebate, USD).
        income: each worker's pre-tax income (USD).
        weights: fixed inverse-potential-income weights ``(N,)``, mean 1
            (:func:`inverse_income_weights`).
        survey_weight: survey weights ``(N,)`` (how many people each worker stands
            for, mean 1), or ``None`` when every worker counts once. An SWF should take
            its means, minima and ranks over people: use :func:`weighted_mean`,
            :func:`gini` and :func:`equality` with this argument.
    """

    utility: FloatArray
    consumption: FloatArray
    income: FloatArray
    weights: FloatArray
    survey_weight: FloatArray | None = None


@dataclass(frozen=True)
class SWF:
    """One social welfare function, as registered with :func:`register_swf`.

    Attributes:
        name: what ``--swf`` and ``RunConfig.swf`` take; also the metric's name in the
            per-year metrics and the ``years`` table (a Python identifier).
        help: one line for ``--help``.
        objective: what the LLM planner is told it maximises ("Your goal: maximise
            <objective>."), completing that sentence.
        evaluate: the welfare of :class:`WelfareInputs`, reduced over the last axis.
        marginal_weights: ``(inputs, mu) -> ∂W/∂c_i`` for one outcome (``(N,)``
            arrays), up to a positive factor, where ``mu`` is each worker's marginal
            utility of consumption; what the Saez planner needs. ``None``: the Saez
            planner refuses this SWF. With survey weights, the value of a dollar to
            *one person* of worker ``i``'s kind (``∂W/∂c_i / w_i``).
        output_weight: for SWFs that value income directly, not only through
            consumption, ``∂W/∂z_i`` with every consumption held fixed, in the units of
            ``marginal_weights``; ``None`` for welfarist SWFs (envelope theorem).
    """

    name: str
    help: str
    objective: str
    evaluate: Callable[[WelfareInputs], FloatArray]
    marginal_weights: Callable[[WelfareInputs, FloatArray], FloatArray] | None = None
    output_weight: Callable[[WelfareInputs], float] | None = None


#: Names an SWF may not take (they are other per-year metrics).
_RESERVED_METRIC_NAMES = frozenset(
    {
        "swf", "revenue_usd", "rebate_usd", "mean_weekly_hours", "mean_income_usd",
        "output_usd", "gini_income", "gini_consumption", "equality", "effective_tax_rate",
        "mean_marginal_rate", "rebate_converged", "rebate_residual_usd", "welfare",
    }
)  # fmt: skip

_SWFS: dict[str, SWF] = {}
guard_registry("SWF", lambda: _SWFS)  # plug-ins never overwrite a name


def register_swf(swf: SWF, *, replace: bool = False) -> SWF:
    """Add ``swf`` to the registry (after the built-in ones, in registration order).

    Raises:
        ValueError: the name is not an identifier, or is taken and ``replace`` is false.
    """
    if not swf.name.isidentifier() or swf.name in _RESERVED_METRIC_NAMES:
        raise ValueError(f"invalid SWF name {swf.name!r}: use a Python identifier")
    if swf.name in _SWFS and not replace:
        raise ValueError(f"an SWF named {swf.name!r} is already registered")
    _SWFS[swf.name] = swf
    return swf


def unregister_swf(name: str) -> SWF | None:
    """Remove the SWF ``name`` from the registry (``None`` when it was not there)."""
    return _SWFS.pop(name, None)


@contextmanager
def registered_swf(swf: SWF) -> Iterator[SWF]:
    """Register ``swf`` for the duration of a ``with`` block (tests, notebooks)."""
    register_swf(swf)
    try:
        yield swf
    finally:
        unregister_swf(swf.name)


def swf_names() -> dict[str, str]:
    """Registered SWFs: name -> one-line help, built-ins first, then plug-ins."""
    _load_plugins()
    return {name: swf.help for name, swf in _SWFS.items()}


def get_swf(name: str) -> SWF:
    """The registered SWF ``name``.

    Raises:
        ValueError: no SWF has that name (the message lists the registered ones).
    """
    if name not in _SWFS:
        _load_plugins()
    try:
        return _SWFS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown social welfare function {name!r}: use one of {', '.join(_SWFS)}"
        ) from None


#: Whether the ``llmecon.swfs`` entry points were loaded (once, on first use).
_plugins_loaded = False


def _load_plugins() -> None:
    """Register the SWFs of the ``llmecon.swfs`` entry points, once.

    An entry point loads either an :class:`SWF`, registered under its own name, or a
    module whose import called :func:`register_swf`. One that fails, loads something
    else, or takes a registered name is skipped with a ``PluginWarning``
    (:func:`~llmecon._plugins.register_entry_points`).
    """
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from llmecon._plugins import register_entry_points

    register_entry_points(
        "llmecon.swfs",
        lambda: _SWFS,
        "an SWF",
        lambda obj: isinstance(obj, SWF),
        _register_named,
        name_of=lambda _ep, swf: swf.name,
    )


def _register_named(name: str, swf: SWF, ep: object) -> None:
    """Register an entry point's SWF under its own name (the metric's), saying so when
    the entry point is named otherwise (``rawlsian = pkg:MEDIAN`` is ``--swf median``)."""
    register_swf(swf)
    called = getattr(ep, "name", name)
    if called != swf.name:
        from llmecon._plugins import PluginWarning
        from llmecon._warn import warn

        warn(
            f"llmecon: the llmecon.swfs entry point {called!r} ({getattr(ep, 'value', '?')}) "
            f"holds the SWF {swf.name!r}: registered as {swf.name!r} (an SWF keeps its own "
            "name, which is also its metric's); name the entry point so",
            PluginWarning,
        )


class SWFError(ValueError):
    """A plug-in SWF failed to evaluate (its own code raised)."""


def social_welfare(
    name: str,
    utility: FloatArray,
    consumption: FloatArray,
    income: FloatArray,
    weights: FloatArray,
    survey_weight: FloatArray | None = None,
) -> FloatArray:
    """Evaluate the registered SWF ``name`` (see :func:`swf_names`).

    Raises:
        SWFError: a plug-in SWF's own code raised (named, with its error); an error of
            a built-in SWF is a bug and propagates as it is.
    """
    inputs = WelfareInputs(utility, consumption, income, weights, survey_weight)
    swf = get_swf(name)
    try:
        value = swf.evaluate(inputs)
    except Exception as exc:
        if is_llmecon_code(swf.evaluate):  # a built-in's error is a bug
            raise
        raise SWFError(f"{_plugin_swf(name, swf)} failed: {type(exc).__name__}: {exc}") from exc
    if is_llmecon_code(swf.evaluate):
        return value
    # a plug-in's answer is checked as its error would be: only the runs that use it
    # stop on an answer that is not one finite number per economy (one per worker, a
    # word, NaN)
    answer, shape = np.asarray(value), np.shape(utility)[:-1]
    if answer.shape != shape or answer.dtype.kind not in "iuf":
        got = f"an array of shape {answer.shape}" if answer.shape else repr(value)[:40]
        want = "one number" if not shape else f"one number per economy, shape {shape}"
        raise SWFError(f"{_plugin_swf(name, swf)} returned {got}, not {want}")
    if not np.all(np.isfinite(answer)):
        bad = answer[~np.isfinite(answer)].flat[0] if shape else float(answer)
        raise SWFError(f"{_plugin_swf(name, swf)} returned {bad}, not a finite number")
    return answer.astype(np.float64)[()]  # one economy's: a float64, as the built-ins give


def _plugin_swf(name: str, swf: SWF) -> str:
    """How an error names a plug-in SWF: ``the SWF 'median' (a plug-in, its.module)``."""
    return f"the SWF {name!r} (a plug-in, {getattr(swf.evaluate, '__module__', '?')})"


def marginal_welfare_weights(
    swf: str,
    consumption: FloatArray,
    income: FloatArray,
    utility: FloatArray,
    fixed_weights: FloatArray,
    crra: float | None,
    survey_weight: FloatArray | None = None,
) -> FloatArray:
    """Social marginal welfare weights ``∂W/∂c_i``, normalised to mean 1.

    What the Saez formula needs: how much the planner values a dollar to each worker
    under the named SWF (incomes held fixed). With survey weights: per person, with a
    mean of 1 over people (a dollar to everyone is worth 1).
    """
    w = _raw_marginal_weights(swf, consumption, income, utility, fixed_weights, crra, survey_weight)
    mean = float(weighted_mean(w, survey_weight))
    return w / mean if mean > 0 else np.ones(w.size)


def output_welfare_weight(
    swf: str,
    consumption: FloatArray,
    income: FloatArray,
    utility: FloatArray,
    fixed_weights: FloatArray,
    crra: float | None,
    survey_weight: FloatArray | None = None,
) -> float | None:
    """``∂W/∂z_i`` with every consumption held fixed, in units of the mean ``∂W/∂c_i``.

    ``None`` for the welfarist SWFs (utilitarian, inverse-income, Rawlsian): they value
    income only through consumption and leisure, so a worker's own response to a tax
    change has no first-order welfare effect (envelope theorem). The AI Economist's
    ``equality × productivity`` values output directly (``∂W/∂z_i = equality(c)/N``)
    and does not value leisure; its value is returned (``inf`` when no dollar of
    consumption can raise equality, i.e. all consumptions are equal).
    """
    found = get_swf(swf)
    if found.output_weight is None:
        return None
    c = np.asarray(consumption, dtype=float)
    raw = _raw_marginal_weights(swf, c, income, utility, fixed_weights, crra, survey_weight)
    raw_mean = float(weighted_mean(raw, survey_weight))
    if raw_mean <= 0:
        return float("inf")
    inputs = WelfareInputs(np.asarray(utility), c, income, fixed_weights, survey_weight)
    return found.output_weight(inputs) / raw_mean


def _raw_marginal_weights(
    swf: str,
    consumption: FloatArray,
    income: FloatArray,
    utility: FloatArray,
    fixed_weights: FloatArray,
    crra: float | None,
    survey_weight: FloatArray | None = None,
) -> FloatArray:
    """``∂W/∂c_i`` per person (up to a positive factor for the welfarist SWFs)."""
    found = get_swf(swf)
    if found.marginal_weights is None:
        raise ValueError(
            f"the social welfare function {swf!r} defines no marginal weights "
            "(the Saez planner needs them)"
        )
    c = np.asarray(consumption, dtype=float)
    mu = marginal_consumption_utility(c, crra)
    inputs = WelfareInputs(np.asarray(utility), c, income, fixed_weights, survey_weight)
    return np.asarray(found.marginal_weights(inputs, mu), dtype=float)


# -- the built-in SWFs ------------------------------------------------------------------


def _rawlsian_marginal(inputs: WelfareInputs, mu: FloatArray) -> FloatArray:
    w = np.zeros(inputs.consumption.size)
    u = np.asarray(inputs.utility, dtype=float)
    if inputs.survey_weight is not None:  # the worst-off among people who count
        u = np.where(np.asarray(inputs.survey_weight) > 0, u, np.inf)
    w[int(np.argmin(u))] = 1.0
    return w


def _etp_marginal(inputs: WelfareInputs, mu: FloatArray) -> FloatArray:
    if inputs.survey_weight is not None:
        return _etp_marginal_weighted(inputs, np.asarray(inputs.survey_weight, dtype=float))
    c = inputs.consumption
    n = c.size
    rank = np.empty(n)
    rank[np.argsort(c, kind="stable")] = np.arange(1, n + 1)
    total = c.sum()
    d_gini = ((2.0 * rank - n - 1.0) / n - gini(c)) / total if total else np.zeros(n)
    return np.asarray(
        -d_gini * (n / (n - 1.0) if n > 1 else 1.0) * float(np.mean(inputs.income)), dtype=float
    )


def _etp_marginal_weighted(inputs: WelfareInputs, w: FloatArray) -> FloatArray:
    """Per person: ``−∂Gini/∂c_i / w_i · N_eff/(N_eff−1) · mean_w(z)`` with the weighted
    Gini, ``∂G/∂c_i = w_i (2 r_i / W − G − 1) / Σ_j w_j c_j`` (ranks held fixed)."""
    c = np.asarray(inputs.consumption, dtype=float)
    order = np.argsort(c, kind="stable")
    mid = np.empty(c.size)
    mid[order] = np.cumsum(w[order]) - 0.5 * w[order]
    total = float(w @ c)
    g = float(gini(c, w))
    d_gini = (2.0 * mid / w.sum() - g - 1.0) / total if total else np.zeros(c.size)
    scale = _equality_scale(effective_size(w, c.size))
    return np.asarray(-d_gini * scale * float(weighted_mean(inputs.income, w)), dtype=float)


for _swf in (
    SWF(
        "utilitarian",
        "mean utility",
        "the average utility of all workers (income after tax and rebate, minus the cost "
        "of working)",
        lambda x: utilitarian_welfare(x.utility, x.survey_weight),
        lambda x, mu: mu,
    ),
    SWF(
        "inverse_income",
        "mean utility weighted by 1/potential income (fixed weights, mean 1)",
        "welfare that counts each worker's utility with a weight inversely proportional "
        "to their earning potential (helping low earners counts more)",
        lambda x: inverse_income_welfare(x.utility, x.weights, x.survey_weight),
        lambda x, mu: np.asarray(x.weights * mu, dtype=float),
    ),
    SWF(
        "rawlsian",
        "the worst-off worker's utility",
        "the utility of the worst-off worker",
        lambda x: rawlsian_welfare(x.utility, x.survey_weight),
        _rawlsian_marginal,
    ),
    SWF(
        "equality_times_productivity",
        "AI Economist: (1 − Gini(c)·N/(N−1)) · mean income",
        "equality of after-tax income times average pre-tax income",
        lambda x: equality_times_productivity(x.consumption, x.income, x.survey_weight),
        _etp_marginal,
        lambda x: (
            float(equality(x.consumption, x.survey_weight))
            / (x.consumption.size if x.survey_weight is None else float(np.sum(x.survey_weight)))
        ),
    ),
    # LLM Economist (Karten et al. 2025, TaxPlanner.get_social_welfare): the sum of
    # utilities over *realised* pre-tax income, floored at 1 USD (each worker counted
    # survey_weight times); the Saez weights hold the incomes fixed (they ignore that
    # the weights move with z).
    SWF(
        "inverse_realised_income",
        "LLM Economist: Σ u_i / max(z_i, 1), z_i realised pre-tax income",
        "the sum over workers of each worker's utility divided by their pre-tax income "
        "this year (at least one dollar)",
        lambda x: (
            np.asarray(x.utility)
            / np.maximum(x.income, 1.0)
            * (1.0 if x.survey_weight is None else np.asarray(x.survey_weight))
        ).sum(axis=-1),
        lambda x, mu: np.asarray(mu / np.maximum(x.income, 1.0), dtype=float),
    ),
):
    register_swf(_swf)
del _swf


def gain_closed(swf: float, none_swf: float | None, oracle_swf: float | None) -> float | None:
    """Share of the welfare gain from no tax to the oracle that ``swf`` closes.

    ``(W − W_none) / (W_oracle − W_none)``: 0 for the free market, 1 for the oracle,
    negative when worse than no tax. Unlike ``W / W_oracle`` it does not depend on the
    SWF's origin, so it works for negative SWFs (CRRA with η > 1). ``None`` ("n/a") when
    a reference is missing or the gap is not resolvable (``|W_oracle − W_none|`` at most
    1e-9 of the larger of the two in magnitude): then no planner can gain anything.
    """
    if none_swf is None or oracle_swf is None:
        return None
    gap = oracle_swf - none_swf
    if not np.isfinite(gap) or abs(gap) <= GAIN_GAP_RTOL * max(abs(oracle_swf), abs(none_swf)):
        return None
    return (swf - none_swf) / gap


#: Smallest resolvable none → oracle gap, relative to the SWF's magnitude.
GAIN_GAP_RTOL = 1e-9
