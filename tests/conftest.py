"""Shared fixtures: small seeded economies."""

from __future__ import annotations

import numpy as np
import pytest

from llmecon.economy import Economy, Population, synthetic_population


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def population() -> Population:
    return synthetic_population(500, np.random.default_rng(7))


@pytest.fixture
def economy(population: Population) -> Economy:
    return Economy(population)
