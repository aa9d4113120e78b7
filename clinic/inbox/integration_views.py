"""The admins' view of the outgoing webhooks (`/integrations`): each receiver (`WEBHOOK_URLS`, and any
older one that still has deliveries) with its recent deliveries, failures first.

Read straight from `hook_deliveries` (`clinic.hooks` writes them): event type, appointment id,
attempts, the last HTTP status or error, when the next attempt is due, when it was delivered. Never
the payload's other ids or anything about the patient. A delivery that has given up can be queued
again (`clinic.hooks.retry`, the same as `clinic hooks retry ID`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sanic import response
from sanic.request import Request
from sqlalchemy import case, func, select

from clinic import hooks
from clinic.db import Database
from clinic.models import HookDelivery, HookStatus
from clinic.settings import settings

PER_ENDPOINT = 50  # recent deliveries shown per receiver
# Shown first: what has given up, then what is being retried, then what waits its first attempt.
_ORDER = case((HookDelivery.status == HookStatus.failed, 0),
              (HookDelivery.status == HookStatus.pending, case((HookDelivery.attempts > 0, 1), else_=2)),
              else_=3)
STATE_LABELS = {"failed": "Failed (gave up)", "retrying": "Retrying", "queued": "Queued", "delivered": "Delivered"}


def shown_url(url: str) -> str:
    """The receiver as admins may see it: no credentials or query string (they may hold a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" + ("?…" if parts.query else "")


@dataclass(frozen=True)
class Delivery:
    id: int
    event: str
    appointment_id: int | None
    state: str  # failed, retrying, queued, delivered
    attempts: int
    last_http_status: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None  # pending ones only
    delivered_at: datetime | None
    created_at: datetime

    @property
    def label(self) -> str:
        return STATE_LABELS[self.state]


@dataclass(frozen=True)
class Endpoint:
    url: str
    configured: bool
    counts: dict[str, int]
    deliveries: list[Delivery]

    @property
    def failing(self) -> bool:
        return bool(self.counts["failed"] or self.counts["retrying"])


def _appointment_id(payload: dict) -> int | None:
    data = (payload or {}).get("data") or {}
    for state in (data.get("new"), data.get("old")):
        if isinstance(state, dict) and isinstance(state.get("appointment_id"), int):
            return state["appointment_id"]
    return None


def _state(row: HookDelivery) -> str:
    if row.status is HookStatus.pending:
        return "retrying" if row.attempts else "queued"
    return row.status.value


def _delivery(row: HookDelivery) -> Delivery:
    state = _state(row)
    return Delivery(row.id, row.event, _appointment_id(row.payload), state, row.attempts, row.last_http_status,
                    row.last_error, row.last_attempt_at,
                    row.next_attempt_at if state in ("retrying", "queued") else None, row.delivered_at,
                    row.created_at)


def endpoints(db: Database, configured: list[str] | None = None, limit: int = PER_ENDPOINT) -> list[Endpoint]:
    """Every configured receiver (even without deliveries yet) and every URL that has deliveries; the
    ones with failures first, then in the configured order.
    """
    configured = list(dict.fromkeys(settings().webhook_url_list if configured is None else configured))
    with db.reading() as session:
        tallies: dict[str, dict[str, int]] = {}
        state = case((HookDelivery.status == HookStatus.pending,
                      case((HookDelivery.attempts > 0, "retrying"), else_="queued")),
                     else_=HookDelivery.status)
        for url, kind, count in session.execute(
                select(HookDelivery.url, state, func.count()).group_by(HookDelivery.url, state)):
            kind = kind.value if isinstance(kind, HookStatus) else str(kind)
            tallies.setdefault(url, dict.fromkeys(STATE_LABELS, 0))[kind] = count
        urls = configured + sorted(set(tallies) - set(configured))
        found = []
        for url in urls:
            rows = session.scalars(select(HookDelivery).where(HookDelivery.url == url)
                                   .order_by(_ORDER, HookDelivery.id.desc()).limit(limit)).all()
            found.append(Endpoint(url, url in configured, tallies.get(url, dict.fromkeys(STATE_LABELS, 0)),
                                  [_delivery(row) for row in rows]))
    return sorted(found, key=lambda e: not e.failing)  # stable: configured order within each group


def register(app, *, login_required, page, message, run, db) -> None:
    """Add the webhook page to the inbox app (admins only)."""

    @app.get("/integrations")
    @login_required(admin=True)
    async def integrations_page(request: Request):
        found = await run(endpoints, db())
        return page("integrations.html", request, endpoints=[(e, shown_url(e.url)) for e in found],
                    per_endpoint=PER_ENDPOINT)

    @app.post("/integrations/deliveries/<delivery_id:int>/retry")
    @login_required(admin=True)
    async def retry_delivery(request: Request, delivery_id: int):
        try:
            await run(hooks.retry, db(), delivery_id)
        except hooks.UnknownDelivery:
            return message(request, 409, "Nothing to retry",
                           f"Delivery #{delivery_id} has not given up (or does not exist).", back="/integrations")
        return response.redirect("/integrations", status=303)
