"""The GB2 income distribution of LLM Economist (ACS 2023 fit), for paper replication.

LLM Economist (Karten et al. 2025) draws each worker's skill from a generalised beta
of the second kind fitted to ACS 2023 incomes, with the gamlss parameter names
μ = 72 402.78 (scale b), σ = 2.0721 (shape a), ν = 0.48652 (p), τ = 1.14104 (q), the
income being read as earnings at 40 h/week. Density::

    f(y) = a y^(ap−1) / (b^(ap) B(p, q) (1 + (y/b)^a)^(p+q))

If ``X ~ Beta(p, q)`` then ``b (X / (1 − X))^(1/a)`` is GB2(a, b, p, q).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class GB2:
    """A GB2(a, b, p, q) distribution of annual income (USD)."""

    scale_usd: float = 72402.78  # μ (b)
    a: float = 2.0721  # σ
    p: float = 0.48652  # ν
    q: float = 1.14104  # τ

    def sample(self, n: int, rng: np.random.Generator) -> NDArray[np.float64]:
        x = rng.beta(self.p, self.q, size=n)
        x = np.clip(x, 1e-300, 1.0 - 1e-16)
        return np.asarray(self.scale_usd * (x / (1.0 - x)) ** (1.0 / self.a), dtype=float)

    def sf(self, income_usd: float | NDArray[np.float64]) -> NDArray[np.float64]:
        """P(Y > y)."""
        from scipy import special  # ~0.3 s to import: only when used

        r = (np.asarray(income_usd, dtype=float) / self.scale_usd) ** self.a
        return np.asarray(special.betainc(self.q, self.p, 1.0 / (1.0 + r)), dtype=float)

    def mean(self) -> float:
        """E[Y] (finite when a·q > 1)."""
        from scipy import special

        a, p, q = self.a, self.p, self.q
        return float(self.scale_usd * special.beta(p + 1 / a, q - 1 / a) / special.beta(p, q))


#: LLM Economist's ACS-2023 fit.
LLM_ECONOMIST_GB2 = GB2()
#: Weekly hours at which the GB2 income is earned (skill = income / (52 · 40)).
GB2_HOURS_PER_WEEK = 40.0
