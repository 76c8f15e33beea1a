"""Fixtures shared by the helpers' tests: the sample and one churn-risk fit on it (each takes seconds)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sample_events():
    from helpers.io import load_events
    from helpers.sample import generate_journeys

    return load_events(generate_journeys(20_000, seed=0).events)


@pytest.fixture(scope="session")
def sample_risk(sample_events):
    """One fit shared by the tests that only read it."""
    from helpers.risk import churn_risk

    return churn_risk(sample_events)
