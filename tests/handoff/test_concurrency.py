"""Two (or ten) nurses claiming one ticket at the same moment: exactly one wins, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from clinic import handoff
from clinic.db import Database
from clinic.models import TicketStatus
from tests.handoff.conftest import add_staff

NURSES = 10


def race(db: Database, calls: list) -> list:
    barrier = threading.Barrier(len(calls))

    def attempt(call):
        own = Database(db.url)
        try:
            barrier.wait()
            return call(own)
        except handoff.HandoffError as error:
            return error
        finally:
            own.dispose()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(attempt, calls))


def test_concurrent_claims_have_exactly_one_winner(any_db, contact_id):
    nurses = [add_staff(any_db, f"nurse{i}") for i in range(NURSES)]
    ticket = handoff.open_ticket(any_db, contact_id, "request_human")

    outcomes = race(any_db, [lambda db, n=n: handoff.claim(db, ticket.id, n) for n in nurses])

    won = [o for o in outcomes if isinstance(o, handoff.TicketView)]
    lost = [o for o in outcomes if isinstance(o, handoff.AlreadyClaimed)]
    assert (len(won), len(lost)) == (1, NURSES - 1), outcomes
    assert {o.by for o in lost} == {won[0].claimed_by}
    final = handoff.get(any_db, ticket.id)
    assert (final.status, final.claimed_by_id) == (TicketStatus.claimed, won[0].claimed_by_id)


def test_concurrent_requests_from_one_contact_open_one_ticket(any_db, contact_id):
    outcomes = race(any_db, [lambda db: handoff.open_ticket(db, contact_id, "request_human") for _ in range(8)])
    assert len({o.id for o in outcomes}) == 1, outcomes
