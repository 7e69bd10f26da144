"""pytest fixtures: add ``pytest_plugins = ["django_clickatell_stop.testing.pytest_plugin"]``
to your ``conftest.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .gateway import FakeGateway, fake_gateway


@pytest.fixture
def clickatell_gateway() -> Iterator[FakeGateway]:
    """A running ``FakeGateway`` with ``settings.CLICKATELL_STOP`` pointing at it."""
    with fake_gateway() as gateway:
        yield gateway
