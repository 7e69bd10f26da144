from __future__ import annotations

import pytest

pytest_plugins = ["django_clickatell_stop.testing.pytest_plugin"]


@pytest.fixture
def gw(clickatell_gateway):
    """Short name for the fake gateway, with retries kept fast."""
    return clickatell_gateway


def stored_text(*models) -> list[str]:
    """Every stored value of every row of *models*, as text (for the secrets scans)."""
    return [
        str(getattr(obj, field.attname))
        for model in models
        for obj in model._default_manager.all()
        for field in model._meta.concrete_fields
    ]
