"""Faults a test can arm, and the pacing limits (pair rate 131056, throughput 130429)."""

from __future__ import annotations

import pytest
import requests

PATIENT = "393333000003"
OTHER = "393333000004"


@pytest.fixture(autouse=True)
def windows_open(sandbox):
    sandbox.open_window(PATIENT)
    sandbox.open_window(OTHER)


@pytest.mark.parametrize("kind, status, code", [
    ("http_429", 429, 130429),
    ("http_500", 500, 131000),
    ("http_503", 503, 131016),
])
def test_http_faults_answer_with_metas_error_shape(sandbox, kind, status, code):
    sandbox.fault(kind, times=2)
    for _ in range(2):
        reply = sandbox.send_text(PATIENT, "x")
        assert reply.status_code == status
        error = reply.json()["error"]
        assert error["code"] == code and error["fbtrace_id"]
        assert error["error_data"]["details"]
    assert sandbox.send_text(PATIENT, "x").status_code == 200  # used up after `times`


@pytest.mark.parametrize("code", [131026, 131047, 131056, 130429, 131000, 131016])
def test_an_error_fault_answers_the_given_code_synchronously(sandbox, code):
    sandbox.fault("error", code=code)
    reply = sandbox.send_text(PATIENT, "x")
    assert reply.json()["error"]["code"] == code
    assert reply.status_code == {131000: 500, 131016: 503}.get(code, 400)


@pytest.mark.parametrize("code", [131026, 131047])
def test_a_failed_fault_is_accepted_then_reported_in_a_status(sandbox, webhook_receiver, code):
    sandbox.fault("failed", code=code)
    reply = sandbox.send_text(PATIENT, "x")
    assert reply.status_code == 200
    (failed,) = webhook_receiver.wait_statuses(reply.json()["messages"][0]["id"])
    assert failed["status"] == "failed" and failed["errors"][0]["code"] == code


def test_a_fault_can_target_one_recipient(sandbox):
    sandbox.fault("http_500", recipient=OTHER, times=1)
    assert sandbox.send_text(PATIENT, "x").status_code == 200
    assert sandbox.send_text(OTHER, "x").status_code == 500
    assert sandbox.send_text(OTHER, "x").status_code == 200


def test_a_timeout_fault_holds_the_response_past_the_clients_timeout(sandbox):
    sandbox.fault("timeout", delay=3)
    with pytest.raises(requests.Timeout):
        requests.post(sandbox.messages_url, json={"messaging_product": "whatsapp", "to": PATIENT, "type": "text",
                                                  "text": {"body": "slow"}},
                      headers={"Authorization": f"Bearer {sandbox.access_token}"}, timeout=0.5)
    # Like Meta, a send the client gave up on may still go out: the patient gets it once it is processed.
    assert sandbox.wait_received(PATIENT, 1, timeout=15)[0]["view"]["text"] == "slow"


def test_an_undeliverable_patient_gets_131026(sandbox, webhook_receiver):
    sandbox.set_patient(PATIENT, undeliverable=True)
    wamid = sandbox.send_text(PATIENT, "x").json()["messages"][0]["id"]
    assert webhook_receiver.wait_statuses(wamid)[0]["errors"][0]["code"] == 131026


def test_faults_are_listed_and_cleared(sandbox):
    sandbox.fault("http_429", times=5)
    assert sandbox.http.get(f"{sandbox.base_url}/_sandbox/faults").json()[0]["times"] == 5
    sandbox.clear_faults()
    assert sandbox.send_text(PATIENT, "x").status_code == 200


def test_an_unknown_fault_kind_is_refused(sandbox):
    reply = sandbox.http.post(f"{sandbox.base_url}/_sandbox/faults", json={"kind": "meteor"})
    assert reply.status_code == 400


# --- pacing -------------------------------------------------------------------------------------------


def test_flooding_one_patient_trips_the_pair_rate_limit(sandbox):
    sandbox.configure(pair_burst=3, pair_per_second=1 / 6)
    codes = [sandbox.send_text(PATIENT, str(i)).status_code for i in range(4)]
    assert codes == [200, 200, 200, 400]
    reply = sandbox.send_text(PATIENT, "again")
    assert reply.json()["error"]["code"] == 131056
    assert sandbox.send_text(OTHER, "someone else").status_code == 200  # the limit is per pair


def test_a_client_pacing_one_message_every_6_seconds_never_trips_it(sandbox):
    sandbox.configure(pair_burst=1, pair_per_second=1 / 6)
    for i in range(10):
        assert sandbox.send_text(PATIENT, str(i)).status_code == 200
        sandbox.advance_clock(6)  # the sandbox clock stands in for the client's waiting


def test_the_default_pair_limit_allows_a_burst_of_45(sandbox):
    codes = [sandbox.send_text(PATIENT, str(i)).status_code for i in range(46)]
    assert codes[:45] == [200] * 45 and codes[45] == 400


def test_exceeding_throughput_is_130429(sandbox):
    sandbox.configure(messages_per_second=2)
    replies = [sandbox.send_text(f"39333100{i:04d}", "x") for i in range(3)]
    assert [r.status_code for r in replies] == [200, 200, 400]
    assert replies[2].json()["error"]["code"] == 130429
    sandbox.advance_clock(1)
    assert sandbox.send_text("393331009999", "x").status_code == 200


def test_a_client_within_throughput_never_trips_it(sandbox):
    sandbox.configure(messages_per_second=5)
    for second in range(3):
        for i in range(5):
            assert sandbox.send_text(f"3933320{second}{i:04d}", "x").status_code == 200
        sandbox.advance_clock(1)
