"""Benchmarks (not part of the test suite): run ``make benchmark``."""

from __future__ import annotations
