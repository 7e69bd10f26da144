"""The fake gateway itself: Clickatell's documented behaviour, controls, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import requests

from django_clickatell_stop.testing import FakeGateway

APIMSGID = "f6b9af2a2c9e5b18ee2d257e3def5d66"


def post(gw, command, **params):
    form = {"user": gw.user, "password": gw.password, "api_id": gw.api_id, **params}
    return requests.post(f"{gw.url}/http/{command}", data=form, timeout=5)


def test_stop_and_repeated_stop_answer_006():
    with FakeGateway() as gw:
        gw.add_message(APIMSGID)
        assert post(gw, "delmsg", apimsgid=APIMSGID).text == f"ID: {APIMSGID} Status: 006"
        assert gw.message(APIMSGID).state == "stopped"
        assert post(gw, "delmsg", apimsgid=APIMSGID).text == f"ID: {APIMSGID} Status: 006"


def test_get_is_accepted_like_the_published_docs():
    with FakeGateway() as gw:
        gw.add_message(APIMSGID, state="handed_on")
        query = {
            "user": gw.user,
            "password": gw.password,
            "api_id": gw.api_id,
            "apimsgid": APIMSGID,
        }
        response = requests.get(f"{gw.url}/http/delmsg", params=query, timeout=5)
        assert response.text == f"ID: {APIMSGID} Status: 003"
        assert gw.calls[0].method == "GET"


def test_bad_credentials_and_missing_id():
    with FakeGateway() as gw:
        assert post(gw, "delmsg", apimsgid=APIMSGID, password="nope").text.startswith("ERR: 001,")
        assert post(gw, "delmsg").text.startswith("ERR: 109,")
        assert post(gw, "nosuchcommand").text.startswith("ERR: 101,")


def test_sendmsg_schedules_and_the_clock_delivers():
    with FakeGateway() as gw:
        reply = post(gw, "sendmsg", to="27999000001", text="hi", deliv_time="10", climsgid="c1")
        apimsgid = reply.text.removeprefix("ID: ")
        assert gw.message(apimsgid).state == "scheduled"
        assert post(gw, "querymsg", apimsgid=apimsgid).text.endswith("Status: 011")
        gw.advance(601)
        assert gw.message(apimsgid).state == "delivered"
        assert post(gw, "delmsg", climsgid="c1").text == "ID: c1 Status: 004"
        assert post(gw, "sendmsg", to="1", text="x", climsgid="c1").text.startswith("ERR: 101")
        assert post(gw, "sendmsg", to="1", text="x", deliv_time="99999").text.startswith("ERR: 120")
        assert post(gw, "sendmsg", to="1").text.startswith("ERR: 101")


def test_accept_any_id_treats_unknown_ids_as_scheduled():
    with FakeGateway(accept_any_id=True) as gw:
        assert post(gw, "delmsg", apimsgid=APIMSGID).text.endswith("Status: 006")
        assert post(gw, "delmsg", climsgid="whatever1").text.endswith("Status: 006")


def test_faults_can_target_one_message():
    with FakeGateway() as gw:
        other = "1" * 32
        gw.add_message(APIMSGID)
        gw.add_message(other)
        gw.fault("error", code=114, message_id=other)
        assert post(gw, "delmsg", apimsgid=APIMSGID).text.endswith("006")
        assert post(gw, "delmsg", apimsgid=other).text == "ERR: 114, Cannot route message"
        assert post(gw, "delmsg", apimsgid=other).text.endswith("006")


def test_control_endpoints():
    with FakeGateway() as gw:
        created = requests.post(
            f"{gw.url}/_fake/messages",
            data=json.dumps({"apimsgid": APIMSGID}),
            timeout=5,
        ).json()
        assert created["state"] == "scheduled"
        post(gw, "delmsg", apimsgid=APIMSGID)
        state = requests.get(f"{gw.url}/_fake/state", timeout=5).json()
        assert [c["form"]["apimsgid"] for c in state["calls"]] == [APIMSGID]
        assert state["messages"][0]["state"] == "stopped"
        requests.post(f"{gw.url}/_fake/advance", data='{"seconds": 5}', timeout=5)
        requests.post(f"{gw.url}/_fake/reset", timeout=5)
        assert gw.calls == [] and gw.messages == {}
        assert requests.get(f"{gw.url}/_fake/nope", timeout=5).status_code == 404
        assert requests.get(f"{gw.url}/other", timeout=5).status_code == 404


def test_command_line_server_starts_and_answers():
    process = subprocess.Popen(
        [sys.executable, "-m", "django_clickatell_stop.testing", "--accept-any-id"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        form = {
            "user": "fake-user",
            "password": "fake-password-3e1d",
            "api_id": "3456789",
            "apimsgid": APIMSGID,
        }
        assert requests.post(f"{url}/http/delmsg", data=form, timeout=5).text.endswith("Status: 006")
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_command_line_refuses_non_loopback():
    result = subprocess.run(
        [sys.executable, "-m", "django_clickatell_stop.testing", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "loopback only" in result.stderr
