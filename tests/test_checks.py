from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import override_settings

from django_clickatell_stop.checks import check_settings, is_loopback

GOOD = {"USER": "u", "PASSWORD": "p", "API_ID": "1"}


def ids(**config):
    with override_settings(CLICKATELL_STOP=config):
        return [m.id for m in check_settings()]


def test_complete_https_settings_pass():
    assert ids(**GOOD) == []


def test_missing_credentials_warn():
    assert ids() == ["django_clickatell_stop.W001"]
    with override_settings(CLICKATELL_STOP={"USER": "u"}):
        (message,) = check_settings()
    assert "PASSWORD, API_ID" in message.msg


def test_not_a_dict_is_an_error():
    with override_settings(CLICKATELL_STOP=["USER"]):
        assert [m.id for m in check_settings()] == ["django_clickatell_stop.E001"]


def test_unknown_keys_warn():
    assert ids(**GOOD, TIMEOUTS=3) == ["django_clickatell_stop.W002"]


@pytest.mark.parametrize("url", ["http://api.clickatell.com", "ftp://api.clickatell.com", "not a url", 42])
def test_unsafe_base_url_is_an_error(url):
    assert ids(**GOOD, BASE_URL=url) == ["django_clickatell_stop.E002"]


def test_credentials_in_base_url_are_not_echoed():
    with override_settings(CLICKATELL_STOP={**GOOD, "BASE_URL": "https://u:topsecret@api.clickatell.com"}):
        (message,) = check_settings()
    assert "topsecret" not in message.msg


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8765",
        "http://localhost:1",
        "http://[::1]:80",
        "http://127.3.4.5",
    ],
)
def test_plain_http_is_allowed_for_loopback(url):
    assert ids(**GOOD, BASE_URL=url) == []


def test_plain_http_elsewhere_needs_explicit_permission():
    assert ids(**GOOD, BASE_URL="http://gateway.internal", ALLOW_INSECURE_HTTP=True) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TIMEOUT", 0),
        ("TIMEOUT", "10"),
        ("MAX_RETRIES", -1),
        ("MAX_RETRIES", 1.5),
        ("CONCURRENCY", 0),
        ("CONCURRENCY", True),
        ("CHUNK_SIZE", 0),
    ],
)
def test_bad_numbers_are_errors(name, value):
    assert ids(**GOOD, **{name: value}) == ["django_clickatell_stop.E003"]


def test_good_numbers_pass():
    assert ids(**GOOD, TIMEOUT=2.5, MAX_RETRIES=0, CONCURRENCY=16, RETRY_BACKOFF=0) == []


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("10.0.0.1") and not is_loopback("example.com") and not is_loopback(None)


def test_registered_with_manage_py_check(capsys):
    with override_settings(CLICKATELL_STOP={}):
        call_command("check")
    assert "django_clickatell_stop.W001" in capsys.readouterr().err
