"""Fixtures for the examples: the verification suite's Redis, clock and emulator."""

from __future__ import annotations

# Registered here as well: examples/ is a sibling of verify/, not below it.
from tests.verify.conftest import clock, emulator, redis_url  # noqa: F401
