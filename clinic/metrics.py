"""Operations metrics for Prometheus, read from the clinic database when scraped.

Every figure comes from the database, not from counters kept by one process: the outbox, the tickets
and the reminders are shared by all processes, so any process exposing `/metrics` (the inbox on its
own port, the webhook ingest and the FHIR API on theirs, the outreach worker on
OUTREACH_METRICS_PORT) reports the same clinic-wide values; scrape one of them (or tell the series
apart by `instance`). Counters are totals over the table (rate() gives message rates); the reply-
latency histogram counts the messages that arrived since this process started.

- `clinic_inbound_messages_total`: patient messages stored.
- `clinic_outbound_messages_total{source}`: outbox rows by sender (bot, outreach, inbox, window).
- `clinic_outbox_depth{status}`: rows waiting to go (queued, sending, held).
- `clinic_outbox_failures_total{error_code}`: rows given up on, per Meta's code.
- `clinic_open_tickets{priority}`: handoff tickets waiting or claimed.
- `clinic_outreach_backlog`: reminders due now and not yet settled.
- `clinic_webhook_reply_seconds`: webhook (message stored) → the bot's first reply queued (`kpi.reply_latencies`).
"""

from __future__ import annotations

import asyncio
import hmac
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sanic import response
from sqlalchemy import func, select

from clinic import kpi
from clinic.db import Database
from clinic.models import HandoffTicket, InboundMessage, OutboundMessage, OutboundStatus, TicketStatus, utcnow
from clinic.settings import settings

BUCKETS = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)
# A message's reply is looked for once it is this old: by then the bot has answered or never will.
SETTLE = timedelta(seconds=60)
WAITING = (OutboundStatus.queued, OutboundStatus.sending, OutboundStatus.held)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def _source_group(source: str) -> str:
    """Outbox sources grouped so the label set stays small: `inbox:rossi` is `inbox`."""
    if source == kpi.WINDOW_SOURCE:
        return "window"
    return source.split(":")[0]


class ClinicCollector:
    """Collects the clinic's figures at each scrape (a few COUNT queries and one pass over new messages)."""

    def __init__(self, db: Callable[[], Database], now: Callable[[], datetime] = utcnow) -> None:
        self.db, self.now = db, now
        self._lock = threading.Lock()
        self._since = now() - SETTLE  # messages before this process started are not in the histogram
        self._buckets = [0] * (len(BUCKETS) + 1)
        self._sum = 0.0

    def _observe_replies(self, session) -> None:
        with self._lock:
            until = self.now() - SETTLE
            if until <= self._since:
                return
            for seconds in kpi.reply_latencies(session, self._since, until):
                index = next((i for i, bound in enumerate(BUCKETS) if seconds <= bound), len(BUCKETS))
                self._buckets[index] += 1
                self._sum += seconds
            self._since = until

    def collect(self) -> Iterator:
        with self.db().reading() as session:
            inbound = session.scalar(select(func.count()).select_from(InboundMessage))
            outbound = session.execute(
                select(OutboundMessage.source, func.count()).group_by(OutboundMessage.source)).all()
            depth = dict(session.execute(
                select(OutboundMessage.status, func.count()).where(OutboundMessage.status.in_(WAITING))
                .group_by(OutboundMessage.status)).all())
            failures = session.execute(
                select(OutboundMessage.error_code, func.count()).where(OutboundMessage.status == OutboundStatus.failed)
                .group_by(OutboundMessage.error_code)).all()
            tickets = dict(session.execute(
                select(HandoffTicket.priority, func.count()).where(HandoffTicket.status != TicketStatus.resolved)
                .group_by(HandoffTicket.priority)).all())
            self._observe_replies(session)
        yield CounterMetricFamily("clinic_inbound_messages", "Patient messages stored.", value=inbound)
        sent = CounterMetricFamily("clinic_outbound_messages", "Outbox rows by sender.", labels=["source"])
        grouped: dict[str, int] = {}
        for source, count in outbound:
            grouped[_source_group(source)] = grouped.get(_source_group(source), 0) + count
        for source, count in sorted(grouped.items()):
            sent.add_metric([source], count)
        yield sent
        waiting = GaugeMetricFamily("clinic_outbox_depth", "Outbox rows waiting to go.", labels=["status"])
        for status in WAITING:
            waiting.add_metric([status.value], depth.get(status, 0))
        yield waiting
        failed = CounterMetricFamily("clinic_outbox_failures", "Outbox rows given up on, per Meta's error code.",
                                     labels=["error_code"])
        for code, count in sorted(failures, key=lambda row: str(row[0])):
            failed.add_metric([str(code) if code is not None else "none"], count)
        yield failed
        open_tickets = GaugeMetricFamily("clinic_open_tickets", "Handoff tickets waiting or claimed.",
                                         labels=["priority"])
        for priority in ("normal", "urgent"):
            open_tickets.add_metric([priority], tickets.get(priority, 0))
        yield open_tickets
        yield GaugeMetricFamily("clinic_outreach_backlog", "Reminders due now and not yet settled.",
                                value=self._backlog())
        with self._lock:
            cumulative, total = [], 0
            for bound, count in zip((*map(str, BUCKETS), "+Inf"), self._buckets, strict=True):
                total += count
                cumulative.append((bound, total))
            yield HistogramMetricFamily(
                "clinic_webhook_reply_seconds", "Webhook (message stored) to the bot's first reply queued.",
                buckets=cumulative, sum_value=self._sum)

    def _backlog(self) -> int:
        from clinic.outreach import reminders  # the worker's rules; imported only when scraped

        return len(reminders.due_now(self.db(), self.now(), reminders.Rules.from_settings()))


def registry(db: Callable[[], Database]) -> CollectorRegistry:
    """A registry with the clinic's figures (for an HTTP route or `prometheus_client.start_http_server`)."""
    found = CollectorRegistry()
    found.register(ClinicCollector(db))
    return found


def exposition(registry_: CollectorRegistry) -> bytes:
    """The registry in Prometheus' text format (`CONTENT_TYPE`)."""
    return generate_latest(registry_)


def add_route(app, db: Callable[[], Database]) -> None:
    """`GET /metrics` on a Sanic app (inbox, webhook ingest, FHIR API); bearer METRICS_TOKEN when set."""
    found = registry(db)

    @app.get("/metrics", name="prometheus_metrics")
    async def metrics_page(request):
        token = settings().metrics_token
        given = request.headers.get("authorization", "")
        if token and not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return response.text("a bearer token is needed", status=401)
        return response.raw(await asyncio.to_thread(exposition, found), content_type=CONTENT_TYPE)
