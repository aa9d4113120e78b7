"""Every setting in one place, read from the environment (documented in `.env.example`)."""

from __future__ import annotations

import functools
from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import BaseSettings, Field, validator

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Clinic settings; names are the environment variables, upper-cased."""

    database_url: str = Field(
        f"sqlite:///{PROJECT_ROOT / 'var' / 'clinic.db'}",
        description="SQLAlchemy URL of the clinic database (PostgreSQL in production).",
    )
    clinic_timezone: str = Field("Europe/Rome", description="IANA zone of the clinic; the DB stores UTC.")
    booking_min_lead_minutes: int = Field(
        120, ge=0, description="No slot is offered or booked closer to now than this."
    )
    late_cancellation_hours: int = Field(
        24, ge=0, description="Cancelling closer than this to the visit is too late by chat."
    )
    default_language: str = Field("it", regex="^(it|en)$", description="When nothing tells the language.")
    slot_horizon_days: int = Field(21, ge=1, description="How far ahead bookable slots are generated.")

    # WhatsApp Cloud API (the sandbox's defaults: `make run` talks to the local stand-in).
    whatsapp_api_base_url: str = Field("http://localhost:5070", description="Graph API root (https://graph.facebook.com).")
    whatsapp_api_version: str = Field("v23.0", description="Graph API version in request paths.")
    whatsapp_phone_number_id: str = Field("100000000000001", description="The clinic's WhatsApp number id.")
    whatsapp_access_token: str = Field("sandbox-access-token", description="System-user token (secret).")
    whatsapp_app_secret: str = Field("sandbox-app-secret", description="Signs webhooks (secret).")
    whatsapp_verify_token: str = Field("sandbox-verify-token", description="Webhook GET handshake token (secret).")
    whatsapp_max_messages_per_second: float = Field(80, gt=0, description="Outbound pacing ceiling.")
    whatsapp_window_template: str = Field(
        "clinic_new_message", description="Utility template sent when the 24-hour window is closed."
    )
    whatsapp_webhook_url: str = Field(
        "http://localhost:5006/webhooks/whatsapp/webhook",
        description="Where the sandbox delivers webhooks: the ingest (Rasa's channel takes them too, on 5005).",
    )
    whatsapp_ingest_host: str = Field("127.0.0.1", description="Address the webhook ingest listens on.")
    whatsapp_ingest_port: int = Field(
        5006, description="Port of the webhook ingest (`python -m clinic.whatsapp.ingest`); it nudges RASA_URL."
    )
    media_dir: Path = Field(PROJECT_ROOT / "var" / "media", description="Where received media files are kept.")
    inbound_limit_messages: int = Field(
        20, ge=1, description="Messages one contact may send the bot per INBOUND_LIMIT_SECONDS; more are kept for "
        "staff, not answered (one notice; red flags and STOP always go through).",
    )
    inbound_limit_seconds: float = Field(60, gt=0, description="The window of INBOUND_LIMIT_MESSAGES.")

    # Nurse handoff and the nurse inbox (issue 5).
    inbox_host: str = Field("127.0.0.1", description="Address the nurse inbox listens on.")
    inbox_port: int = Field(5080, description="Port of the nurse inbox (`python -m clinic.inbox`).")
    inbox_cookie_secure: bool = Field(
        True, description="Secure flag on session cookies; false only for plain-http hosts other than localhost."
    )
    inbox_session_hours: float = Field(12, gt=0, description="A nurse's sign-in lasts this long.")
    handoff_sla_minutes: int = Field(10, ge=1, description="A ticket waiting longer than this is highlighted.")
    handoff_staffed_hours: str = Field(
        "mon-fri 08:00-19:00", description="When nurses answer, clinic time: `mon-fri 08:00-19:00,sat 08:00-12:00`."
    )
    staff_lockout_attempts: int = Field(5, ge=1, description="Failed sign-ins that lock a staff account.")
    staff_lockout_minutes: int = Field(15, ge=1, description="Window for counting failures, and lockout length.")
    rasa_url: str = Field("http://localhost:5005", description="Rasa's HTTP API, for handing a conversation back.")
    rasa_token: str = Field("", description="Rasa's `--auth-token` (secret); empty when Rasa runs without one.")
    demo_mode: bool = Field(False, description="Demo: the inbox creates the `demo-nurse` account at start.")
    clinic_env: str = Field(
        "development", regex="^(development|production)$",
        description="`production` refuses to start with a demo secret, demo mode, no ENCRYPTION_KEYS or no RASA_TOKEN.",
    )
    encryption_keys: str = Field(
        "", description="Fernet keys (`clinic crypto new-key`), comma-separated, newest first: the first encrypts "
        "message bodies, media and result files, all of them decrypt (rotation). Empty: the public development key "
        "(refused in production) (secret).",
    )
    handoff_webhook_url: str = Field(
        "", description="POSTed (ids only) when a ticket starts waiting or breaches the SLA; empty: off."
    )
    handoff_webhook_secret: str = Field(
        "", description="Signs those POSTs: header X-Clinic-Signature-256 = sha256=HMAC-SHA256(body) (secret)."
    )

    # Outreach worker (`python -m clinic.outreach`): appointment reminders (issue 6).
    reminder_offsets_hours: str = Field(
        "72,24", description="Hours before each appointment that a reminder goes out, comma-separated."
    )
    reminder_grace_hours: float = Field(
        6, ge=0, description="A reminder whose moment passed while no worker ran still goes out this long after "
        "(quiet hours not counted); never once the visit has begun."
    )
    reminder_template: str = Field("appointment_reminder", description="Approved utility template of the reminder.")
    outreach_quiet_hours: str = Field(
        "21:00-08:00", description="Clinic hours with no outreach messages (deferred to their end, not dropped)."
    )
    message_retention_days: int = Field(
        365, ge=0, description="Message content (texts, media, the Rasa conversation history) older than this is "
        "removed by the retention pass; appointments, consents and the audit trail stay. 0: keep.",
    )
    outreach_interval_seconds: float = Field(60, gt=0, description="Pause between the outreach worker's passes.")
    outreach_metrics_port: int = Field(
        5085, ge=0, description="Port of the outreach worker's Prometheus /metrics (0: none)."
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address the workers' /metrics ports (outreach, webhooks) listen on (0.0.0.0: all)."
    )
    metrics_token: str = Field(
        "", description="When set, /metrics answers only requests with `Authorization: Bearer <this>`."
    )

    # Integration with the clinic's other systems (issue 9): FHIR API, calendar feeds, webhooks.
    fhir_host: str = Field("127.0.0.1", description="Address the FHIR API (and calendar feeds) listens on.")
    fhir_port: int = Field(5090, description="Port of `python -m clinic.fhir`.")
    fhir_base_url: str = Field(
        "http://localhost:5090", description="Public root of that process: FHIR fullUrls and calendar feed links."
    )
    webhook_urls: str = Field("", description="Receivers of booking events, comma-separated; empty: none.")
    webhook_secret: str = Field(
        "", description="Signs booking events: X-Clinic-Signature-256 = sha256=HMAC-SHA256(body) (secret)."
    )
    webhook_max_attempts: int = Field(12, ge=1, description="Attempts before a booking event is marked failed.")
    webhook_retry_base_seconds: float = Field(
        10, ge=0, description="First retry delay; doubled per attempt up to WEBHOOK_RETRY_MAX_SECONDS."
    )
    webhook_retry_max_seconds: float = Field(3600, ge=0, description="Longest wait between two attempts.")
    webhook_interval_seconds: float = Field(2, gt=0, description="Pause between the webhook worker's passes.")
    hooks_metrics_port: int = Field(
        5095, ge=0, description="Port of the webhook worker's Prometheus /metrics (`python -m clinic.hooks`; 0: none)."
    )

    @property
    def webhook_url_list(self) -> list[str]:
        return [url.strip() for url in self.webhook_urls.split(",") if url.strip()]

    # Lab results (issue 6.5) and the identity check before health data (issue 7.3).
    results_dir: Path = Field(PROJECT_ROOT / "var" / "results", description="Where result PDFs are kept, encrypted.")
    results_max_mb: float = Field(20, gt=0, le=100, description="Largest result PDF accepted (WhatsApp takes 100 MB).")
    results_delivery: str = Field(
        "link", regex="^(document|link)$", description="How a report is released after the identity check: "
        "`document` (a WhatsApp document) or `link` (a single-use expiring download page that asks the date of "
        "birth again). The default for new results; the CLI and the lab endpoint may set it per result.",
    )
    results_link_minutes: int = Field(60, ge=1, description="A download link expires this long after it is sent.")
    results_link_base_url: str = Field(
        "http://localhost:5080", description="Public address of the inbox app, which serves the download page /r/…"
    )
    results_template: str = Field("results_ready", description="Approved utility template: your results are ready.")
    lab_api_key: str = Field(
        "", description="Bearer key of the lab endpoint POST /api/lab/results on the inbox app; empty: off (secret)."
    )
    identity_max_attempts: int = Field(3, ge=1, description="Wrong dates of birth before the lockout and a handoff.")
    identity_lockout_minutes: int = Field(30, ge=1, description="Window for counting failures, and lockout length.")
    identity_verification_minutes: int = Field(
        15, ge=1, description="A passed date-of-birth check holds this long for that conversation and patient."
    )

    # Waitlist backfill and after-visit messages (issue 6, clinic.outreach.backfill / .followups).
    waitlist_batch_size: int = Field(
        2, ge=1, description="How many waitlisted patients are offered a freed slot at once (in joining order)."
    )
    waitlist_offer_minutes: int = Field(
        120, ge=1, description="How long an offer holds (quiet hours not counted); then the next patients in "
        "line are offered the slot."
    )
    waitlist_offer_template: str = Field("waitlist_offer", description="Utility template offering a freed slot.")
    waitlist_gone_template: str = Field(
        "waitlist_offer_gone", description="Utility template telling an offered patient the slot has gone."
    )
    followup_delay_hours: float = Field(
        2, ge=0, description="Hours after a visit is marked completed that its specialty's follow-up goes out."
    )
    survey_delay_hours: float = Field(
        4, ge=0, description="Hours after a visit is marked completed that the satisfaction question goes out."
    )
    after_visit_grace_hours: float = Field(
        48, ge=0, description="An after-visit message not sent this long after its moment (quiet hours not "
        "counted) is skipped as late."
    )
    survey_template: str = Field("visit_satisfaction", description="Utility template of the 1-5 satisfaction question.")
    no_show_after_hours: float = Field(
        2, ge=0, description="A booked or confirmed visit not checked in (completed) this long after its end is "
        "marked no_show by the outreach worker."
    )
    rebook_template: str = Field("missed_visit", description="Utility template offering to rebook a missed visit.")

    @validator("reminder_offsets_hours")
    def _offsets(cls, value: str) -> str:  # noqa: N805 - pydantic validators take cls
        hours = [int(part) for part in value.split(",") if part.strip()]
        if not hours or min(hours) <= 0:
            raise ValueError("REMINDER_OFFSETS_HOURS: positive whole hours, e.g. 72,24")
        return value

    @validator("outreach_quiet_hours")
    def _quiet(cls, value: str) -> str:  # noqa: N805 - pydantic validators take cls
        _clock_span(value)
        return value

    @property
    def reminder_offsets(self) -> tuple[int, ...]:
        """The offsets in hours, largest first, without repeats."""
        return tuple(sorted({int(part) for part in self.reminder_offsets_hours.split(",") if part.strip()},
                            reverse=True))

    @property
    def quiet_hours(self) -> tuple[time, time] | None:
        """(start, end) in clinic time, possibly across midnight; None when empty (never quiet)."""
        return _clock_span(self.outreach_quiet_hours)

    @validator("clinic_timezone")
    def _known_zone(cls, value: str) -> str:  # noqa: N805 - pydantic validators take cls
        ZoneInfo(value)  # raises for an unknown zone, so a typo fails at start-up
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.clinic_timezone)


def _clock_span(value: str) -> tuple[time, time] | None:
    """"21:00-08:00" → (21:00, 08:00); "" → None."""
    if not value.strip():
        return None
    try:
        start, end = (time.fromisoformat(part.strip()) for part in value.split("-"))
    except ValueError:
        raise ValueError(f"expected HH:MM-HH:MM, got {value!r}") from None
    return start, end


# Secrets whose default is public (the sandbox's, the development key): never in production.
DEMO_SECRETS = {
    "whatsapp_access_token": "sandbox-access-token",
    "whatsapp_app_secret": "sandbox-app-secret",
    "whatsapp_verify_token": "sandbox-verify-token",
}


def production_problems(current: Settings) -> list[str]:
    """Why these settings must not serve real patients (empty outside production, or when all is well)."""
    if current.clinic_env != "production":
        return []
    from clinic.crypto import DEVELOPMENT_KEY  # crypto reads settings: import here, not at module load

    problems = [f"{name.upper()} is the public demo value" for name, demo in DEMO_SECRETS.items()
                if getattr(current, name) == demo]
    if current.demo_mode:
        problems.append("DEMO_MODE is on")
    keys = [key.strip() for key in current.encryption_keys.split(",") if key.strip()]
    if not keys:
        problems.append("ENCRYPTION_KEYS is empty")
    elif DEVELOPMENT_KEY in keys:
        problems.append("ENCRYPTION_KEYS holds the public development key")
    if not current.rasa_token:  # Rasa's HTTP API would hand every conversation to whoever asks
        problems.append("RASA_TOKEN is empty")
    return problems


def require_safe_to_start() -> None:
    """Every long-running process calls this first: production with demo secrets exits, naming them."""
    problems = production_problems(settings())
    if problems:
        raise SystemExit("refusing to start in production: " + "; ".join(problems))


@functools.cache
def settings() -> Settings:
    """The process-wide settings, read once on first use (never at import)."""
    return Settings()
