"""Operations metrics for Prometheus: `/metrics` on every long-running process (docs/kpi.md).

Two kinds of figure, both defined here only:

**Clinic-wide, read from the database at each scrape.** The outbox, the tickets and the reminders are
shared by all processes, so they are counted in the database, not by one process. The inbox, the
webhook ingest, the FHIR API and the outreach worker serve all of them (`ClinicCollector`): scrape one
(or tell the series apart by `instance`). Counters are totals over the table (rate() gives message
rates); the reply-latency histogram counts the messages that arrived since this process started.

- `clinic_inbound_messages_total`: patient messages stored.
- `clinic_outbound_messages_total{source}`: outbox rows by sender (bot, outreach, inbox, window).
- `clinic_outbox_depth{status}`: rows waiting to go (queued, sending, held).
- `clinic_outbox_failures_total{error_code}`: rows given up on, per Meta's code.
- `clinic_open_tickets{priority}`: handoff tickets waiting or claimed.
- `clinic_outreach_backlog`: reminders due now and not yet settled.
- `clinic_webhook_reply_seconds`: webhook (message stored) → the bot's first reply queued (`kpi.reply_latencies`).
- `clinic_hook_deliveries{status}`: booking events per state; `pending` is the webhook worker's backlog.

**What one process does itself, counted in memory** (reset when it restarts: rate() copes):

- the Rasa server's `whatsapp` channel (`ChannelMetrics`): messages handed to the bot, bot messages
  queued, webhook → first reply latency; with the outbox figures (its client sends them).
- the webhook ingest (`IngestMetrics`): webhook POST → answer latency per HTTP status; with the
  clinic-wide figures.
- the action server (`ActionMetrics`, through rasa_sdk's plugin hook: `rasa_sdk_plugins`): runs per
  action and HTTP status, their duration, failures.
- the webhook worker (`HookMetrics`): delivery attempts per outcome and their duration; with
  `clinic_hook_deliveries`.

Sanic runs one worker process unless SANIC_WORKERS / ACTION_SERVER_SANIC_WORKERS say otherwise; with
several, set PROMETHEUS_MULTIPROC_DIR (an empty directory per server) so that every worker's counts
are added up (prometheus_client's multiprocess mode) instead of each scrape seeing one worker's.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sanic import response
from sqlalchemy import func, select

from clinic import kpi
from clinic.db import Database
from clinic.models import (
    HandoffTicket,
    HookDelivery,
    HookStatus,
    InboundMessage,
    OutboundMessage,
    OutboundStatus,
    TicketStatus,
    utcnow,
)
from clinic.settings import settings

logger = logging.getLogger(__name__)

BUCKETS = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)
CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # one action, one webhook POST
# A message's reply is looked for once it is this old: by then the bot has answered or never will.
SETTLE = timedelta(seconds=60)
WAITING = (OutboundStatus.queued, OutboundStatus.sending, OutboundStatus.held)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def _source_group(source: str) -> str:
    """Outbox sources grouped so the label set stays small: `inbox:rossi` is `inbox`."""
    if source == kpi.WINDOW_SOURCE:
        return "window"
    return source.split(":")[0]


def _outbox_families(session) -> Iterator:
    """The outbox as the database holds it: rows by sender, rows waiting, rows given up on."""
    outbound = session.execute(
        select(OutboundMessage.source, func.count()).group_by(OutboundMessage.source)).all()
    depth = dict(session.execute(
        select(OutboundMessage.status, func.count()).where(OutboundMessage.status.in_(WAITING))
        .group_by(OutboundMessage.status)).all())
    failures = session.execute(
        select(OutboundMessage.error_code, func.count()).where(OutboundMessage.status == OutboundStatus.failed)
        .group_by(OutboundMessage.error_code)).all()
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


def _hook_families(session) -> Iterator:
    counts = dict(session.execute(
        select(HookDelivery.status, func.count()).group_by(HookDelivery.status)).all())
    family = GaugeMetricFamily("clinic_hook_deliveries", "Booking events per state (pending: the backlog).",
                               labels=["status"])
    for status in HookStatus:
        family.add_metric([status.value], counts.get(status, 0))
    yield family


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
            outbox = list(_outbox_families(session))
            hooks = list(_hook_families(session))
            tickets = dict(session.execute(
                select(HandoffTicket.priority, func.count()).where(HandoffTicket.status != TicketStatus.resolved)
                .group_by(HandoffTicket.priority)).all())
            self._observe_replies(session)
        yield CounterMetricFamily("clinic_inbound_messages", "Patient messages stored.", value=inbound)
        yield from outbox
        open_tickets = GaugeMetricFamily("clinic_open_tickets", "Handoff tickets waiting or claimed.",
                                         labels=["priority"])
        for priority in ("normal", "urgent"):
            open_tickets.add_metric([priority], tickets.get(priority, 0))
        yield open_tickets
        yield GaugeMetricFamily("clinic_outreach_backlog", "Reminders due now and not yet settled.",
                                value=self._backlog())
        yield from hooks
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


class OutboxCollector:
    """The outbox figures alone: what the Rasa process, whose WhatsApp client sends them, reports."""

    def __init__(self, db: Callable[[], Database]) -> None:
        self.db = db

    def collect(self) -> Iterator:
        with self.db().reading() as session:
            families = list(_outbox_families(session))
        yield from families


class HookCollector:
    """`clinic_hook_deliveries{status}` alone: the webhook worker's backlog and given-up events."""

    def __init__(self, db: Callable[[], Database]) -> None:
        self.db = db

    def collect(self) -> Iterator:
        with self.db().reading() as session:
            families = list(_hook_families(session))
        yield from families


# --- what one process counts itself ---------------------------------------------------------------
# Metric objects are made with registry=None and registered by `process_registry`: several registries
# (tests, two channels in one process) never collide in prometheus_client's default registry.


class ChannelMetrics:
    """The `whatsapp` channel in the Rasa process: one instance per channel."""

    def __init__(self) -> None:
        self.messages = Counter("clinic_channel_messages", "Patient messages handed to the bot, per outcome "
                                "(handled, retried, failed).", ["outcome"], registry=None)
        self.bot_messages = Counter("clinic_channel_bot_messages", "Bot messages queued in the outbox "
                                    "(queued) or lost because the outbox was unavailable (lost).",
                                    ["outcome"], registry=None)
        self.reply_seconds = Histogram("clinic_channel_reply_seconds", "Webhook (message stored) to the bot's "
                                       "first reply of the turn queued, measured as it happens.",
                                       buckets=BUCKETS, registry=None)
        self.fallbacks = Counter("clinic_channel_nlu_turns", "Bot turns by NLU outcome (fallback: the turn "
                                 "ended in nlu_fallback or a fallback action).", ["fallback"], registry=None)
        for outcome in ("handled", "retried", "failed"):
            self.messages.labels(outcome)
        for outcome in ("queued", "lost"):
            self.bot_messages.labels(outcome)
        for fallback in ("true", "false"):
            self.fallbacks.labels(fallback)

    def collectors(self) -> tuple:
        return self.messages, self.bot_messages, self.reply_seconds, self.fallbacks


class IngestMetrics:
    """The webhook ingest: how fast Meta's webhooks are answered (Meta wants the median under 250 ms and
    retries what is slow), from the handler's start to the answer, per HTTP status.
    """

    def __init__(self) -> None:
        self.ack_seconds = Histogram("clinic_webhook_ack_seconds", "Webhook POST to its answer (200 once "
                                     "stored; 4xx refused; 500 not stored), per HTTP status.", ["status"],
                                     buckets=CALL_BUCKETS, registry=None)

    def collectors(self) -> tuple:
        return (self.ack_seconds,)


class ActionMetrics:
    """The action server: every `/webhook` call (one action run) and the failures the actions caught."""

    def __init__(self) -> None:
        self.runs = Counter("clinic_action_runs", "Action runs per action and HTTP status.", ["action", "status"],
                            registry=None)
        self.seconds = Histogram("clinic_action_seconds", "Time to run an action (the /webhook call).",
                                 ["action"], buckets=CALL_BUCKETS, registry=None)
        self.failures = Counter("clinic_action_failures", "Action runs that failed: an error caught at the "
                                "action boundary (the patient got an apology) or an HTTP 500.", ["action"],
                                registry=None)

    def collectors(self) -> tuple:
        return self.runs, self.seconds, self.failures

    def observe(self, action: str, status: int, seconds: float) -> None:
        self.runs.labels(action, str(status)).inc()
        self.seconds.labels(action).observe(seconds)
        if status >= 500:
            self.failures.labels(action).inc()


class HookMetrics:
    """The webhook worker's delivery attempts."""

    def __init__(self) -> None:
        self.attempts = Counter("clinic_hook_attempts", "Booking event POSTs per outcome (delivered, retrying: "
                                "another attempt is due, failed: given up).", ["outcome"], registry=None)
        self.seconds = Histogram("clinic_hook_attempt_seconds", "Time of one booking event POST.",
                                 buckets=CALL_BUCKETS, registry=None)
        for outcome in ("delivered", "retrying", "failed"):
            self.attempts.labels(outcome)

    def collectors(self) -> tuple:
        return self.attempts, self.seconds


@functools.cache
def action_metrics() -> ActionMetrics:
    """The action server's one `ActionMetrics` (the plugin hook times the calls, `actions.common.guarded`
    counts the failures it catches).
    """
    return ActionMetrics()


def action_failed(action: str) -> None:
    action_metrics().failures.labels(action).inc()


# --- registries and serving them ------------------------------------------------------------------


def process_registry(own: Iterable = (), shared: Iterable = ()) -> CollectorRegistry:
    """A registry with a process's own metrics and database collectors. In prometheus_client's
    multiprocess mode (PROMETHEUS_MULTIPROC_DIR) the own metrics are read from every worker's files.
    """
    found = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(found)
    else:
        for metric in own:
            found.register(metric)
    for collector in shared:
        found.register(collector)
    return found


def registry(db: Callable[[], Database]) -> CollectorRegistry:
    """A registry with the clinic's figures (for an HTTP route or `serve`)."""
    return process_registry(shared=[ClinicCollector(db)])


def exposition(registry_: CollectorRegistry) -> bytes:
    """The registry in Prometheus' text format (`CONTENT_TYPE`)."""
    return generate_latest(registry_)


def authorized(header: str | None) -> bool:
    """The scraper's `Authorization` header against METRICS_TOKEN (anyone when it is empty)."""
    token = settings().metrics_token
    return not token or hmac.compare_digest((header or "").encode(), f"Bearer {token}".encode())


def add_route(app, db: Callable[[], Database] | None = None, *, found: CollectorRegistry | None = None) -> None:
    """`GET /metrics` on a Sanic app: the clinic's figures from `db`, or the registry `found`."""
    found = found or registry(db)

    @app.get("/metrics", name="prometheus_metrics")
    async def metrics_page(request):
        if not authorized(request.headers.get("authorization")):
            return response.text("a bearer token is needed", status=401)
        return response.raw(await asyncio.to_thread(exposition, found), content_type=CONTENT_TYPE)


def serve(port: int, found: CollectorRegistry, host: str | None = None) -> ThreadingHTTPServer | None:
    """`GET /metrics` on its own port (METRICS_HOST), in a daemon thread, for a worker without a web
    server (the outreach and webhook workers). A port already taken is logged, and the worker goes on
    without.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?")[0] != "/metrics":
                status, body, kind = 404, b"not found\n", "text/plain"
            elif not authorized(self.headers.get("Authorization")):
                status, body, kind = 401, b"a bearer token is needed\n", "text/plain"
            else:
                status, body, kind = 200, exposition(found), CONTENT_TYPE
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            """Scrapes are not logged."""

    host = host or settings().metrics_host
    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as error:
        logger.error("metrics not served: port %s unavailable (%s)", port, type(error).__name__)
        return None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    logger.info("Prometheus metrics on http://%s:%s/metrics", host, server.server_address[1])
    return server


# --- the action server (rasa_sdk's `attach_sanic_app_extensions` hook, see rasa_sdk_plugins) ------


def _action_name(request) -> str | None:
    """`next_action` of a rasa_sdk `/webhook` call (Rasa may deflate the body); never the rest of it."""
    try:
        body = request.body
        if request.headers.get("Content-Encoding") == "deflate":
            body = zlib.decompress(body)
        name = json.loads(body).get("next_action")
    except (ValueError, AttributeError, zlib.error):
        return None
    return name if isinstance(name, str) else None


def attach_to_action_server(app) -> None:
    """`/metrics` on the action server's own port, and each `/webhook` call timed by action name (an
    unknown action, answered 404, is counted as `unknown`: names sent by anyone make no new series).
    """
    own = action_metrics()
    add_route(app, found=process_registry(own.collectors()))

    async def started(request) -> None:
        if request.path == "/webhook":
            request.ctx.metrics_started = time.perf_counter()

    async def finished(request, answer) -> None:
        began = getattr(request.ctx, "metrics_started", None)
        if began is None or answer is None:
            return
        name = _action_name(request) if answer.status != 404 else None
        own.observe(name or "unknown", answer.status, time.perf_counter() - began)

    app.register_middleware(started, "request")
    app.register_middleware(finished, "response")
