"""Outgoing webhooks: booking events POSTed to the clinic's other systems, at least once.

- **Written with the change.** `booking_event()` is called by `clinic.scheduling` inside the booking's
  transaction: one `hook_deliveries` row per receiver (`WEBHOOK_URLS`), so an event exists if and
  only if the change committed, whoever made it (WhatsApp, the FHIR API, the CLI).
- **At least once, with an idempotency key.** `deliver_due()` claims due rows (an attempt's lease
  moves `next_attempt_at` forward, so a crashed worker's row is tried again later), POSTs them and
  records the answer. The event's `id` (also the `Idempotency-Key` header) is the same on every
  retry and for every receiver: receivers drop what they have seen.
- **Signed.** `X-Clinic-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>` with `WEBHOOK_SECRET`,
  the scheme of the handoff alerts and of Meta's webhooks.
- **Retried with backoff.** Anything but a 2xx is retried after `WEBHOOK_RETRY_BASE_SECONDS`, doubled
  per attempt up to `WEBHOOK_RETRY_MAX_SECONDS`, with a little jitter; after `WEBHOOK_MAX_ATTEMPTS`
  the row is `failed` (`clinic hooks failures` shows it, `clinic hooks retry ID` queues it again).
- **Ids only.** The body carries ids, statuses and times (checked by the audit trail's rules), never
  names; logs carry delivery ids and HTTP statuses. Order across events is not guaranteed: receivers
  compare `occurred_at`, or read the appointment from the FHIR API.

`python -m clinic.hooks` runs the delivery loop (`--once` for a single pass), with Prometheus
`/metrics` on HOOKS_METRICS_PORT (attempts per outcome, their duration, deliveries per state: docs/kpi.md).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from clinic.audit import _plain as recordable
from clinic.db import Database, database
from clinic.models import HookDelivery, HookStatus, utcnow
from clinic.settings import require_safe_to_start, settings

if TYPE_CHECKING:  # the metrics module (Prometheus, Sanic) is loaded by the worker only, not by bookings
    from clinic.metrics import HookMetrics

logger = logging.getLogger(__name__)

# Booking change (the audit kind's suffix) → the event receivers see.
EVENTS = {
    "booked": "appointment.created",
    "rescheduled": "appointment.rescheduled",
    "cancelled": "appointment.cancelled",
    "confirmed": "appointment.confirmed",
    "no_show": "appointment.no_show",
    "completed": "appointment.fulfilled",
}
LEASE = timedelta(seconds=60)  # longer than one attempt (TIMEOUT) and its bookkeeping
TIMEOUT_SECONDS = 10.0
BATCH = 20
SIGNATURE_HEADER = "X-Clinic-Signature-256"  # as `clinic.inbox.alerts` (importing it would load the inbox app)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def booking_event(session: Session, change: str, data: dict, now: datetime) -> None:
    """Queue the event of a booking change for every receiver, in the caller's transaction."""
    urls = settings().webhook_url_list
    if not urls or change not in EVENTS:
        return
    event_id = str(uuid.uuid4())
    payload = {"id": event_id, "type": EVENTS[change], "occurred_at": now, "data": data}
    plain = recordable(payload, "event")  # ids and metadata only, as the audit trail
    session.add_all(
        HookDelivery(event_id=event_id, event=EVENTS[change], url=url, payload=plain, next_attempt_at=now,
                     created_at=now)
        for url in urls
    )


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: doubling, capped, with up to 10 % jitter."""
    current = settings()
    seconds = min(current.webhook_retry_base_seconds * 2 ** (attempts - 1), current.webhook_retry_max_seconds)
    return timedelta(seconds=seconds * (1 + random.random() / 10))


@dataclass(frozen=True)
class _Attempt:
    id: int
    url: str
    event_id: str
    event: str
    body: bytes


def _claim(db: Database, now: datetime, limit: int) -> list[_Attempt]:
    """Due rows, leased to this worker: nobody else tries them until the lease runs out."""
    with db.transaction() as session:
        rows = session.scalars(
            select(HookDelivery)
            .where(HookDelivery.status == HookStatus.pending, HookDelivery.next_attempt_at <= now)
            .order_by(HookDelivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            row.attempts += 1
            row.last_attempt_at = now
            row.next_attempt_at = now + LEASE
        return [_Attempt(r.id, r.url, r.event_id, r.event,
                         json.dumps(r.payload, sort_keys=True, separators=(",", ":")).encode()) for r in rows]


def _post(http: requests.Session, attempt: _Attempt) -> tuple[int | None, str | None]:
    """(HTTP status, error) of one POST; error None on a 2xx."""
    headers = {"Content-Type": "application/json", "Idempotency-Key": attempt.event_id,
               "X-Clinic-Event": attempt.event, "User-Agent": "clinic-assistant-webhooks"}
    secret = settings().webhook_secret
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, attempt.body)
    try:
        answer = http.post(attempt.url, data=attempt.body, headers=headers, timeout=TIMEOUT_SECONDS,
                           allow_redirects=False)
    except requests.RequestException as error:
        return None, type(error).__name__
    return answer.status_code, None if 200 <= answer.status_code < 300 else f"HTTP {answer.status_code}"


def _record(db: Database, attempt: _Attempt, status: int | None, error: str | None, now: datetime) -> str:
    """Store the attempt's answer; its outcome: delivered, retrying or failed."""
    with db.transaction() as session:
        row = session.get(HookDelivery, attempt.id)
        row.last_http_status, row.last_error = status, error
        if error is None:
            row.status, row.delivered_at = HookStatus.delivered, now
            return "delivered"
        if row.attempts >= settings().webhook_max_attempts:
            row.status = HookStatus.failed
            logger.warning("webhook delivery %s failed for good after %s attempts: %s", row.id, row.attempts, error)
            return "failed"
        row.next_attempt_at = now + backoff(row.attempts)
        logger.info("webhook delivery %s attempt %s: %s", row.id, row.attempts, error)
        return "retrying"


def deliver_due(db: Database, *, now: datetime | None = None, http: requests.Session | None = None,
                limit: int = BATCH, counts: HookMetrics | None = None) -> int:
    """One pass: try every due delivery once; how many were tried (each counted in `counts`)."""
    now = now or utcnow()
    attempts = _claim(db, now, limit)
    own = http is None
    http = http or requests.Session()
    try:
        for attempt in attempts:
            began = time.perf_counter()
            status, error = _post(http, attempt)
            took = time.perf_counter() - began
            outcome = _record(db, attempt, status, error, now)
            if counts is not None:
                counts.attempts.labels(outcome).inc()
                counts.seconds.observe(took)
    finally:
        if own:
            http.close()
    return len(attempts)


@dataclass(frozen=True)
class DeliveryView:
    id: int
    event_id: str
    event: str
    url: str
    status: HookStatus
    attempts: int
    last_http_status: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime
    created_at: datetime


def deliveries(db: Database, *, failed_only: bool = False, limit: int = 50) -> list[DeliveryView]:
    """The latest deliveries (or failed ones), newest first: what admins look at."""
    stmt = select(HookDelivery).order_by(HookDelivery.id.desc()).limit(limit)
    if failed_only:
        stmt = stmt.where(HookDelivery.status == HookStatus.failed)
    with db.reading() as session:
        return [DeliveryView(r.id, r.event_id, r.event, r.url, r.status, r.attempts, r.last_http_status,
                             r.last_error, r.last_attempt_at, r.next_attempt_at, r.created_at)
                for r in session.scalars(stmt)]


class UnknownDelivery(LookupError):
    pass


def retry(db: Database, delivery_id: int, now: datetime | None = None) -> None:
    """Queue a failed delivery again (same event id: a receiver that got it after all drops it)."""
    with db.transaction() as session:
        row = session.get(HookDelivery, delivery_id)
        if row is None or row.status is not HookStatus.failed:
            raise UnknownDelivery(f"no failed webhook delivery {delivery_id}")
        row.status, row.attempts, row.next_attempt_at = HookStatus.pending, 0, now or utcnow()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m clinic.hooks", description="Deliver booking events.")
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    require_safe_to_start()
    from clinic import metrics

    counts = metrics.HookMetrics()
    if settings().hooks_metrics_port and not args.once:
        metrics.serve(settings().hooks_metrics_port,
                      metrics.process_registry(counts.collectors(), [metrics.HookCollector(database)]))
    with requests.Session() as http:
        while True:
            try:
                tried = deliver_due(database(), http=http, counts=counts)
            except Exception as error:  # noqa: BLE001 - the loop must outlive a bad pass (database restart)
                logger.warning("webhook pass failed: %s", type(error).__name__)
                tried = 0
            if args.once:
                return
            if not tried:
                time.sleep(settings().webhook_interval_seconds)


if __name__ == "__main__":
    main()

