"""Meta's error codes → retry, give up, or alert (clinic.whatsapp.errors)."""

from __future__ import annotations

import pytest

from clinic.whatsapp.errors import CODES, Action, GraphError, classify


@pytest.mark.parametrize(
    ("code", "http_status", "action"),
    [
        # throughput, pair rate and Meta-side trouble: wait and try again
        (130429, 400, Action.retry),
        (131056, 400, Action.retry),
        (80007, 400, Action.retry),
        (4, 400, Action.retry),
        (131000, 500, Action.retry),
        (131016, 503, Action.retry),
        (1, 500, Action.retry),
        (2, 503, Action.retry),
        (133004, 503, Action.retry),
        # this message will never go out as it is
        (131026, 400, Action.permanent),
        (131009, 400, Action.permanent),
        (131008, 400, Action.permanent),
        (100, 400, Action.permanent),
        (131051, 400, Action.permanent),
        (131053, 400, Action.permanent),
        (130497, 403, Action.permanent),
        (132000, 400, Action.permanent),
        (132001, 404, Action.permanent),
        (132015, 400, Action.permanent),  # any 132xxx: template errors
        (132999, 400, Action.permanent),
        # the account, token, billing: a person must act; the message is fine
        (190, 401, Action.alert),
        (0, 401, Action.alert),
        (10, 403, Action.alert),
        (200, 403, Action.alert),
        (299, 403, Action.alert),
        (131031, 403, Action.alert),
        (131042, 400, Action.alert),
        (368, 403, Action.alert),
        (131048, 400, Action.alert),
        # the 24-hour window: the client's own fallback
        (131047, 400, Action.window),
    ],
)
def test_known_codes(code, http_status, action):
    assert classify(code, http_status).action is action


@pytest.mark.parametrize(
    ("http_status", "action"),
    [(None, Action.retry), (429, Action.retry), (500, Action.retry), (502, Action.retry), (503, Action.retry),
     (408, Action.retry), (401, Action.alert), (403, Action.alert), (400, Action.permanent), (404, Action.permanent)],
)
def test_unknown_codes_fall_back_on_the_http_status(http_status, action):
    assert classify(None, http_status).action is action
    assert classify(987654, http_status).action is action


def test_every_listed_code_says_why():
    assert all(why for _, why in CODES.values())


def test_retried_means_retry_or_alert():
    assert classify(131056).retried and classify(190).retried
    assert not classify(131026).retried and not classify(131047).retried


def test_graph_error_carries_its_verdict():
    error = GraphError(429, 130429, "(#130429) Rate limit hit", retry_after=3)
    assert (error.verdict.action, error.retry_after) == (Action.retry, 3)
    assert "130429" in str(error) and "Rate limit" not in str(error)
