"""Shared fixtures."""

from __future__ import annotations

import pytest

from _systems import lj_fluid


@pytest.fixture
def lj_system():
    return lj_fluid()
