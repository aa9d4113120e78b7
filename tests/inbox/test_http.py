"""The inbox over real HTTP: sign-in, CSRF, lockout, claims, replies through the sandbox, hand-back to Rasa."""

from __future__ import annotations

import hashlib
import hmac
import threading
from datetime import timedelta

from sqlalchemy import select

from clinic import consent, crypto, handoff, rights
from clinic.models import AuditEntry, OutboundMessage, OutboundStatus, StaffEvent, StaffRole, TicketStatus
from tests.inbox.conftest import PASSWORD, add_contact, add_nurse
from tests.whatsapp_sandbox import wait_until

PATIENT = "393335550101"
PNG = bytes.fromhex(  # a 1x1 PNG
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def test_pages_need_a_session_and_carry_security_headers(db, start_inbox):
    inbox = start_inbox()
    anonymous = inbox.client()
    assert anonymous.get("/").headers["Location"] == "/login"
    assert anonymous.get("/api/queue").status_code == 401
    page = anonymous.get("/login")
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert (page.headers["X-Frame-Options"], page.headers["X-Content-Type-Options"]) == ("DENY", "nosniff")
    assert page.headers["Referrer-Policy"] == "no-referrer"
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_sign_in_sets_a_strict_httponly_cookie_and_sign_out_ends_it(db, start_inbox):
    add_nurse(db, "rossi")
    inbox = start_inbox(INBOX_COOKIE_SECURE="true")
    client = inbox.client()
    form = client.get("/login")
    assert "Secure" in form.headers["Set-Cookie"]
    login_cookie = form.headers["Set-Cookie"].split(";")[0]  # requests keeps Secure cookies off plain http
    answer = client.http.post(inbox.base_url + "/login", allow_redirects=False, headers={"Cookie": login_cookie},
                              data={"username": "rossi", "password": PASSWORD, "csrf_token": client.csrf})
    assert answer.status_code == 303
    cookie = answer.headers["Set-Cookie"]
    assert "inbox_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie
    session_cookie = cookie.split(";")[0]
    assert client.http.get(inbox.base_url + "/", headers={"Cookie": session_cookie}).status_code == 200
    csrf = client.http.get(inbox.base_url + "/", headers={"Cookie": session_cookie}).text.split(
        'name="csrf_token" value="')[1].split('"')[0]
    out = client.http.post(inbox.base_url + "/logout", data={"csrf_token": csrf}, headers={"Cookie": session_cookie},
                           allow_redirects=False)
    assert out.status_code == 303
    assert client.http.get(inbox.base_url + "/", headers={"Cookie": session_cookie},
                           allow_redirects=False).status_code == 303


def test_wrong_password_then_lockout(db, start_inbox):
    add_nurse(db, "rossi")
    inbox = start_inbox(STAFF_LOCKOUT_ATTEMPTS="3")
    client = inbox.client()
    assert client.login("rossi", "wrong").status_code == 401
    assert client.login("rossi", "wrong").status_code == 401
    locked = client.login("rossi", "wrong")
    assert locked.status_code == 429 and "locked until" in locked.text
    still = client.login("rossi", "correct-horse-battery")
    assert still.status_code == 429 and "locked" in still.text


def test_posts_without_the_csrf_token_are_refused(db, start_inbox):
    add_nurse(db, "rossi")
    ticket = handoff.open_ticket(db, add_contact(db, PATIENT), "request_human")
    inbox = start_inbox()
    assert inbox.client().post("/login", {"username": "rossi", "password": "x"}, csrf=False).status_code == 403
    client = inbox.client("rossi")
    refused = client.post(f"/tickets/{ticket.id}/claim", csrf=False)
    assert refused.status_code == 403 and "security token" in refused.text
    assert client.post(f"/tickets/{ticket.id}/claim", {"csrf_token": "forged"}).status_code == 403
    assert handoff.get(db, ticket.id).status is TicketStatus.waiting
    assert client.post("/logout").status_code == 303
    assert client.get("/").status_code == 303


def test_two_nurses_claim_at_once_one_wins_the_other_is_told_who(db, start_inbox):
    add_nurse(db, "rossi"), add_nurse(db, "bianchi")
    ticket = handoff.open_ticket(db, add_contact(db, PATIENT), "medical_question")
    inbox = start_inbox()
    clients = [inbox.client("rossi"), inbox.client("bianchi")]
    barrier, answers = threading.Barrier(2), [None, None]

    def claim(i: int) -> None:
        barrier.wait()
        answers[i] = clients[i].post(f"/tickets/{ticket.id}/claim")

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(2)]
    [t.start() for t in threads], [t.join() for t in threads]
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [303, 409], statuses
    winner = handoff.get(db, ticket.id).claimed_by
    loser = next(a for a in answers if a.status_code == 409)
    assert f"already claimed by {winner}" in loser.text


def test_queue_lists_urgent_first_with_window_and_sla(db, start_inbox):
    add_nurse(db, "rossi")
    calm = add_contact(db, "393335550102", "Calm Caller", hours_ago=30)
    urgent = add_contact(db, "393335550103", "Urgent Caller", hours_ago=2)
    handoff.open_ticket(db, calm, "request_human", now=handoff.utcnow() - timedelta(minutes=20))
    handoff.open_ticket(db, urgent, "emergency")
    client = start_inbox(HANDOFF_SLA_MINUTES="5").client("rossi")
    data = client.get("/api/queue").json()
    assert [t["name"] for t in data["tickets"]] == ["Urgent Caller", "Calm Caller"]
    assert [t["window_open"] for t in data["tickets"]] == [True, False]
    assert [t["sla_breached"] for t in data["tickets"]] == [False, True]
    assert (data["waiting"], data["urgent"]) == (2, 1)
    page = client.get("/").text
    assert page.index("Urgent Caller") < page.index("Calm Caller") and "over SLA" in page


def test_reply_reaches_the_patient_through_the_sandbox_and_everything_is_recorded(db, start_inbox, sandbox):
    nurse = add_nurse(db, "rossi")
    contact = add_contact(db, PATIENT)
    sandbox.open_window(PATIENT)
    ticket = handoff.open_ticket(db, contact, "request_human")
    inbox = start_inbox(**sandbox.env)
    client = inbox.client("rossi")

    assert client.post(f"/tickets/{ticket.id}/reply", {"text": "before claiming"}).status_code == 403
    assert client.post(f"/tickets/{ticket.id}/claim").status_code == 303
    client.get(f"/tickets/{ticket.id}")
    assert client.post(f"/tickets/{ticket.id}/reply", {"text": "Buongiorno, sono l'infermiera"}).status_code == 303
    (received,) = sandbox.wait_received(PATIENT)
    assert received["request"]["text"]["body"] == "Buongiorno, sono l'infermiera"

    def sent():
        entries = client.get(f"/api/tickets/{ticket.id}").json()["entries"]
        return [e for e in entries if e["status"] == "sent"]

    (entry,) = wait_until(sent, what="the reply to show as sent")
    assert (entry["who"], entry["text"]) == ("nurse rossi", "Buongiorno, sono l'infermiera")
    assert client.post(f"/tickets/{ticket.id}/notes", {"text": "private: allergic"}).status_code == 303
    assert "private: allergic" in client.get(f"/tickets/{ticket.id}").text
    assert all(r["request"]["type"] != "text" or "allergic" not in r["request"]["text"]["body"]
               for r in sandbox.received(PATIENT))
    with db.reading() as s:
        actions = s.scalars(select(StaffEvent.action).where(StaffEvent.staff_id == nurse).order_by(StaffEvent.id))
        assert list(actions) == ["claim", "view", "reply", "note", "view"]
        trail = s.execute(select(AuditEntry.kind, AuditEntry.subject).where(AuditEntry.actor == f"staff:{nurse}")
                          .order_by(AuditEntry.seq)).all()
        ticket_ref = f"ticket:{ticket.id}"
        assert [tuple(t) for t in trail] == [("staff.login", None), ("staff.claim", ticket_ref),
                                             ("staff.view", ticket_ref), ("staff.reply", ticket_ref),
                                             ("staff.note", ticket_ref), ("staff.view", ticket_ref)]
        assert handoff.get(db, ticket.id).first_reply_at is not None
    log = inbox.log.read_text()
    assert "outbox" in log and not any(phi in log for phi in (PATIENT, "infermiera", "allergic", "Maria", "Giulia"))


def test_a_reply_with_a_document_reaches_the_patient_with_its_name_and_caption(db, start_inbox, sandbox, tmp_path):
    add_nurse(db, "rossi")
    contact = add_contact(db, PATIENT)
    sandbox.open_window(PATIENT)
    ticket = handoff.open_ticket(db, contact, "attachment")
    client = start_inbox(MEDIA_DIR=str(tmp_path / "media"), **sandbox.env).client("rossi")
    client.post(f"/tickets/{ticket.id}/claim")
    client.get(f"/tickets/{ticket.id}")
    leaflet = b"%PDF-1.4 preparation leaflet"
    answer = client.post(f"/tickets/{ticket.id}/reply", {"text": "Ecco il foglio per la preparazione"},
                         files={"file": ("preparazione.pdf", leaflet, "application/pdf")})
    assert answer.status_code == 303, answer.text[:300]

    (received,) = sandbox.wait_received(PATIENT)
    document = received["request"]["document"]
    assert (document["filename"], document["caption"]) == ("preparazione.pdf", "Ecco il foglio per la preparazione")
    assert sandbox.http.get(f"{sandbox.base_url}/_sandbox/media/{document['id']}").content == leaflet
    [kept] = (tmp_path / "media" / "outbound").rglob("*.pdf")  # the clinic's copy is encrypted at rest
    assert b"preparation leaflet" not in kept.read_bytes() and crypto.read_file(kept) == leaflet
    entries = wait_until(lambda: [e for e in client.get(f"/api/tickets/{ticket.id}").json()["entries"]
                                  if e["status"] == "sent"], what="the document to show as sent")
    assert (entries[0]["kind"], entries[0]["media"], entries[0]["text"]) == (
        "document", "preparazione.pdf", "Ecco il foglio per la preparazione")


def test_a_photo_alone_and_a_long_text_with_a_photo(db, start_inbox, sandbox, tmp_path):
    add_nurse(db, "rossi")
    sandbox.open_window(PATIENT)
    ticket = handoff.open_ticket(db, add_contact(db, PATIENT), "attachment")
    client = start_inbox(MEDIA_DIR=str(tmp_path / "media"), **sandbox.env).client("rossi")
    client.post(f"/tickets/{ticket.id}/claim")
    client.get(f"/tickets/{ticket.id}")
    photo = ("map.png", PNG, "image/png")
    assert client.post(f"/tickets/{ticket.id}/reply", {"text": ""}, files={"file": photo}).status_code == 303
    long_text = "Entri dal cancello B. " * 60  # past WhatsApp's 1024-character caption
    assert client.post(f"/tickets/{ticket.id}/reply", {"text": long_text}, files={"file": photo}).status_code == 303
    received = [r["request"] for r in sandbox.wait_received(PATIENT, count=3)]
    assert [r["type"] for r in received] == ["image", "text", "image"]
    assert "caption" not in received[0]["image"] and "caption" not in received[2]["image"]
    assert received[1]["text"]["body"] == long_text.strip()


def test_files_whatsapp_would_refuse_are_refused_before_anything_is_queued(db, start_inbox, tmp_path):
    add_nurse(db, "rossi")
    ticket = handoff.open_ticket(db, add_contact(db, PATIENT), "attachment")
    client = start_inbox(MEDIA_DIR=str(tmp_path / "media")).client("rossi")
    client.post(f"/tickets/{ticket.id}/claim")
    client.get(f"/tickets/{ticket.id}")
    program = client.post(f"/tickets/{ticket.id}/reply", {"text": "x"},
                          files={"file": ("setup.exe", b"MZ...", "application/x-msdownload")})
    assert program.status_code == 400 and "cannot deliver this kind of file" in program.text
    huge = client.post(f"/tickets/{ticket.id}/reply", {"text": ""},
                       files={"file": ("scan.jpg", b"\xff\xd8" + bytes(6 * 1024 * 1024), "image/jpeg")})
    assert huge.status_code == 400 and "at most 5 MB" in huge.text
    nothing = client.post(f"/tickets/{ticket.id}/reply", {"text": "  "})
    assert nothing.status_code == 400 and "Write something or attach a file" in nothing.text
    with db.reading() as s:
        assert s.scalars(select(OutboundMessage)).all() == []
    assert not (tmp_path / "media").exists() or not any((tmp_path / "media").rglob("*.*"))


def test_closed_window_sends_the_template_and_holds_the_reply(db, start_inbox, sandbox):
    add_nurse(db, "rossi")
    contact = add_contact(db, PATIENT, hours_ago=30)
    sandbox.close_window(PATIENT)
    ticket = handoff.open_ticket(db, contact, "request_human")
    client = start_inbox(**sandbox.env).client("rossi")
    client.post(f"/tickets/{ticket.id}/claim")
    page = client.get(f"/tickets/{ticket.id}").text
    assert "24-hour window is closed" in page and "Send template and queue reply" in page

    client.post(f"/tickets/{ticket.id}/reply", {"text": "Le scrivo per il referto"})
    (received,) = sandbox.wait_received(PATIENT)
    assert received["request"]["type"] == "template"
    with db.reading() as s:
        reply = s.execute(select(OutboundMessage).where(OutboundMessage.kind == "text")).scalar_one()
    assert reply.status is OutboundStatus.held
    entries = client.get(f"/api/tickets/{ticket.id}").json()["entries"]
    held = next(e for e in entries if e["kind"] == "text")
    assert held["status"] == "held" and "window is closed" in held["status_label"]


def test_resolve_hands_back_to_rasa_with_resume_and_a_closing_line(db, start_inbox, fake_rasa):
    nurse = add_nurse(db, "rossi")
    ticket = handoff.open_ticket(db, add_contact(db, PATIENT), "request_human", language="en")
    client = start_inbox(RASA_URL=fake_rasa.url, RASA_TOKEN="s3cret").client("rossi")
    client.post(f"/tickets/{ticket.id}/claim")
    assert client.post(f"/tickets/{ticket.id}/resolve").headers["Location"] == "/"
    (path, events), = fake_rasa.requests
    assert path == f"/conversations/{PATIENT}/tracker/events?token=s3cret"
    assert [e["event"] for e in events] == ["resume", "bot", "action"] and "nurse" in events[1]["text"]
    assert events[2]["name"] == "action_listen"  # so the next message is matched as a fresh turn
    assert handoff.get(db, ticket.id).status is TicketStatus.resolved
    with db.reading() as s:
        assert "resolve" in s.scalars(select(StaffEvent.action).where(StaffEvent.staff_id == nurse)).all()


def test_resolve_succeeds_when_rasa_is_down(db, start_inbox):
    add_nurse(db, "rossi")
    ticket = handoff.open_ticket(db, add_contact(db, PATIENT), "request_human")
    inbox = start_inbox()  # RASA_URL points at a closed port
    client = inbox.client("rossi")
    client.post(f"/tickets/{ticket.id}/claim")
    assert client.post(f"/tickets/{ticket.id}/resolve").status_code == 303
    assert handoff.get(db, ticket.id).status is TicketStatus.resolved
    log = inbox.log.read_text()
    assert f"ticket {ticket.id}: Rasa unreachable" in log and PATIENT not in log


def test_canned_responses_are_edited_by_admins_only(db, start_inbox):
    add_nurse(db, "rossi"), add_nurse(db, "capo", StaffRole.admin)
    inbox = start_inbox()
    nurse, admin = inbox.client("rossi"), inbox.client("capo")
    assert nurse.post("/canned", {"language": "it", "title": "Ciao", "body": "Buongiorno"}).status_code == 403
    assert admin.post("/canned", {"language": "it", "title": "Ciao", "body": "Buongiorno"}).status_code == 303
    (canned,) = handoff.canned_responses(db)
    assert admin.post(f"/canned/{canned.id}", {"language": "en", "title": "Hi", "body": "Hello"}).status_code == 303
    assert [(c.language, c.title) for c in handoff.canned_responses(db)] == [("en", "Hi")]
    assert "Hello" in nurse.get("/canned").text
    assert admin.post(f"/canned/{canned.id}/delete").status_code == 303
    assert handoff.canned_responses(db) == []


def test_attachments_are_served_to_signed_in_staff_only_from_the_media_dir(db, start_inbox, tmp_path):
    from clinic.models import InboundMessage, utcnow

    add_nurse(db, "rossi")
    contact = add_contact(db, PATIENT)
    media_dir = tmp_path / "media"
    crypto.write_file(media_dir / "in" / "rash.jpg", b"\xff\xd8jpeg")  # as the channel stores it
    with db.transaction() as s:
        row = InboundMessage(wamid="w.img", contact_id=contact, phone_number_id="1", type="image",
                             payload={"image": {"mime_type": "image/jpeg"}}, media_id="m1", media_path="in/rash.jpg",
                             media_mime="image/jpeg", sent_at=utcnow())
        s.add(row)
        s.flush()
        inbound_id = row.id
    ticket = handoff.open_ticket(db, contact, "attachment")
    inbox = start_inbox(MEDIA_DIR=str(media_dir))
    client = inbox.client("rossi")
    (entry,) = client.get(f"/api/tickets/{ticket.id}").json()["entries"]
    assert entry["media_url"] == f"/tickets/{ticket.id}/media/{inbound_id}"
    got = client.get(entry["media_url"])
    assert (got.status_code, got.content, got.headers["Content-Type"]) == (200, b"\xff\xd8jpeg", "image/jpeg")
    assert inbox.client().get(entry["media_url"]).status_code == 303
    other = handoff.open_ticket(db, add_contact(db, "393335550199", "Other"), "request_human")
    assert client.get(f"/tickets/{other.id}/media/{inbound_id}").status_code == 404


def test_reassign_to_a_colleague(db, start_inbox):
    add_nurse(db, "rossi"), add_nurse(db, "bianchi")
    ticket = handoff.open_ticket(db, add_contact(db, PATIENT), "request_human")
    client = start_inbox().client("rossi")
    client.post(f"/tickets/{ticket.id}/claim")
    assert 'id="reassign-to"' in client.get(f"/tickets/{ticket.id}").text
    assert client.post(f"/tickets/{ticket.id}/reassign", {"username": "bianchi"}).status_code == 303
    assert handoff.get(db, ticket.id).claimed_by == "bianchi"
    assert client.post(f"/tickets/{ticket.id}/reassign", {"username": "rossi"}).status_code == 403


def test_webhook_announces_new_tickets_and_sla_breaches_with_ids_only(db, start_inbox, fake_rasa):
    receiver = fake_rasa  # any recording HTTP server will do
    old = handoff.open_ticket(db, add_contact(db, PATIENT), "request_human",
                              now=handoff.utcnow() - timedelta(minutes=30))
    start_inbox(HANDOFF_WEBHOOK_URL=receiver.url + "/alerts", HANDOFF_SLA_MINUTES="10",
                HANDOFF_WEBHOOK_SECRET="pager-secret")
    wait_until(lambda: len(receiver.requests) >= 2, what="two alerts")
    new = handoff.open_ticket(db, add_contact(db, "393335550120", "New"), "emergency")
    wait_until(lambda: len(receiver.requests) >= 3, what="the new ticket's alert")
    events = sorted((body["event"], body["ticket_id"]) for _, body in receiver.requests)
    assert events == sorted([("ticket_waiting", old.id), ("sla_breached", old.id), ("ticket_waiting", new.id)])
    assert all(set(body) == {"event", "ticket_id", "priority", "reason", "waiting_seconds"}
               for _, body in receiver.requests)
    for headers, raw in receiver.raw:  # signed as Meta signs its webhooks, so forged pages can be refused
        expected = "sha256=" + hmac.new(b"pager-secret", raw, hashlib.sha256).hexdigest()
        assert headers["X-Clinic-Signature-256"] == expected


def test_delivery_status_and_errors_show_as_the_channel_records_them(db, start_inbox):
    from clinic.models import OutboundMessage, OutboundStatus, utcnow

    add_nurse(db, "rossi")
    contact = add_contact(db, PATIENT)
    with db.transaction() as s:
        s.add_all([
            OutboundMessage(contact_id=contact, kind="text", body={"type": "text", "text": {"body": "letto"}},
                            source="inbox:rossi", status=OutboundStatus.read, created_at=utcnow()),
            OutboundMessage(contact_id=contact, kind="text", body={"type": "text", "text": {"body": "perso"}},
                            source="inbox:rossi", status=OutboundStatus.failed, error_code=131026,
                            error_title="Message undeliverable", created_at=utcnow()),
        ])
    ticket = handoff.open_ticket(db, contact, "request_human")
    client = start_inbox().client("rossi")
    entries = client.get(f"/api/tickets/{ticket.id}").json()["entries"]
    assert [(e["text"], e["status_label"], e["error"]) for e in entries] == [
        ("letto", "read", ""), ("perso", "failed", "131026 Message undeliverable")]
    assert "131026 Message undeliverable" in client.get(f"/tickets/{ticket.id}").text
    bare = client.http.post(f"{client.base_url}/tickets/{ticket.id}/claim", allow_redirects=False)
    assert bare.status_code == 403  # no form at all: refused, not a crash


def test_resolve_outside_the_window_only_resumes_the_bot(db, start_inbox, fake_rasa):
    add_nurse(db, "rossi")
    ticket = handoff.open_ticket(db, add_contact(db, PATIENT, hours_ago=30), "request_human")
    client = start_inbox(RASA_URL=fake_rasa.url).client("rossi")
    client.post(f"/tickets/{ticket.id}/claim")
    assert client.post(f"/tickets/{ticket.id}/resolve").status_code == 303
    (path, events), = fake_rasa.requests
    assert path == f"/conversations/{PATIENT}/tracker/events" and [e["event"] for e in events] == ["resume", "action"]
    with db.reading() as s:
        assert s.scalars(select(OutboundMessage)).all() == []  # no closing line, no template


def test_the_conversation_says_what_the_patient_consented_to(db, start_inbox):
    add_nurse(db, "rossi")
    asked, stopped, fresh = (add_contact(db, wa_id) for wa_id in ("393335550131", "393335550132", "393335550133"))
    consent.decide(db, asked, ["appointments", "results"], how="test")
    consent.decide(db, stopped, consent.PURPOSES, how="test")
    consent.opt_out(db, stopped, how="test:stop")
    tickets = [handoff.open_ticket(db, c, "request_human") for c in (asked, stopped, fresh)]
    client = start_inbox().client("rossi")
    pages = [client.get(f"/tickets/{t.id}").text for t in tickets]
    assert "appointments, results (notice v1)" in pages[0]
    assert "declined or wrote STOP" in pages[1]
    assert "not asked yet" in pages[2]


def test_data_requests_are_listed_for_staff_and_decided_by_an_admin(db, start_inbox, sandbox):
    add_nurse(db, "rossi"), add_nurse(db, "dpo", StaffRole.admin)
    contact = add_contact(db, PATIENT)
    sandbox.open_window(PATIENT)
    copy, _ = rights.ask(db, contact, "export")
    erasure, _ = rights.ask(db, contact, "erasure")
    inbox = start_inbox(**sandbox.env, RASA_URL="http://127.0.0.1:9")  # Rasa down: erasure waits for it
    nurse = inbox.client("rossi")
    listed = nurse.get("/requests").text
    assert PATIENT in listed and "Copy of their data" in listed and "an admin decides" in listed
    assert nurse.post(f"/requests/{copy.id}/approve").status_code == 403  # a nurse cannot send data out
    admin = inbox.client("dpo")
    assert admin.post(f"/requests/{copy.id}/approve").status_code == 303
    assert admin.post(f"/requests/{copy.id}/reject").status_code == 409  # decided already
    wait_until(lambda: any(r["request"].get("type") == "document" for r in sandbox.received(PATIENT)))
    assert admin.post(f"/requests/{erasure.id}/approve").status_code == 303
    assert [(r.kind, r.status) for r in rights.open_requests(db)] == [("erasure", "approved")]
    assert "chat history being cleared" in admin.get("/requests").text
    with db.reading() as s:
        kinds = [e.kind for e in s.scalars(select(AuditEntry).where(AuditEntry.kind.like("rights.%")))]
    assert kinds == ["rights.requested", "rights.requested", "rights.export_approved", "rights.erasure_approved"]
