"""API clients of the FHIR API: one random key per system (an EHR, a lab), kept as its SHA-256 only.

`clinic fhir add-client --name ehr` prints the key once; the system sends it as
`Authorization: Bearer <key>`. What a client changes is done and audited as `fhir:<name>`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from clinic.db import Database
from clinic.models import ApiClient, utcnow

KEY_PREFIX = "clk_"
USED_RESOLUTION = timedelta(minutes=1)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,59}$")


class ClientError(ValueError):
    pass


def key_hash(key: str) -> str:
    """SHA-256 is enough: keys are 256-bit random, so there is nothing to brute-force (unlike passwords)."""
    return hashlib.sha256(key.encode()).hexdigest()


def add_client(db: Database, name: str) -> str:
    """A new client; its key (shown once, never stored)."""
    if not _NAME.match(name):
        raise ClientError("a client name is lower-case letters, digits, '.', '_' or '-' (up to 60)")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with db.transaction() as session:
        if session.scalar(select(ApiClient.id).where(ApiClient.name == name)) is not None:
            raise ClientError(f"client {name!r} exists; revoke it first or pick another name")
        session.add(ApiClient(name=name, key_hash=key_hash(key)))
    return key


def revoke_client(db: Database, name: str) -> None:
    with db.transaction() as session:
        client = session.scalars(select(ApiClient).where(ApiClient.name == name)).first()
        if client is None:
            raise ClientError(f"no client {name!r}")
        client.active = False


@dataclass(frozen=True)
class ClientView:
    name: str
    active: bool
    created_at: datetime
    last_used_at: datetime | None


def list_clients(db: Database) -> list[ClientView]:
    with db.reading() as session:
        return [ClientView(c.name, c.active, c.created_at, c.last_used_at)
                for c in session.scalars(select(ApiClient).order_by(ApiClient.name))]


def authenticate(db: Database, key: str) -> str | None:
    """The actor (`fhir:<name>`) of an active client's key, else None. `last_used_at` is refreshed at
    most once a minute, so reads stay reads.
    """
    if not key.startswith(KEY_PREFIX):
        return None
    with db.reading() as session:
        client = session.scalars(
            select(ApiClient).where(ApiClient.key_hash == key_hash(key), ApiClient.active.is_(True))
        ).first()
        if client is None:
            return None
        client_id, name, last = client.id, client.name, client.last_used_at
    now = utcnow()
    if last is None or now - last > USED_RESOLUTION:
        with db.transaction() as session:
            session.get(ApiClient, client_id).last_used_at = now
    return f"fhir:{name}"
