"""The integration web app (Sanic, like the inbox and the ingest): the FHIR R4 API under `/fhir` and the
private calendar feeds under `/calendar`.

Its own process (`python -m clinic.fhir`), not mounted in the inbox: other systems reach it with API
keys from another network than nurses' browsers, it can be exposed, scaled and restarted on its own,
and a slow EHR sync never holds up the inbox or the bot.

- Authentication: `Authorization: Bearer <API key or access token>` on everything under `/fhir` but
  `/fhir/metadata` (the CapabilityStatement is public, as FHIR clients read it before they
  authenticate). 401 with `WWW-Authenticate: Bearer` otherwise. Access tokens come from
  `POST /oauth2/token` (OAuth2 client credentials).
- Every error is an OperationOutcome with the HTTP status (400, 401, 404, 405, 409, 415, 422, 500).
- Database work runs in threads (`asyncio.to_thread`): the event loop never waits on a lock.
- The clinic's edge rules (`clinic.web.harden`): security headers on every answer, 413 above
  MAX_REQUEST_BYTES; `POST /fhir/DiagnosticReport` alone is streamed, after its client is
  authenticated, up to what a RESULTS_MAX_MB PDF needs as base64 (`clinic.fhir.reports`).
- A patient's own `.ics` of one visit (`/calendar/visit/<token>.ics`, `clinic.ical`), the link sent
  with the booking confirmation.
- Logs carry the method, the resource type, ids and statuses, never bodies.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
from typing import Any
from urllib.parse import unquote

from sanic import Sanic, response
from sanic.exceptions import MethodNotSupported, NotFound, SanicException
from sanic.request import Request
from sanic.response import HTTPResponse

from clinic import ical, metrics
from clinic.db import Database, database
from clinic.fhir import api, clients, reports
from clinic.fhir.capability import capability_statement
from clinic.fhir.resources import outcome
from clinic.settings import settings
from clinic.web import harden, read_body

logger = logging.getLogger(__name__)
FHIR_JSON = "application/fhir+json"
MAX_REQUEST_BYTES = 256 * 1024  # an Appointment or a JSON Patch is a few kB
_names = itertools.count()


def fhir_response(body: dict, status: int = 200, headers: dict | None = None) -> HTTPResponse:
    return response.text(json.dumps(body, ensure_ascii=False), status=status, content_type=FHIR_JSON,
                         headers={"Cache-Control": "no-store", **(headers or {})})


def problem(error: api.FhirError) -> HTTPResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="clinic-fhir"'} if error.status == 401 else None
    return fhir_response(outcome(error.code, error.diagnostics), error.status, headers)


def _json_type(request: Request) -> None:
    content_type = (request.content_type or "").split(";")[0].strip()
    if content_type not in (FHIR_JSON, "application/json", "application/json-patch+json"):
        raise api.FhirError(415, "not-supported", "send JSON (application/fhir+json)")


def _json_body(request: Request) -> Any:
    _json_type(request)
    return _json(request.body)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        raise api.FhirError(400, "structure", "the body is not JSON") from None


async def _streamed_body(request: Request, max_bytes: int) -> bytes:
    """The body of a streamed route, refused with 413 as soon as it passes `max_bytes`."""
    body = await read_body(request, max_bytes)
    if body is None:
        raise api.FhirError(413, "too-long", f"the request is larger than {max_bytes} bytes")
    return body


def create_app(db: Database | None = None) -> Sanic:
    """The app; `db` defaults to DATABASE_URL's."""
    db = db or database()
    app = Sanic(f"clinic_fhir_{next(_names)}")
    app.config.FALLBACK_ERROR_FORMAT = "json"
    harden(app, max_request_bytes=MAX_REQUEST_BYTES)
    metrics.add_route(app, lambda: db)

    def base_url() -> str:
        return settings().fhir_base_url.rstrip("/") + "/fhir"

    async def actor_of(request: Request) -> str:
        scheme, _, key = (request.headers.get("authorization") or "").partition(" ")
        actor = await asyncio.to_thread(clients.authenticate, db, key.strip()) if scheme.lower() == "bearer" else None
        if actor is None:
            raise api.FhirError(401, "login", "an API key is required: Authorization: Bearer <key>")
        return actor

    @app.exception(api.FhirError)
    async def on_refusal(request: Request, error: api.FhirError) -> HTTPResponse:
        logger.info("fhir %s %s: %s %s", request.method, request.path.split("/")[2:3], error.status, error.code)
        return problem(error)

    @app.exception(NotFound)
    async def on_not_found(request: Request, error: Exception) -> HTTPResponse:
        return problem(api.FhirError(404, "not-found", "no such endpoint"))

    @app.exception(MethodNotSupported)
    async def on_method(request: Request, error: Exception) -> HTTPResponse:
        return problem(api.FhirError(405, "not-supported", f"{request.method} is not supported here"))

    @app.exception(SanicException)
    async def on_sanic(request: Request, error: SanicException) -> HTTPResponse:
        status = getattr(error, "status_code", 500) or 500
        return problem(api.FhirError(status, "invalid" if status < 500 else "exception", "request refused"))

    @app.exception(Exception)
    async def on_error(request: Request, error: Exception) -> HTTPResponse:
        logger.error("fhir %s failed: %s", request.method, type(error).__name__)
        return problem(api.FhirError(500, "exception", "internal error"))

    @app.get("/fhir/metadata")
    async def metadata(request: Request) -> HTTPResponse:
        return fhir_response(capability_statement(base_url()))

    @app.get("/fhir/<resource_type:str>")
    async def search(request: Request, resource_type: str) -> HTTPResponse:
        await actor_of(request)
        params = {k: list(v) for k, v in request.args.items()}
        return fhir_response(await asyncio.to_thread(api.search, db, resource_type, params, base_url()))

    @app.get("/fhir/DiagnosticReport")
    async def search_reports(request: Request) -> HTTPResponse:
        """The static POST route below hides the dynamic GET from the router: search is named here too."""
        return await search(request, "DiagnosticReport")

    @app.get("/fhir/<resource_type:str>/<ident:str>")
    async def read(request: Request, resource_type: str, ident: str) -> HTTPResponse:
        await actor_of(request)
        return fhir_response(await asyncio.to_thread(api.read, db, resource_type, ident))

    @app.post("/fhir/DiagnosticReport", stream=True)
    async def create_report(request: Request) -> HTTPResponse:
        """A lab result with its PDF: streamed (the body may be megabytes), read only for a known client."""
        actor = await actor_of(request)
        _json_type(request)
        raw = await _streamed_body(request, reports.max_body_bytes())
        created, new = await asyncio.to_thread(
            lambda: reports.create_diagnostic_report(db, _json(raw), actor))
        logger.info("fhir create DiagnosticReport/%s by %s: %s", created["id"], actor, "new" if new else "known")
        return fhir_response(created, 201 if new else 200,
                             {"Location": f"{base_url()}/DiagnosticReport/{created['id']}"})

    @app.post("/fhir/<resource_type:str>")
    async def create(request: Request, resource_type: str) -> HTTPResponse:
        actor = await actor_of(request)
        if resource_type != "Appointment":
            raise api.FhirError(405, "not-supported", f"{resource_type[:40]} cannot be created here")
        created = await asyncio.to_thread(api.create_appointment, db, _json_body(request), actor)
        logger.info("fhir create Appointment/%s by %s", created["id"], actor)
        return fhir_response(created, 201, {"Location": f"{base_url()}/Appointment/{created['id']}"})

    @app.put("/fhir/<resource_type:str>/<ident:str>")
    async def update(request: Request, resource_type: str, ident: str) -> HTTPResponse:
        actor = await actor_of(request)
        if resource_type != "Appointment":
            raise api.FhirError(405, "not-supported", f"{resource_type[:40]} cannot be updated here")
        updated = await asyncio.to_thread(api.update_appointment, db, ident, _json_body(request), actor)
        logger.info("fhir update Appointment/%s by %s: %s", ident, actor, updated["status"])
        return fhir_response(updated)

    @app.patch("/fhir/<resource_type:str>/<ident:str>")
    async def patch(request: Request, resource_type: str, ident: str) -> HTTPResponse:
        actor = await actor_of(request)
        if resource_type != "Appointment":
            raise api.FhirError(405, "not-supported", f"{resource_type[:40]} cannot be patched here")
        updated = await asyncio.to_thread(api.patch_appointment, db, ident, _json_body(request), actor)
        logger.info("fhir patch Appointment/%s by %s: %s", ident, actor, updated["status"])
        return fhir_response(updated)

    @app.post("/oauth2/token")
    async def token(request: Request) -> HTTPResponse:
        """OAuth2 client credentials (RFC 6749 4.4): HTTP Basic or form client id and secret."""
        form = request.form or {}
        client_id, secret = form.get("client_id") or "", form.get("client_secret") or ""
        scheme, _, encoded = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() == "basic":
            try:
                pair = base64.b64decode(encoded.strip(), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                pair = ":"
            client_id, _, secret = (unquote(part) for part in pair.partition(":"))
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if form.get("grant_type") != "client_credentials":
            return response.json({"error": "unsupported_grant_type"}, status=400, headers=headers)
        issued = await asyncio.to_thread(clients.issue_token, db, client_id, secret)
        if issued is None:
            logger.info("oauth2 token refused")
            return response.json({"error": "invalid_client"}, status=401,
                                 headers={**headers, "WWW-Authenticate": 'Basic realm="clinic-fhir"'})
        access_token, lifetime = issued
        return response.json({"access_token": access_token, "token_type": "Bearer", "expires_in": lifetime},
                             headers=headers)

    async def ics(make, token: str, filename: str) -> HTTPResponse:
        """A calendar by its token, the only credential: an unknown one is a plain 404."""
        body = await asyncio.to_thread(make, db, token.removesuffix(".ics"))
        if body is None:
            return response.text("not found", status=404, headers={"Cache-Control": "no-store"})
        headers = {"Cache-Control": "no-store", "Content-Disposition": f'inline; filename="{filename}"'}
        return response.raw(body, content_type="text/calendar; charset=utf-8", headers=headers)

    @app.get("/calendar/visit/<token:str>")
    async def visit(request: Request, token: str) -> HTTPResponse:
        """A patient's one visit, as it is now (a visit long past is gone too)."""
        return await ics(ical.visit_ics, token, "visit.ics")

    @app.get("/calendar/<token:str>")
    async def calendar(request: Request, token: str) -> HTTPResponse:
        """A practitioner's or location's private feed."""
        return await ics(ical.feed, token, "clinic.ics")

    return app
