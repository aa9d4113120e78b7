"""The sandbox web app: Meta's Graph API for the bot, a test API for tests, a phone page for people.

`create_app()` builds a Sanic app around one in-memory `SandboxState`. Graph API routes answer at
once; everything that Meta does later (status callbacks, patient messages) goes to the bot through
the background webhook queue.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import secrets
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from sanic import Sanic
from sanic.exceptions import MethodNotSupported, NotFound
from sanic.request import Request
from sanic.response import HTTPResponse, file, raw
from sanic.response import json as json_response

from clinic.sandbox import inbound
from clinic.sandbox.errors import (
    GraphError,
    bad_param,
    fbtrace_id,
    unauthorized,
    unknown_object,
    webhook_error,
)
from clinic.sandbox.state import Options, Patient, SandboxState, new_wamid, normalise_phone
from clinic.sandbox.validate import validate_send
from clinic.sandbox.webhooks import Deliverer, messages_value, status_value
from clinic.web import STRICT_CSP, harden
from clinic.whatsapp.outbound import MB, MEDIA_LIMITS

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
VERSION_PATH = r"v\d+\.\d+"
STATUS_RANK = {"accepted": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}
FAULT_KINDS = ("http_429", "http_500", "http_503", "timeout", "error", "failed")
TYPING_SECONDS = 25  # Meta dismisses the typing indicator after 25 s or at the next message

_app_names = itertools.count(1)


def create_app(options: Options, config: dict, name: str | None = None) -> Sanic:
    """A sandbox app. `config` is the business number's fixed identity (see `SandboxState`)."""
    app = Sanic(name or f"clinic_sandbox_{next(_app_names)}")
    # Documents may be 100 MB. The phone page shows media by link too, so images and media may come from https.
    harden(app, max_request_bytes=110 * MB, csp=f"{STRICT_CSP}; img-src 'self' https: data: blob:; "
           "media-src 'self' https: blob:")
    app.config.RESPONSE_TIMEOUT = 3600  # `timeout` faults hold responses on purpose
    app.config.ACCESS_LOG = False
    state = SandboxState(options, config)
    deliverer = Deliverer(state)
    app.ctx.state = state
    app.ctx.deliverer = deliverer

    @app.listener("after_server_start")
    async def _start(app_, _loop) -> None:
        deliverer.start()

    @app.listener("before_server_stop")
    async def _stop(app_, _loop) -> None:
        await deliverer.stop()

    @app.exception(GraphError)
    async def _graph_error(request: Request, error: GraphError) -> HTTPResponse:
        body = error.body()
        state.rejected.append({"at": state.now(), "path": request.path, "status": error.http_status, **body})
        log.info("graph error %s on %s", error.code, request.path)
        return json_response(body, status=error.http_status)

    @app.exception(NotFound, MethodNotSupported)
    async def _unknown_path(request: Request, error: Exception) -> HTTPResponse:
        """Graph's answer for a path it does not know, so a misbuilt URL fails the way it will on Meta."""
        body = {"error": {"message": f"Unknown path components: {request.path}", "type": "OAuthException",
                          "code": 2500, "fbtrace_id": fbtrace_id()}}
        return json_response(body, status=400 if isinstance(error, NotFound) else 405)

    _graph_routes(app, state, deliverer)
    _test_routes(app, state, deliverer)
    app.static("/static", str(STATIC), name="static")

    @app.get("/")
    async def page(request: Request) -> HTTPResponse:
        return await file(STATIC / "index.html", mime_type="text/html; charset=utf-8")

    return app


# --------------------------------------------------------------------------------------------
# Graph API
# --------------------------------------------------------------------------------------------


def _authorise(request: Request, state: SandboxState) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise unauthorized("An active access token must be used to query information about the current user.")
    if not hmac.compare_digest(token.encode(), state.config["access_token"].encode()):
        raise unauthorized()


def _check_number(state: SandboxState, phone_number_id: str) -> None:
    if phone_number_id != state.config["phone_number_id"]:
        raise unknown_object(phone_number_id)


def _json_body(request: Request) -> dict:
    try:
        payload = json.loads(request.body or b"{}")
    except ValueError:
        raise bad_param("The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise bad_param("The request body must be a JSON object.")
    return payload


def _graph_routes(app: Sanic, state: SandboxState, deliverer: Deliverer) -> None:
    @app.post(f"/<version:{VERSION_PATH}>/<phone_number_id>/messages")
    async def send(request: Request, version: str, phone_number_id: str) -> HTTPResponse:
        _authorise(request, state)
        _check_number(state, phone_number_id)
        payload = _json_body(request)
        if payload.get("status") == "read":
            return _read_receipt(state, payload)
        out = validate_send(payload, state.templates, lambda media_id: media_id in state.media)
        if out.to is not None:
            wa_id = normalise_phone(out.to)
            if not wa_id or any(ch.isalpha() for ch in out.to):
                raise bad_param(f"Param to must be a phone number. Received: {len(out.to)} characters.")
            patient = state.patient(wa_id=wa_id)
        else:
            patient = state.patient(user_id=out.recipient)
        # Shielded: like Meta, a send keeps going when the client stops waiting (see `timeout` faults).
        task = asyncio.ensure_future(_process(state, deliverer, out, patient, payload))
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        record = await asyncio.shield(task)
        contact = {"input": out.to} if out.to is not None else {"input": out.recipient}
        if out.to is not None:
            contact["wa_id"] = patient.wa_id
        else:
            contact["user_id"] = patient.user_id
        message = {"id": record["id"]}
        if out.is_template:
            message["message_status"] = "accepted"
        return json_response({"messaging_product": "whatsapp", "contacts": [contact], "messages": [message]})

    @app.post(f"/<version:{VERSION_PATH}>/<phone_number_id>/media")
    async def upload(request: Request, version: str, phone_number_id: str) -> HTTPResponse:
        _authorise(request, state)
        _check_number(state, phone_number_id)
        if request.form.get("messaging_product") != "whatsapp":
            raise bad_param("The parameter messaging_product is required and must be 'whatsapp'.")
        upload_file = (request.files.get("file") if request.files else None)
        if upload_file is None:
            raise GraphError(131008, "The parameter file is required.")
        mime = (request.form.get("type") or upload_file.type or "").split(";")[0].strip().lower()
        if mime not in MEDIA_LIMITS:
            raise GraphError(131053, f"Param file must be a file with one of the following types: "
                                     f"{', '.join(MEDIA_LIMITS)}. Received file of type '{mime}'.")
        kind, limit = MEDIA_LIMITS[mime]
        if len(upload_file.body) > limit:
            raise GraphError(131053, f"File is too big: the maximum size for {mime} ({kind}) is {limit} bytes, "
                                     f"received {len(upload_file.body)} bytes.")
        if not upload_file.body:
            raise GraphError(131053, "The uploaded file is empty.")
        item = inbound.store_media(state, upload_file.body, mime, upload_file.name, owner="business")
        return json_response({"id": item["id"]})

    @app.get(f"/<version:{VERSION_PATH}>/<media_id:int>")
    async def media_info(request: Request, version: str, media_id: int) -> HTTPResponse:
        _authorise(request, state)
        item = state.media.get(str(media_id))
        if item is None:
            raise unknown_object(str(media_id))
        query = urlencode({"mid": item["id"], "ext": secrets.token_hex(4)})
        return json_response({
            "messaging_product": "whatsapp",
            "url": f"{request.scheme}://{request.host}/_media/{item['id']}?{query}",
            "mime_type": item["mime_type"],
            "sha256": item["sha256"],
            "file_size": item["file_size"],
            "id": item["id"],
        })

    @app.delete(f"/<version:{VERSION_PATH}>/<media_id:int>")
    async def media_delete(request: Request, version: str, media_id: int) -> HTTPResponse:
        _authorise(request, state)
        if state.media.pop(str(media_id), None) is None:
            raise unknown_object(str(media_id))
        return json_response({"success": True})

    @app.get("/_media/<media_id>")
    async def media_download(request: Request, media_id: str) -> HTTPResponse:
        """Meta's lookaside URL: needs the same Bearer token, answers the bytes."""
        _authorise(request, state)
        item = state.media.get(media_id)
        if item is None:
            return json_response({"error": "not found"}, status=404)
        return raw(item["bytes"], content_type=item["mime_type"])


async def _process(state: SandboxState, deliverer: Deliverer, out, patient: Patient, payload: dict) -> dict:
    """Faults, then Meta's throughput and pair limits, then acceptance."""
    generation = state.generation
    fault = state.take_fault(patient, "messages")
    failure = await _apply_fault(state, fault) if fault else None
    if generation != state.generation:
        raise GraphError(131000, "The sandbox was reset while this send was held.")
    if not state.take_throughput():
        raise GraphError(130429)
    if not state.take_pair(patient):
        raise GraphError(131056)
    return _accept(state, deliverer, out, patient, payload, failure)


def _read_receipt(state: SandboxState, payload: dict) -> HTTPResponse:
    """`status: read` on a patient's message, optionally with Meta's typing indicator."""
    if payload.get("messaging_product") != "whatsapp":
        raise bad_param("The parameter messaging_product is required and must be 'whatsapp'.")
    wamid = payload.get("message_id")
    record = next((m for m in state.inbound if m["id"] == wamid), None)
    if not isinstance(wamid, str) or record is None:
        raise bad_param("Param message_id is not a valid message id received by this phone number.")
    typing = payload.get("typing_indicator")
    if typing is not None and (not isinstance(typing, dict) or typing.get("type") != "text"):
        raise bad_param("Param typing_indicator['type'] must be 'text'.")
    record["read"] = True
    if typing is not None:
        state.typing[record["patient"]] = state.now() + TYPING_SECONDS
    state.touch()
    return json_response({"success": True})


async def _apply_fault(state: SandboxState, fault: dict) -> int | None:
    """Raise the armed fault's error, or hold the response; a `failed` fault returns its async code."""
    kind, code = fault["kind"], fault.get("code")
    if kind == "http_429":
        raise GraphError(code or 130429, status=fault.get("status") or 429)
    if kind == "http_500":
        raise GraphError(code or 131000, status=fault.get("status") or 500)
    if kind == "http_503":
        raise GraphError(code or 131016, status=fault.get("status") or 503)
    if kind == "error":
        raise GraphError(code or 131000, fault.get("details"), status=fault.get("status"))
    if kind == "timeout":
        await asyncio.sleep(fault.get("delay") or state.options.timeout_seconds)
        return None
    return code or 131026  # failed: accepted now, a `failed` status later


def _pricing(state: SandboxState, patient: Patient, category: str) -> tuple[dict, str]:
    """Per-message pricing as Meta reports it: service and in-window utility are free."""
    in_window = state.window_open(patient)
    free = category == "service" or (category == "utility" and in_window)
    pricing = {
        "billable": not free,
        "pricing_model": "PMP",
        "category": category,
        "type": "free_customer_service" if free else "regular",
    }
    key = (patient.pid, category)
    conversation = state.conversations.get(key)
    if conversation is None or state.now() - conversation[1] >= 24 * 3600:
        conversation = (secrets.token_hex(16), state.now())
        state.conversations[key] = conversation
    return pricing, conversation[0]


def _accept(state: SandboxState, deliverer: Deliverer, out, patient: Patient, payload: dict,
            failure: int | None) -> dict:
    """Record an accepted message and queue its status callbacks."""
    pricing, conversation_id = _pricing(state, patient, out.category)
    record = {
        "id": new_wamid(),
        "patient": patient.pid,
        "to": out.to,
        "recipient": out.recipient,
        "type": out.type,
        "request": payload,
        "view": out.view,
        "context_id": out.context_id,
        "biz_opaque_callback_data": out.biz_opaque_callback_data,
        "accepted_at": state.now(),
        "status": "accepted",
        "statuses": [],
        "pricing": pricing,
        "conversation_id": conversation_id,
    }
    state.outbound.append(record)
    state.typing.pop(patient.pid, None)
    if failure is None and patient.undeliverable:
        failure = 131026
    if failure is None and not out.is_template and not state.window_open(patient):
        failure = 131047
    if failure is not None:
        emit_status(state, deliverer, record, patient, "failed", failure)
    else:
        for status in state.options.statuses:
            emit_status(state, deliverer, record, patient, status)
    state.touch()
    return record


def emit_status(state: SandboxState, deliverer: Deliverer, record: dict, patient: Patient, status: str,
                code: int | None = None) -> list[dict]:
    """Record a status and queue its webhook (twice when duplicates are switched on)."""
    errors = [webhook_error(code)] if status == "failed" else None
    record["statuses"].append({"status": status, "timestamp": state.now(), "errors": errors})
    if STATUS_RANK[status] > STATUS_RANK[record["status"]]:
        record["status"] = status
    copies = 2 if state.options.duplicate_webhooks else 1
    state.touch()
    return deliverer.enqueue("statuses", status_value(state, record, patient, status, errors), [record["id"]],
                             copies)


# --------------------------------------------------------------------------------------------
# Test API
# --------------------------------------------------------------------------------------------


def _public_outbound(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("patient", "conversation_id")}


def _public_inbound(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "patient"}


def _public_webhook(record: dict) -> dict:
    return dict(record)


def _test_routes(app: Sanic, state: SandboxState, deliverer: Deliverer) -> None:  # noqa: C901 - a route table
    def who(name: str) -> Patient:
        patient = state.find(name)
        if patient is None:
            raise _NotFound(f"no patient {name!r}")
        return patient

    @app.exception(_NotFound)
    async def _not_found(request: Request, error: _NotFound) -> HTTPResponse:
        return json_response({"error": str(error)}, status=404)

    @app.exception(inbound.SpecError)
    async def _bad_spec(request: Request, error: inbound.SpecError) -> HTTPResponse:
        return json_response({"error": str(error)}, status=400)

    @app.get("/_sandbox/health")
    async def health(request: Request) -> HTTPResponse:
        return json_response({"ok": True, "phone_number_id": state.config["phone_number_id"],
                              "api_version": state.config["api_version"]})

    @app.post("/_sandbox/reset")
    async def reset(request: Request) -> HTTPResponse:
        deliverer.clear()
        state.reset()
        return json_response({"ok": True})

    @app.get("/_sandbox/config")
    async def get_config(request: Request) -> HTTPResponse:
        return json_response(_config_view(state))

    @app.put("/_sandbox/config")
    async def put_config(request: Request) -> HTTPResponse:
        changes = _json_body(request)
        unknown = set(changes) - set(Options.__dataclass_fields__)
        if unknown:
            return json_response({"error": f"unknown options: {sorted(unknown)}"}, status=400)
        bad = [s for s in changes.get("statuses", []) if s not in ("sent", "delivered", "read")]
        if bad:
            return json_response({"error": "statuses may hold sent, delivered and read only"}, status=400)
        for key, value in changes.items():
            setattr(state.options, key, value)
        return json_response(_config_view(state))

    @app.get("/_sandbox/templates")
    async def get_templates(request: Request) -> HTTPResponse:
        return json_response(state.templates)

    @app.put("/_sandbox/templates")
    async def put_templates(request: Request) -> HTTPResponse:
        """Add or replace templates (merged into the registry until the next reset)."""
        for name, template in _json_body(request).items():
            if not isinstance(template, dict) or not isinstance(template.get("languages"), dict):
                return json_response({"error": f"template {name!r} needs a languages object"}, status=400)
            state.templates[name] = template
        return json_response(state.templates)

    @app.get("/_sandbox/clock")
    async def get_clock(request: Request) -> HTTPResponse:
        return json_response({"now": state.now(), "offset": state.clock_offset})

    @app.post("/_sandbox/clock")
    async def set_clock(request: Request) -> HTTPResponse:
        """`{"advance": seconds}` or `{"now": epoch seconds}`: windows and rate limits follow it."""
        body = _json_body(request)
        if "advance" in body:
            state.clock_offset += float(body["advance"])
        elif "now" in body:
            state.clock_offset = float(body["now"]) - (state.now() - state.clock_offset)
        return json_response({"now": state.now(), "offset": state.clock_offset})

    @app.get("/_sandbox/patients")
    async def patients(request: Request) -> HTTPResponse:
        return json_response([p.public(state.now()) for p in state.patients.values()])

    @app.get("/_sandbox/patients/<name>")
    async def patient(request: Request, name: str) -> HTTPResponse:
        return json_response(who(name).public(state.now()))

    @app.put("/_sandbox/patients/<name>")
    async def put_patient(request: Request, name: str) -> HTTPResponse:
        """Create or change a patient: name, user_id, last inbound time, undeliverable, hide_phone."""
        body = _json_body(request)
        found = state.find(name)
        if found is None:
            is_phone = normalise_phone(name) == name.lstrip("+").replace(" ", "")
            found = state.patient(wa_id=name if is_phone else None, user_id=None if is_phone else name)
        if body.get("name"):
            found.name = body["name"]
        if body.get("user_id"):
            state.patient(wa_id=found.wa_id, user_id=body["user_id"])
        if "last_inbound_at" in body:
            found.last_inbound = None if body["last_inbound_at"] is None else float(body["last_inbound_at"])
        if "last_inbound_hours_ago" in body:
            found.last_inbound = state.now() - float(body["last_inbound_hours_ago"]) * 3600
        for flag in ("undeliverable", "hide_phone"):
            if flag in body:
                setattr(found, flag, bool(body[flag]))
        state.touch()
        return json_response(found.public(state.now()))

    @app.get("/_sandbox/patients/<name>/received")
    async def received(request: Request, name: str) -> HTTPResponse:
        return json_response([_public_outbound(m) for m in state.outbound_for(who(name))])

    @app.get("/_sandbox/patients/<name>/sent")
    async def sent(request: Request, name: str) -> HTTPResponse:
        return json_response([_public_inbound(m) for m in state.inbound_from(who(name))])

    @app.get("/_sandbox/messages")
    async def messages(request: Request) -> HTTPResponse:
        return json_response([_public_outbound(m) for m in state.outbound])

    @app.get("/_sandbox/messages/<wamid>")
    async def message(request: Request, wamid: str) -> HTTPResponse:
        record = state.message(wamid)
        if record is None:
            raise _NotFound(f"no message {wamid!r}")
        return json_response(_public_outbound(record) if "request" in record else _public_inbound(record))

    @app.post("/_sandbox/messages/<wamid>/read")
    async def mark_read(request: Request, wamid: str) -> HTTPResponse:
        """The patient has seen the message: a `read` status, once."""
        record = next((m for m in state.outbound if m["id"] == wamid), None)
        if record is None:
            raise _NotFound(f"no outbound message {wamid!r}")
        if record["status"] in ("read", "failed") or any(s["status"] == "read" for s in record["statuses"]):
            return json_response({"ok": True, "sent": False})
        emit_status(state, deliverer, record, _patient_of(state, record), "read")
        return json_response({"ok": True, "sent": True})

    @app.post("/_sandbox/messages/<wamid>/status")
    async def send_status(request: Request, wamid: str) -> HTTPResponse:
        """Any status webhook for a sent message, in any order: `{"status", "code"?, "copies"?}`."""
        body = _json_body(request)
        record = next((m for m in state.outbound if m["id"] == wamid), None)
        if record is None:
            raise _NotFound(f"no outbound message {wamid!r}")
        status = body.get("status")
        if status not in ("sent", "delivered", "read", "failed"):
            return json_response({"error": "status must be sent, delivered, read or failed"}, status=400)
        records = []
        for _ in range(int(body.get("copies", 1))):
            records += emit_status(state, deliverer, record, _patient_of(state, record), status,
                                   body.get("code") or (131000 if status == "failed" else None))
        if body.get("wait"):
            await deliverer.wait(records, _wait_budget(state))
        return json_response({"ok": True, "deliveries": [_public_webhook(r) for r in records]})

    @app.post("/_sandbox/inject")
    async def inject(request: Request) -> HTTPResponse:
        """Patient messages to the bot: one spec, or `{"messages": [...], "batch"?, "duplicate"?, "wait"?}`."""
        body = _json_body(request)
        specs = body["messages"] if isinstance(body.get("messages"), list) else [body]
        if not specs:
            return json_response({"error": "no messages"}, status=400)
        built = [inbound.build(state, spec) for spec in specs]
        copies = 2 if body.get("duplicate") else 1
        records = []
        for (patient, message), spec in zip(built, specs, strict=True):
            state.inbound.append({"id": message["id"], "patient": patient.pid, "type": message["type"],
                                  "message": message, "at": state.now(), "read": False})
            if not body.get("batch"):
                copies_here = 2 if spec.get("duplicate") else copies
                records += deliverer.enqueue("messages", messages_value([(patient, message)]), [message["id"]],
                                             copies_here)
        if body.get("batch"):
            records += deliverer.enqueue("messages", messages_value(built), [m["id"] for _, m in built], copies)
        state.touch()
        if body.get("wait"):
            await deliverer.wait(records, _wait_budget(state))
        return json_response({
            "messages": [{"id": m["id"], "type": m["type"], "patient": p.key} for p, m in built],
            "deliveries": [_public_webhook(r) for r in records],
        })

    @app.get("/_sandbox/webhooks")
    async def webhooks(request: Request) -> HTTPResponse:
        kind = request.args.get("kind")
        return json_response([_public_webhook(r) for r in state.webhooks if not kind or r["kind"] == kind])

    @app.post("/_sandbox/webhooks/wait")
    async def webhooks_wait(request: Request) -> HTTPResponse:
        """Until every queued webhook has been attempted (tests read deliveries after this)."""
        await _settle(deliverer, _wait_budget(state))
        return json_response({"ok": True, "count": len(state.webhooks)})

    @app.get("/_sandbox/rejected")
    async def rejected(request: Request) -> HTTPResponse:
        return json_response(state.rejected)

    @app.get("/_sandbox/faults")
    async def faults(request: Request) -> HTTPResponse:
        return json_response(state.faults)

    @app.post("/_sandbox/faults")
    async def add_fault(request: Request) -> HTTPResponse:
        """Arm a fault: `{"kind", "code"?, "times"?, "recipient"?, "status"?, "delay"?, "details"?}`."""
        body = _json_body(request)
        if body.get("kind") not in FAULT_KINDS:
            return json_response({"error": f"kind must be one of {', '.join(FAULT_KINDS)}"}, status=400)
        fault = {
            "id": state.next_id(),
            "kind": body["kind"],
            "code": body.get("code"),
            "times": int(body.get("times", 1)),
            "recipient": body.get("recipient"),
            "status": body.get("status"),
            "delay": body.get("delay"),
            "details": body.get("details"),
            "endpoint": "messages",
            "used": 0,
        }
        state.faults.append(fault)
        return json_response(fault)

    @app.delete("/_sandbox/faults")
    async def clear_faults(request: Request) -> HTTPResponse:
        state.faults.clear()
        return json_response({"ok": True})

    @app.post("/_sandbox/verify")
    async def verify(request: Request) -> HTTPResponse:
        """Meta's subscription handshake: GET the webhook URL with hub.* and check the echoed challenge."""
        body = _json_body(request)
        challenge = str(secrets.randbelow(10**9))
        params = {"hub.mode": "subscribe", "hub.challenge": challenge,
                  "hub.verify_token": body.get("verify_token", state.config["verify_token"])}
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(state.options.webhook_url, params=params,
                                       timeout=aiohttp.ClientTimeout(total=state.options.webhook_timeout)) as reply:
                    text = await reply.text()
                    return json_response({"status": reply.status, "verified": reply.status == 200 and
                                          text.strip() == challenge})
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            return json_response({"status": None, "verified": False, "error": type(error).__name__})

    @app.get("/_sandbox/media/<media_id>")
    async def media_content(request: Request, media_id: str) -> HTTPResponse:
        """Media bytes for the page (the Graph download needs the bot's token; a patient's phone does not)."""
        item = state.media.get(media_id)
        if item is None:
            raise _NotFound("no such media")
        headers = {}
        if item.get("filename"):
            headers["Content-Disposition"] = f'inline; filename="{item["filename"]}"'
        return raw(item["bytes"], content_type=item["mime_type"], headers=headers)

    @app.get("/_sandbox/chat/<name>")
    async def chat(request: Request, name: str) -> HTTPResponse:
        """One patient's conversation for the page, both directions in time order."""
        found = state.find(name)
        if found is None:
            return json_response({"version": state.version, "patient": None, "messages": [], "typing": False})
        items = [{"direction": "in", "at": m["at"], "id": m["id"], "type": m["type"], "message": m["message"]}
                 for m in state.inbound_from(found)]
        items += [{"direction": "out", "at": m["accepted_at"], "id": m["id"], "type": m["type"], "view": m["view"],
                   "status": m["status"]} for m in state.outbound_for(found)]
        items.sort(key=lambda item: item["at"])
        return json_response({
            "version": state.version,
            "patient": found.public(state.now()),
            "messages": items,
            "typing": state.typing.get(found.pid, 0) > state.now(),
        })


class _NotFound(Exception):
    """A test-API lookup for something the sandbox does not have (HTTP 404)."""


def _patient_of(state: SandboxState, record: dict) -> Patient:
    return next(p for p in state.patients.values() if p.pid == record["patient"])


def _wait_budget(state: SandboxState) -> float:
    options = state.options
    attempts = 1 + max(0, options.webhook_retries)
    return attempts * (options.webhook_timeout + options.webhook_retry_delay * attempts) + 5


async def _settle(deliverer: Deliverer, timeout: float = 30) -> None:
    if deliverer.queue is not None:
        try:
            await deliverer.idle(timeout)
        except asyncio.TimeoutError:
            log.warning("webhook queue still busy after %.0f s", timeout)


def _config_view(state: SandboxState) -> dict:
    options = {k: getattr(state.options, k) for k in Options.__dataclass_fields__ if k != "app_secret"}
    identity = {k: v for k, v in state.config.items() if k not in ("access_token", "verify_token")}
    return {"options": options, "identity": identity}
