"""Shared persona fixtures: one large seeded sample per session (the targets need it)."""

from __future__ import annotations

import numpy as np
import pytest

from llmecon.personas import PersonaSample, sample_personas

LARGE_N = 200_000


@pytest.fixture(scope="session")
def large_sample() -> PersonaSample:
    return sample_personas(LARGE_N, np.random.default_rng(2024))
