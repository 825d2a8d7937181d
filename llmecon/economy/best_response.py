"""Exact rational best response to any piecewise-linear schedule (DESIGN.md §2).

On each bracket segment the worker's objective is concave in hours, so the segment's
maximiser is the interior first-order solution clipped to the hours that keep income in
that segment. Evaluating every segment's candidate and keeping the best is exact for
any schedule, including non-monotone (non-convex) ones. Everything is vectorised over
agents × brackets, and over a leading batch of schedules for the oracle.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from llmecon.economy.schedule import cumulative_tax_at_edges
from llmecon.economy.utility import (
    WEEKS_PER_YEAR,
    UtilityConfig,
    consumption_utility,
    labour_disutility,
    marginal_consumption_utility,
)

FloatArray = NDArray[np.float64]

_BISECTION_STEPS = 60
_BLOCK_ELEMENTS = 1 << 16


def best_response_hours(
    hourly_wage: FloatArray,
    psi: FloatArray,
    edges: ArrayLike,
    rates: ArrayLike,
    config: UtilityConfig,
    rebate_usd: float | FloatArray = 0.0,
) -> FloatArray:
    """Utility-maximising weekly hours of each worker.

    Args:
        hourly_wage: ``s_i``, shape ``(N,)``.
        psi: calibrated disutility weights ``ψ_i``, shape ``(N,)``.
        edges: bracket lower edges (annual USD), shape ``(B,)``.
        rates: marginal rates, shape ``(B,)`` or a batch ``(S, B)``.
        config: preferences (ε, hour cap, optional CRRA).
        rebate_usd: the lump-sum transfer each worker takes as given (only matters
            under CRRA), a scalar or shape ``(S,)`` for a batch.

    Returns:
        Weekly hours, shape ``(N,)`` or ``(S, N)``; ties go to the lowest bracket.
    """
    edges_arr = np.asarray(edges, dtype=float)
    rates_arr = np.asarray(rates, dtype=float)
    batched = rates_arr.ndim == 2
    r = rates_arr if batched else rates_arr[None, :]  # (S, B)
    s = np.asarray(hourly_wage, dtype=float)
    p = np.asarray(psi, dtype=float)
    # Work on blocks of workers so the (S, N, B) temporaries stay cache-sized: much
    # faster for large populations than one huge allocation.
    block = max(1, _BLOCK_ELEMENTS // (r.shape[0] * edges_arr.size))
    parts = [
        _best_response_block(s[i : i + block], p[i : i + block], edges_arr, r, config, rebate_usd)
        for i in range(0, s.size, block)
    ]
    out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    return out if batched else out[0]


def _best_response_block(
    s: FloatArray,
    psi: FloatArray,
    edges_arr: FloatArray,
    r: FloatArray,
    config: UtilityConfig,
    rebate_usd: float | FloatArray,
) -> FloatArray:
    lmax = config.max_weekly_hours
    eps = config.elasticity

    # Hours at which income enters / leaves each bracket, (N, B).
    seg_lo = edges_arr[None, :] / (WEEKS_PER_YEAR * s[:, None])
    upper = np.append(edges_arr[1:], np.inf)
    seg_hi = np.minimum(upper[None, :] / (WEEKS_PER_YEAR * s[:, None]), lmax)
    valid = seg_lo < lmax
    valid[:, 0] = True

    # Consumption on segment b is linear in hours: c = 52 s (1-τ_b) l + k_b + rebate,
    # with k_b = τ_b m_b − T(m_b).
    net = 1.0 - r  # (S, B)
    intercept = r * edges_arr[None, :] - cumulative_tax_at_edges(edges_arr, r)  # (S, B)
    slope = WEEKS_PER_YEAR * s[None, :, None] * net[:, None, :]  # (S, N, B)

    if config.crra is None:
        interior = (s / psi)[None, :, None] ** eps * net[:, None, :] ** eps
        hours = np.clip(interior, seg_lo, seg_hi)
        value = (
            slope * hours
            + intercept[:, None, :]
            - labour_disutility(hours, psi[None, :, None], eps)
        )
    else:
        rebate = np.broadcast_to(np.asarray(rebate_usd, dtype=float), (r.shape[0],))
        base = intercept[:, None, :] + rebate[:, None, None]
        hours = _crra_segment_argmax(slope, base, psi, seg_lo, seg_hi, config)
        value = consumption_utility(slope * hours + base, config.crra) - labour_disutility(
            hours, psi[None, :, None], eps
        )

    value = np.where(valid[None, :, :], value, -np.inf)
    best = np.argmax(value, axis=-1)
    return np.take_along_axis(hours, best[..., None], axis=-1)[..., 0]


def _crra_segment_argmax(
    slope: FloatArray,
    base: FloatArray,
    psi: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    config: UtilityConfig,
) -> FloatArray:
    """Per-segment maximiser under CRRA by bisection on the (decreasing) derivative."""
    eps = config.elasticity
    p = psi[None, :, None]

    def derivative(h: FloatArray) -> FloatArray:
        mu = marginal_consumption_utility(slope * h + base, config.crra)
        return mu * slope - WEEKS_PER_YEAR * p * h ** (1.0 / eps)

    a = np.broadcast_to(lo, slope.shape).copy()
    b = np.broadcast_to(np.maximum(hi, lo), slope.shape).copy()
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (a + b)
        up = derivative(mid) > 0
        a = np.where(up, mid, a)
        b = np.where(up, b, mid)
    return 0.5 * (a + b)
