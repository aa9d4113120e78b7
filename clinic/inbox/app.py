"""The nurse inbox web app (Sanic + Jinja2, server-rendered; a little JavaScript polls for live updates).

It also serves two things that are not the inbox but share its security: the lab systems' endpoint
`POST /api/lab/results` (bearer LAB_API_KEY, no cookies) and the patients' download page
`/r/<token>` of a single-use result link (asks the date of birth again; `clinic.results`).

Security: sessions are random tokens in HttpOnly SameSite=Strict cookies (Secure unless
INBOX_COOKIE_SECURE=false), every POST carries the session's CSRF token (the login form a
double-submit one), strict security headers on every answer, `no-store` so patient data stays off
disk caches. Every view, claim, reply, note, release and resolution lands in `staff_events` and the
audit trail (`clinic.audit`).
Logs carry ids only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hmac
import itertools
import logging
import mimetypes
import secrets
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sanic import Sanic, response
from sanic.exceptions import SanicException
from sanic.request import File, Request
from sqlalchemy import select

from clinic import consent, crypto, handoff, identity, patients, results, staff, wording
from clinic.db import Database, database
from clinic.inbox import integration_views, kpi_views, rights_views
from clinic.inbox.alerts import Alerts
from clinic.inbox.handback import resume_bot
from clinic.models import Contact, InboundMessage, utcnow
from clinic.settings import settings
from clinic.web import harden
from clinic.whatsapp.client import WINDOW_SOURCE, WhatsAppClient
from clinic.whatsapp.outbound import CAPTION_MAX, MB, MEDIA_KINDS, MEDIA_LIMITS, media_message
from clinic.whatsapp.types import GraphConfig

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "inbox_session"
LOGIN_CSRF_COOKIE = "inbox_login_csrf"
STATUS_LABELS = {
    "held": "held: the 24-hour window is closed; goes out when the patient answers the template",
    "queued": "queued",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
}
_names = itertools.count()
CAPTIONED_KINDS = ("image", "document", "video")


def _local(moment: datetime | None, fmt: str = "%d %b %H:%M") -> str:
    return moment.astimezone(settings().zone).strftime(fmt) if moment else ""


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _templates() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.filters["local"] = _local
    env.filters["duration"] = _duration
    return env


def _who(entry: handoff.TranscriptEntry) -> str:
    """Who wrote a transcript line, as a nurse would say it."""
    source = entry.source or ""
    if entry.direction == "in":
        return "patient"
    if source == "inbox:handback":
        return "clinic (hand-back)"
    if source.startswith("inbox:"):
        return "nurse " + source.removeprefix("inbox:")
    if source == WINDOW_SOURCE:
        return "clinic (24-hour window template)"
    return {"bot": "bot"}.get(source, source.replace("outreach:", "clinic ") or "clinic")


def field(request: Request, name: str) -> str:
    """One form field, "" when missing (also for a POST without a form body)."""
    return (request.form or {}).get(name) or ""


def _upload_mime(upload: File) -> str:
    declared = (upload.type or "").split(";")[0].strip().lower()
    if declared in MEDIA_LIMITS:
        return declared
    return mimetypes.guess_type(upload.name or "")[0] or declared or "application/octet-stream"


def attachment_problem(upload: File) -> str | None:
    """Why WhatsApp would refuse this file (type or size, per Meta's table), said before anything is queued."""
    kind, limit = MEDIA_LIMITS.get(_upload_mime(upload), (None, 0))
    if kind not in MEDIA_KINDS:  # stickers are for patients
        return ("WhatsApp cannot deliver this kind of file. Send a photo (JPEG, PNG), a PDF, a text or an "
                "Office document, an MP4 video or an audio file.")
    if not upload.body:
        return "The file is empty."
    if len(upload.body) > limit:
        return f"WhatsApp takes {kind}s of at most {limit // MB} MB; this file has {len(upload.body) / MB:.1f} MB."
    return None


def reply_bodies(contact_id: int, text: str, upload: File | None) -> list[dict]:
    """The outbox bodies of one nurse reply: text, a file (kept under the media dir, uploaded when sent), or
    both (the text as the file's caption when WhatsApp allows one that long, else a text message first).
    """
    if upload is None:
        return [{"type": "text", "text": {"body": text}}]
    mime = _upload_mime(upload)
    kind = MEDIA_LIMITS[mime][0]
    filename = Path(upload.name or "").name.strip() or f"attachment{mimetypes.guess_extension(mime) or ''}"
    folder = settings().media_dir / "outbound" / str(contact_id)
    path = folder / f"{secrets.token_hex(8)}{Path(filename).suffix.lower()[:10]}"
    crypto.write_file(path, upload.body)
    captioned = bool(text) and kind in CAPTIONED_KINDS and len(text) <= CAPTION_MAX
    bodies = [] if captioned or not text else [{"type": "text", "text": {"body": text}}]
    bodies.append(media_message(kind, path=str(path), filename=filename, mime=mime,
                                caption=text if captioned else None, encrypted=True))
    return bodies


def create_app(db: Database | None = None, name: str | None = None) -> Sanic:
    """The inbox app; the database defaults to DATABASE_URL, the WhatsApp client is made at start-up."""
    app = Sanic(name or f"clinic_inbox_{next(_names)}")
    harden(app, max_request_bytes=101 * MB)  # WhatsApp documents may be 100 MB
    app.ctx.db = db
    app.ctx.client = None
    jinja = _templates()
    app.static("/static", str(HERE / "static"), name="static")

    def db_() -> Database:
        return app.ctx.db

    async def run(function, *args, **kwargs):
        """Database work off the event loop (SQLite writers may wait for the lock)."""
        return await asyncio.to_thread(function, *args, **kwargs)

    def page(template: str, request: Request, status: int = 200, **values: Any) -> response.HTTPResponse:
        session = getattr(request.ctx, "session", None)
        html = jinja.get_template(template).render(
            me=session.staff if session else None, csrf=session.csrf_token if session else "", **values
        )
        return response.html(html, status=status)

    def message(request: Request, status: int, title: str, text: str, back: str = "/") -> response.HTTPResponse:
        return page("message.html", request, status=status, title=title, text=text, back=back)

    # --- start-up and shutdown -----------------------------------------------------------------

    @app.before_server_start
    async def start(app_: Sanic, _loop) -> None:
        if app_.ctx.db is None:
            app_.ctx.db = database()
        if settings().demo_mode:
            await run(staff.ensure_demo_nurse, app_.ctx.db)
            await run(staff.ensure_demo_admin, app_.ctx.db)  # sees the KPI dashboard
            await run(handoff.seed_canned, app_.ctx.db)
        # Created here, not at import: the client's loop must run on the server's event loop.
        app_.ctx.client = WhatsAppClient(app_.ctx.db, GraphConfig.from_settings(settings()))
        await app_.ctx.client.start()
        app_.ctx.alerts = None
        if settings().handoff_webhook_url:
            app_.ctx.alerts = Alerts(app_.ctx.db, settings().handoff_webhook_url, settings().handoff_webhook_secret)
            app_.ctx.alerts.start()

    @app.after_server_stop
    async def stop(app_: Sanic, _loop) -> None:
        if getattr(app_.ctx, "alerts", None) is not None:
            await app_.ctx.alerts.close()
        if app_.ctx.client is not None:
            await app_.ctx.client.close()

    @app.exception(Exception)
    async def failure(request: Request, error: Exception):
        """Known HTTP errors answer plainly; anything else is logged by type only (SQL errors quote
        their parameters, i.e. patient text) and answers a bare 500.
        """
        if isinstance(error, SanicException):
            return response.text(str(error) or "error", status=getattr(error, "status_code", 500) or 500)
        logger.error("inbox %s %s failed: %s", request.method, request.route.name if request.route else "-",
                     type(error).__name__)
        return response.text("Something went wrong; it was logged. Try again.", status=500)

    # --- sessions and CSRF -----------------------------------------------------------------------

    def set_cookie(answer: response.HTTPResponse, key: str, value: str, max_age: int | None = None) -> None:
        answer.cookies[key] = value
        cookie = answer.cookies[key]
        cookie["httponly"] = True
        cookie["samesite"] = "Strict"
        cookie["path"] = "/"
        if settings().inbox_cookie_secure:
            cookie["secure"] = True
        if max_age is not None:
            cookie["max-age"] = max_age

    def login_required(handler=None, *, admin: bool = False, api: bool = False):
        """Loads the session (else login page / 401) and checks the CSRF token on every POST."""

        def wrap(handler):
            @functools.wraps(handler)
            async def guarded(request: Request, *args, **kwargs):
                session = await run(staff.session_for, db_(), request.cookies.get(SESSION_COOKIE))
                if session is None:
                    if api:
                        return response.json({"error": "sign in"}, status=401)
                    return response.redirect("/login", status=303)
                request.ctx.session = session
                request.ctx.staff = session.staff
                if request.method == "POST":
                    given = field(request, "csrf_token")
                    if not hmac.compare_digest(given.encode(), session.csrf_token.encode()):
                        return message(request, 403, "Form expired", "The form's security token is missing or "
                                       "wrong. Reload the page and try again.")
                if admin and not session.staff.is_admin:
                    return message(request, 403, "Admins only", "Only an admin can change this.")
                return await handler(request, *args, **kwargs)

            return guarded

        return wrap(handler) if handler else wrap

    # --- sign in / out ---------------------------------------------------------------------------

    @app.get("/login")
    async def login_form(request: Request):
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
        answer = page("login.html", request, login_csrf=token, error=None)
        set_cookie(answer, LOGIN_CSRF_COOKIE, token)
        return answer

    @app.post("/login")
    async def login(request: Request):
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
        given = field(request, "csrf_token")
        if not cookie or not hmac.compare_digest(cookie.encode(), given.encode()):
            return message(request, 403, "Form expired", "Reload the sign-in page and try again.", back="/login")
        username = field(request, "username").strip()
        try:
            user = await run(staff.authenticate, db_(), username, field(request, "password"))
        except staff.LockedOut as locked:
            error = (f"Too many failed sign-ins: this account is locked until {_local(locked.until, '%H:%M')}. "
                     "Ask an admin if you need in sooner.")
            return page("login.html", request, status=429, login_csrf=cookie, error=error)
        except staff.LoginFailed:
            return page("login.html", request, status=401, login_csrf=cookie, error="Wrong username or password.")
        token, _csrf = await run(staff.start_session, db_(), user.id)
        logger.info("staff %s signed in", user.id)
        answer = response.redirect("/", status=303)
        set_cookie(answer, SESSION_COOKIE, token, max_age=int(settings().inbox_session_hours * 3600))
        return answer

    @app.post("/logout")
    @login_required
    async def logout(request: Request):
        await run(staff.end_session, db_(), request.cookies.get(SESSION_COOKIE))
        answer = response.redirect("/login", status=303)
        del answer.cookies[SESSION_COOKIE]
        return answer

    # --- the queue ---------------------------------------------------------------------------------

    def queue_json(items: list[handoff.QueueItem]) -> dict:
        return {
            "count": len(items),
            "waiting": sum(i.ticket.status.value == "waiting" for i in items),
            "urgent": sum(i.ticket.priority == "urgent" and i.ticket.status.value == "waiting" for i in items),
            "sla_breached": sum(i.sla_breached for i in items),
            "tickets": [
                {
                    "id": i.ticket.id,
                    "url": f"/tickets/{i.ticket.id}",
                    "name": i.contact_name,
                    "reason": i.ticket.reason.replace("_", " "),
                    "priority": i.ticket.priority,
                    "status": i.ticket.status.value,
                    "claimed_by": i.ticket.claimed_by or "",
                    "waiting": _duration(i.waiting_seconds),
                    "window": _duration(i.window_seconds_left) + " left" if i.window_seconds_left else "closed",
                    "window_open": bool(i.window_seconds_left),
                    "sla_breached": i.sla_breached,
                }
                for i in items
            ],
        }

    @app.get("/")
    @login_required
    async def queue_page(request: Request):
        items = await run(handoff.queue, db_())
        return page("queue.html", request, queue=queue_json(items), sla=settings().handoff_sla_minutes,
                    staffed=handoff.staffed())

    @app.get("/api/queue")
    @login_required(api=True)
    async def queue_api(request: Request):
        return response.json(queue_json(await run(handoff.queue, db_())))

    # --- one conversation ----------------------------------------------------------------------

    def contact_of(contact_id: int) -> Contact:
        with db_().reading() as session:
            return session.execute(select(Contact).where(Contact.id == contact_id)).scalar_one()

    def conversation_json(ticket: handoff.TicketView) -> dict:
        contact = contact_of(ticket.contact_id)
        entries = handoff.transcript(db_(), ticket.contact_id)
        left = handoff.window_left(contact, utcnow())
        return {
            "ticket": {"id": ticket.id, "status": ticket.status.value, "claimed_by": ticket.claimed_by or "",
                       "priority": ticket.priority},
            "window_open": bool(left),
            "window": _duration(left) + " left" if left else "closed",
            "entries": [
                {
                    "key": e.key,
                    "direction": e.direction,
                    "at": _local(e.at, "%d %b %H:%M:%S"),
                    "kind": e.kind,
                    "text": e.text,
                    "media": ((e.media or {}).get("filename") or (e.media or {}).get("mime") or e.kind
                              if e.media else ""),
                    "who": _who(e),
                    "status": e.status or "",
                    "status_label": STATUS_LABELS.get(e.status or "", e.status or ""),
                    "error": f"{e.error_code or ''} {e.error_title or ''}".strip(),
                    "media_url": (f"/tickets/{ticket.id}/media/{e.key[3:]}"
                                  if e.direction == "in" and (e.media or {}).get("path") else ""),
                }
                for e in entries
            ],
        }

    async def load_ticket(request: Request, ticket_id: int):
        try:
            return await run(handoff.get, db_(), ticket_id), None
        except handoff.TicketNotFound:
            return None, message(request, 404, "No such conversation", f"There is no ticket {ticket_id}.")

    @app.get("/tickets/<ticket_id:int>")
    @login_required
    async def ticket_page(request: Request, ticket_id: int):
        ticket, error = await load_ticket(request, ticket_id)
        if error:
            return error
        summary = await run(handoff.summary, db_(), ticket_id)
        conversation = await run(conversation_json, ticket)
        notes = await run(handoff.notes, db_(), ticket_id)
        canned = await run(handoff.canned_responses, db_())
        colleagues = [u.username for u in await run(staff.list_users, db_())
                      if u.active and u.id != request.ctx.staff.id]
        consents = await run(consent.state, db_(), ticket.contact_id)
        await run(handoff.log_event, db_(), request.ctx.staff.id, "view", ticket_id)
        return page("ticket.html", request, ticket=ticket, summary=summary, conversation=conversation,
                    notes=notes, canned=canned, colleagues=colleagues, consents=consents,
                    mine=ticket.claimed_by_id == request.ctx.staff.id)

    @app.get("/api/tickets/<ticket_id:int>")
    @login_required(api=True)
    async def ticket_api(request: Request, ticket_id: int):
        try:
            ticket = await run(handoff.get, db_(), ticket_id)
        except handoff.TicketNotFound:
            return response.json({"error": "not found"}, status=404)
        return response.json(await run(conversation_json, ticket))

    @app.post("/tickets/<ticket_id:int>/claim")
    @login_required
    async def claim(request: Request, ticket_id: int):
        try:
            await run(handoff.claim, db_(), ticket_id, request.ctx.staff.id)
        except handoff.AlreadyClaimed as taken:
            return message(request, 409, "Already claimed", f"This conversation is already claimed by {taken.by}.",
                           back=f"/tickets/{ticket_id}")
        except handoff.TicketClosed:
            return message(request, 409, "Already resolved", "This conversation was handed back to the bot.")
        except handoff.TicketNotFound:
            return message(request, 404, "No such conversation", f"There is no ticket {ticket_id}.")
        return response.redirect(f"/tickets/{ticket_id}", status=303)

    async def holder_action(request: Request, ticket_id: int, action) -> response.HTTPResponse | None:
        try:
            await action()
        except handoff.NotHolder:
            return message(request, 403, "Claim it first", "Only the nurse who claimed this conversation can do "
                           "that. Claim it (or ask its nurse to release it).", back=f"/tickets/{ticket_id}")
        except handoff.TicketClosed:
            return message(request, 409, "Already resolved", "This conversation was handed back to the bot.")
        except handoff.TicketNotFound:
            return message(request, 404, "No such conversation", f"There is no ticket {ticket_id}.")
        return None

    @app.post("/tickets/<ticket_id:int>/reply")
    @login_required
    async def reply(request: Request, ticket_id: int):
        text = field(request, "text").strip()
        upload = (request.files or {}).get("file")
        if upload is not None and not upload.body and not upload.name:
            upload = None  # the form's file field left empty
        if not text and upload is None:
            return message(request, 400, "Empty reply", "Write something or attach a file first.",
                           back=f"/tickets/{ticket_id}")
        if len(text) > 4096:
            return message(request, 400, "Too long", "WhatsApp takes at most 4096 characters.",
                           back=f"/tickets/{ticket_id}")
        refused = upload is not None and attachment_problem(upload)
        if refused:
            return message(request, 400, "Attachment not sent", refused, back=f"/tickets/{ticket_id}")
        me = request.ctx.staff

        async def send() -> None:
            ticket = await run(handoff.get, db_(), ticket_id)
            if ticket.claimed_by_id != me.id:
                raise handoff.TicketClosed() if ticket.status.value == "resolved" else handoff.NotHolder()
            bodies = await run(reply_bodies, ticket.contact_id, text, upload)
            await run(app.ctx.client.enqueue, ticket.contact_id, bodies, source=f"inbox:{me.username}"[:50])
            app.ctx.client.kick()
            await run(handoff.replied, db_(), ticket_id, me.id)

        return await holder_action(request, ticket_id, send) or response.redirect(
            f"/tickets/{ticket_id}#reply", status=303)

    @app.post("/tickets/<ticket_id:int>/notes")
    @login_required
    async def note(request: Request, ticket_id: int):
        try:
            await run(handoff.add_note, db_(), ticket_id, request.ctx.staff.id, field(request, "text"))
        except handoff.TicketNotFound:
            return message(request, 404, "No such conversation", f"There is no ticket {ticket_id}.")
        except handoff.HandoffError as error:
            return message(request, 400, "Note not saved", str(error), back=f"/tickets/{ticket_id}")
        return response.redirect(f"/tickets/{ticket_id}#notes", status=303)

    @app.post("/tickets/<ticket_id:int>/release")
    @login_required
    async def release(request: Request, ticket_id: int):
        async def act() -> None:
            await run(handoff.release, db_(), ticket_id, request.ctx.staff.id)

        return await holder_action(request, ticket_id, act) or response.redirect("/", status=303)

    @app.post("/tickets/<ticket_id:int>/resolve")
    @login_required
    async def resolve(request: Request, ticket_id: int):
        done: dict = {}

        async def act() -> None:
            done["ticket"] = await run(handoff.resolve, db_(), ticket_id, request.ctx.staff.id)

        failed = await holder_action(request, ticket_id, act)
        if failed:
            return failed
        ticket = done["ticket"]
        contact = await run(contact_of, ticket.contact_id)
        language = ticket.language or contact.language or settings().default_language
        closing = wording.say("utter_handback_closing", language if language in ("it", "en") else "en")
        said = None
        if handoff.window_left(contact, utcnow()):  # outside the window a template would only confuse
            body = {"type": "text", "text": {"body": closing}}
            await run(app.ctx.client.enqueue, contact.id, [body], source="inbox:handback")
            said = closing
        sender_id = contact.wa_id or contact.user_id or ""
        await resume_bot(settings().rasa_url, settings().rasa_token, sender_id, said, ticket_id)
        return response.redirect("/", status=303)

    def media_file(contact_id: int, inbound_id: int) -> tuple[bytes, str] | None:
        """The attachment's plaintext (stored encrypted by the channel) and type."""
        with db_().reading() as session:
            row = session.get(InboundMessage, inbound_id)
            if row is None or row.contact_id != contact_id or not row.media_path:
                return None
            root = settings().media_dir.resolve()
            path = (root / row.media_path).resolve()
            if root not in path.parents or not path.is_file():
                return None
            return crypto.read_file(path), row.media_mime or "application/octet-stream"

    @app.get("/tickets/<ticket_id:int>/media/<inbound_id:int>")
    @login_required
    async def media(request: Request, ticket_id: int, inbound_id: int):
        ticket, error = await load_ticket(request, ticket_id)
        if error:
            return error
        found = await run(media_file, ticket.contact_id, inbound_id)
        if found is None:
            return message(request, 404, "No such file", "This attachment is not available.")
        await run(handoff.log_event, db_(), request.ctx.staff.id, "view_media", ticket_id)
        data, mime = found
        return response.raw(data, content_type=mime, headers={"Content-Disposition": "inline"})

    @app.post("/tickets/<ticket_id:int>/reassign")
    @login_required
    async def reassign(request: Request, ticket_id: int):
        target = await run(staff.by_username, db_(), field(request, "username"))
        if target is None or not target.active:
            return message(request, 400, "No such nurse", "Pick an active colleague.", back=f"/tickets/{ticket_id}")

        async def act() -> None:
            await run(handoff.reassign, db_(), ticket_id, target.id, request.ctx.staff.id)

        return await holder_action(request, ticket_id, act) or response.redirect("/", status=303)

    @app.get("/tickets/<ticket_id:int>/result")
    @login_required
    async def ticket_result(request: Request, ticket_id: int):
        """The report a ticket is about, for the nurse answering a question on it (audited)."""
        ticket, error = await load_ticket(request, ticket_id)
        if error:
            return error
        result_id = ticket.summary.get("result_id")
        view = await run(results.for_contact, db_(), int(result_id), ticket.contact_id) if result_id else None
        if view is None:
            return message(request, 404, "No report", "This conversation is not about a report of its patients.")
        pdf = await run(results.read_pdf, db_(), view.id)
        await run(handoff.log_event, db_(), request.ctx.staff.id, "view_result", ticket_id)
        return response.raw(pdf, content_type=results.MIME,
                            headers={"Content-Disposition": f'inline; filename="{view.filename}"'})

    # --- the lab systems' endpoint ------------------------------------------------------------------

    def lab_error(status: int, text: str) -> response.HTTPResponse:
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return response.json({"error": text}, status=status, headers=headers)

    def lab_fields(request: Request) -> tuple[dict, bytes]:
        """The fields and the PDF of a lab POST: JSON with `pdf_base64`, or multipart with a `file`."""
        if (request.content_type or "").startswith("multipart/form-data"):
            upload = (request.files or {}).get("file")
            if upload is None:
                raise results.ResultError("multipart: the PDF goes in the `file` part")
            form = request.form or {}
            return {name: form.get(name) for name in form}, upload.body
        try:
            data = request.json
        except Exception:  # noqa: BLE001 - Sanic's parse error quotes the body
            data = None
        if not isinstance(data, dict):
            raise results.ResultError("send JSON (an object) or multipart/form-data")
        try:
            pdf = base64.b64decode(str(data.get("pdf_base64") or ""), validate=True)
        except (binascii.Error, ValueError):
            raise results.ResultError("pdf_base64 is not valid base64") from None
        return data, pdf

    @app.post("/api/lab/results")
    async def lab_results(request: Request):
        key = settings().lab_api_key
        if not key:
            return lab_error(503, "the lab endpoint is off: the clinic has not set LAB_API_KEY")
        given = (request.headers.get("authorization") or "").removeprefix("Bearer ").strip()
        if not given or not hmac.compare_digest(given.encode(), key.encode()):
            return lab_error(401, "missing or wrong bearer key")
        try:
            data, pdf = lab_fields(request)
            try:
                patient_id = int(data.get("patient_id"))
            except (TypeError, ValueError):
                raise results.ResultError("patient_id (a number) is required") from None
            view, new = await run(results.register, db_(), patient_id, str(data.get("title") or ""), pdf,
                                  kind=str(data.get("kind") or ""), delivery=data.get("delivery") or None,
                                  source="lab:api", external_id=data.get("external_id") or None, actor="lab:api")
        except results.ResultError as error:
            return lab_error(error.status, str(error))
        logger.info("lab result %s %s", view.id, "registered" if new else "already known")
        return response.json({"id": view.id, "status": view.status.value, "delivery": view.delivery.value,
                              "created": new}, status=201 if new else 200)

    # --- the patients' download page ------------------------------------------------------------------

    def download_page(status: int, lang: str | None, state: str, **values: Any) -> response.HTTPResponse:
        html = jinja.get_template("result_download.html").render(
            lang=lang if lang in consent.LANGUAGES else settings().default_language, state=state, **values)
        return response.html(html, status=status)

    @app.get("/r/<token:str>")
    async def download_form(request: Request, token: str):
        info = await run(results.link_info, db_(), token)
        if info.state is not results.LinkState.open:
            return download_page(404 if info.state is results.LinkState.unknown else 410, None, info.state.value)
        return download_page(200, info.language, "open")

    @app.post("/r/<token:str>")
    async def download(request: Request, token: str):
        info = await run(results.link_info, db_(), token)
        if info.state is not results.LinkState.open:
            return download_page(404 if info.state is results.LinkState.unknown else 410, None, info.state.value)
        text = field(request, "date_of_birth").strip()
        try:
            born = date.fromisoformat(text)
        except ValueError:
            born = patients.parse_date_of_birth(text, date.today())
        if born is None:
            return download_page(400, info.language, "open", error="invalid")
        redeemed = await run(results.redeem, db_(), token, born)
        outcome = redeemed.verdict.outcome if redeemed.verdict else None
        if outcome is identity.Outcome.passed:
            logger.info("result %s downloaded through its link", redeemed.result_id)
            return response.raw(redeemed.pdf, content_type=results.MIME,
                                headers={"Content-Disposition": f'attachment; filename="{redeemed.filename}"'})
        if outcome is identity.Outcome.failed:
            return download_page(403, info.language, "open", error="mismatch",
                                 attempts_left=redeemed.verdict.attempts_left)
        if outcome is identity.Outcome.locked:
            await run(handoff.open_ticket, db_(), redeemed.contact_id, "identity_failed", language=info.language,
                      summary={"intent": "download_result", "slots": {}, "result_id": redeemed.result_id},
                      actor="system:results")
            return download_page(429, info.language, "locked", minutes=settings().identity_lockout_minutes)
        return download_page(410, None, redeemed.state.value)

    # --- canned responses ------------------------------------------------------------------------

    @app.get("/canned")
    @login_required
    async def canned_page(request: Request):
        return page("canned.html", request, canned=await run(handoff.canned_responses, db_()))

    @app.post("/canned")
    @login_required(admin=True)
    async def canned_add(request: Request):
        return await save_canned(request, None)

    @app.post("/canned/<canned_id:int>")
    @login_required(admin=True)
    async def canned_edit(request: Request, canned_id: int):
        return await save_canned(request, canned_id)

    async def save_canned(request: Request, canned_id: int | None):
        try:
            await run(handoff.save_canned, db_(), field(request, "language"), field(request, "title"),
                      field(request, "body"), canned_id)
        except handoff.HandoffError as error:
            return message(request, 400, "Not saved", str(error), back="/canned")
        return response.redirect("/canned", status=303)

    @app.post("/canned/<canned_id:int>/delete")
    @login_required(admin=True)
    async def canned_delete(request: Request, canned_id: int):
        await run(handoff.delete_canned, db_(), canned_id)
        return response.redirect("/canned", status=303)

    kpi_views.register(app, login_required=login_required, page=page, run=run, db=db_)
    rights_views.register(app, login_required=login_required, page=page, message=message, run=run, db=db_)
    integration_views.register(app, login_required=login_required, page=page, message=message, run=run, db=db_)

    return app
