"""API clients of the FHIR API: one random key per system (an EHR, a lab), kept as its SHA-256 only.

`clinic fhir add-client --name ehr` prints the key once; the system sends it as
`Authorization: Bearer <key>`, or trades it for an hour's access token at `POST /oauth2/token`
(OAuth2 client credentials: client id = the name, client secret = the key). What a client changes
is done and audited as `fhir:<name>`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from clinic.db import Database
from clinic.models import ApiClient, utcnow

KEY_PREFIX = "clk_"
TOKEN_PREFIX = "cat_"
TOKEN_LIFETIME = timedelta(hours=1)
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


def _token_signature(client_key_hash: str, payload: str) -> str:
    return hmac.new(client_key_hash.encode(), payload.encode(), hashlib.sha256).hexdigest()


def issue_token(db: Database, client_id: str, secret: str, now: datetime | None = None) -> tuple[str, int] | None:
    """OAuth2 client credentials: (access token, seconds it lasts) for a client's name and key, else None.

    The token is `cat_<name>.<expiry>.<HMAC of both keyed by the client's key hash>`: nothing to store,
    and revoking the client (or giving it a new key) ends its tokens too.
    """
    now = now or utcnow()
    with db.reading() as session:
        client = session.scalars(select(ApiClient).where(ApiClient.name == client_id,
                                                         ApiClient.active.is_(True))).first()
        if client is None or not hmac.compare_digest(client.key_hash, key_hash(secret)):
            return None
        payload = f"{client.name}.{int((now + TOKEN_LIFETIME).timestamp())}"
        return f"{TOKEN_PREFIX}{payload}.{_token_signature(client.key_hash, payload)}", int(
            TOKEN_LIFETIME.total_seconds())


def _client_of_token(session, token: str, now: datetime) -> ApiClient | None:
    parts = token.removeprefix(TOKEN_PREFIX).rsplit(".", 2)  # a name may hold dots; the rest cannot
    if len(parts) != 3:
        return None
    name, expiry, signature = parts
    if not expiry.isdigit() or int(expiry) <= now.timestamp():
        return None
    client = session.scalars(select(ApiClient).where(ApiClient.name == name, ApiClient.active.is_(True))).first()
    if client is None or not hmac.compare_digest(signature, _token_signature(client.key_hash, f"{name}.{expiry}")):
        return None
    return client


def authenticate(db: Database, credential: str, now: datetime | None = None) -> str | None:
    """The actor (`fhir:<name>`) of an active client's API key or unexpired access token, else None.
    `last_used_at` is refreshed at most once a minute, so reads stay reads.
    """
    now = now or utcnow()
    with db.reading() as session:
        if credential.startswith(KEY_PREFIX):
            client = session.scalars(
                select(ApiClient).where(ApiClient.key_hash == key_hash(credential), ApiClient.active.is_(True))
            ).first()
        elif credential.startswith(TOKEN_PREFIX):
            client = _client_of_token(session, credential, now)
        else:
            client = None
        if client is None:
            return None
        client_id, name, last = client.id, client.name, client.last_used_at
    if last is None or now - last > USED_RESOLUTION:
        with db.transaction() as session:
            session.get(ApiClient, client_id).last_used_at = now
    return f"fhir:{name}"
