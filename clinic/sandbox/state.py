"""Everything the sandbox remembers: patients, messages both ways, media, faults, limits, the clock.

Kept in memory on purpose: the sandbox is a test double, a restart is a reset, and tests read it
through the test API rather than a database.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import time
from dataclasses import asdict, dataclass, field

from clinic.sandbox.templates import default_templates

WINDOW_SECONDS = 24 * 3600
COUNTRY_PREFIXES = {"39": "IT", "1": "US", "44": "GB", "33": "FR", "49": "DE", "34": "ES", "41": "CH"}


@dataclass
class Options:
    """What tests may change at run time (`PUT /_sandbox/config`); `reset` restores these defaults."""

    webhook_url: str
    app_secret: str
    statuses: list[str] = field(default_factory=lambda: ["sent", "delivered"])
    duplicate_webhooks: bool = False
    pair_per_second: float = 1 / 6  # Meta: about one message every 6 s to the same user...
    pair_burst: int = 45  # ...with bursts of up to 45 allowed before 131056
    messages_per_second: float = 80.0  # Meta's default throughput; over it → 130429
    timeout_seconds: float = 30.0  # how long a `timeout` fault holds the response
    webhook_timeout: float = 10.0
    webhook_retries: int = 2  # Meta retries failed deliveries; attempts = 1 + retries
    webhook_retry_delay: float = 0.5


@dataclass
class Patient:
    """A WhatsApp user: phone (`wa_id`) and/or business-scoped user id (BSUID)."""

    wa_id: str | None
    user_id: str | None
    name: str = "Patient"
    last_inbound: float | None = None
    undeliverable: bool = False
    hide_phone: bool = False  # a username user whose phone Meta withholds: `from` absent in webhooks
    pid: int = 0  # stable through a change of number; messages point at it

    @property
    def key(self) -> str:
        return self.wa_id or self.user_id or ""

    def public(self, now: float) -> dict:
        data = asdict(self)
        data["key"] = self.key
        data["window_open"] = self.last_inbound is not None and now - self.last_inbound < WINDOW_SECONDS
        return data


class Bucket:
    """A token bucket on the sandbox clock: `rate` tokens a second, at most `burst` saved up."""

    def __init__(self, now: float, burst: float):
        self.tokens = burst
        self.updated = now

    def take(self, now: float, rate: float, burst: float) -> bool:
        self.tokens = min(burst, self.tokens + max(0.0, now - self.updated) * rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def normalise_phone(value: str) -> str:
    """Meta's wa_id: the number's digits, no plus sign or spaces."""
    return "".join(ch for ch in value if ch.isdigit())


def bsuid_for(wa_id: str) -> str:
    """A stable business-scoped user id for a phone number, in Meta's `CC.digits` form."""
    country = next((cc for prefix, cc in sorted(COUNTRY_PREFIXES.items(), key=lambda p: -len(p[0]))
                    if wa_id.startswith(prefix)), "IT")
    digits = str(int(hashlib.sha256(wa_id.encode()).hexdigest(), 16))[:17]
    return f"{country}.{digits}"


def new_wamid() -> str:
    """An id shaped like Meta's (`wamid.` + base64): clients must treat it as opaque."""
    return "wamid." + secrets.token_urlsafe(36).replace("-", "A").replace("_", "B")


class SandboxState:
    """The sandbox's memory; one per app."""

    def __init__(self, options: Options, config: dict):
        self.defaults = options
        # Fixed identity of the business number: phone_number_id, access_token, api_version,
        # display_phone_number, waba_id, verify_token.
        self.config = config
        self.templates_default = default_templates()
        self._ids = itertools.count(1)
        self.generation = 0
        self.reset()

    def reset(self) -> None:
        self.generation += 1  # work started before a reset (a held `timeout` send) must not land after it
        self.options = Options(**asdict(self.defaults))
        self.clock_offset = 0.0
        self.patients: dict[str, Patient] = {}
        self.outbound: list[dict] = []
        self.inbound: list[dict] = []
        self.media: dict[str, dict] = {}
        self.faults: list[dict] = []
        self.webhooks: list[dict] = []
        self.rejected: list[dict] = []
        self.templates = default_templates()
        self.pair_buckets: dict[str, Bucket] = {}
        self.throughput: Bucket | None = None
        self.typing: dict[int, float] = {}
        self.conversations: dict[tuple[int, str], tuple[str, float]] = {}
        self.version = 0

    # --- time -------------------------------------------------------------------------------
    def now(self) -> float:
        return time.time() + self.clock_offset

    def touch(self) -> None:
        """Something a patient's page shows changed."""
        self.version += 1

    def next_id(self) -> int:
        return next(self._ids)

    # --- patients ---------------------------------------------------------------------------
    def find(self, who: str) -> Patient | None:
        """By phone (any formatting) or by BSUID."""
        if who in self.patients:
            return self.patients[who]
        digits = normalise_phone(who)
        for patient in self.patients.values():
            if patient.user_id == who or (digits and patient.wa_id == digits):
                return patient
        return None

    def patient(self, wa_id: str | None = None, user_id: str | None = None, name: str | None = None) -> Patient:
        """The patient with this phone or user id, created on first sight."""
        wa_id = normalise_phone(wa_id) if wa_id else None
        found = (self.find(wa_id) if wa_id else None) or (self.find(user_id) if user_id else None)
        if found is None:
            found = Patient(wa_id=wa_id, user_id=user_id or (bsuid_for(wa_id) if wa_id else None), pid=self.next_id())
            self.patients[found.key] = found
        else:
            if wa_id and not found.wa_id:
                self.patients.pop(found.key, None)
                found.wa_id = wa_id
                self.patients[found.key] = found
            if user_id and found.user_id != user_id:
                found.user_id = user_id
        if name:
            found.name = name
        return found

    def change_number(self, patient: Patient, new_wa_id: str) -> None:
        """System `user_changed_number`: Meta gives the user a new wa_id and a new BSUID."""
        self.patients.pop(patient.key, None)
        patient.wa_id = normalise_phone(new_wa_id)
        patient.user_id = bsuid_for(patient.wa_id)
        self.patients[patient.key] = patient

    def change_user_id(self, patient: Patient, new_user_id: str) -> None:
        """System `user_changed_user_id`: the BSUID changes (and with it the key of a phone-less user)."""
        self.patients.pop(patient.key, None)
        patient.user_id = new_user_id
        self.patients[patient.key] = patient

    def window_open(self, patient: Patient) -> bool:
        return patient.last_inbound is not None and self.now() - patient.last_inbound < WINDOW_SECONDS

    # --- limits -----------------------------------------------------------------------------
    def take_throughput(self) -> bool:
        rate = self.options.messages_per_second
        if self.throughput is None:
            self.throughput = Bucket(self.now(), rate)
        return self.throughput.take(self.now(), rate, max(1.0, rate))

    def take_pair(self, patient: Patient) -> bool:
        burst = self.options.pair_burst
        bucket = self.pair_buckets.setdefault(patient.key, Bucket(self.now(), burst))
        return bucket.take(self.now(), self.options.pair_per_second, burst)

    # --- faults -----------------------------------------------------------------------------
    def take_fault(self, patient: Patient | None, endpoint: str) -> dict | None:
        """The first armed fault that matches this send, used up by one."""
        for fault in self.faults:
            if fault["endpoint"] != endpoint or fault["times"] <= 0:
                continue
            target = fault.get("recipient")
            if target and not (patient and (target == patient.user_id or normalise_phone(target) == patient.wa_id)):
                continue
            fault["times"] -= 1
            fault["used"] += 1
            return fault
        return None

    # --- look-ups for the test API ----------------------------------------------------------
    def outbound_for(self, patient: Patient) -> list[dict]:
        return [m for m in self.outbound if m["patient"] == patient.pid]

    def inbound_from(self, patient: Patient) -> list[dict]:
        return [m for m in self.inbound if m["patient"] == patient.pid]

    def message(self, wamid: str) -> dict | None:
        return next((m for m in self.outbound if m["id"] == wamid), None) or next(
            (m for m in self.inbound if m["id"] == wamid), None
        )
