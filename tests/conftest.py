from __future__ import annotations

import pytest

pytest_plugins = ["django_clickatell_stop.testing.pytest_plugin"]


@pytest.fixture
def gw(clickatell_gateway):
    """Short name for the fake gateway, with retries kept fast."""
    return clickatell_gateway
