"""encrypt messages: message bodies, ticket summaries and notes, and the media directory's files

The columns keep their types (`clinic.models.EncryptedJSON` stores one encrypted JSON string in the
JSON column, `EncryptedText` a token in the text column), so only the data changes: every plaintext
value is encrypted with the newest key of ENCRYPTION_KEYS, every plaintext file under MEDIA_DIR too
(and the outbox rows still to upload one are told it is encrypted). Values already encrypted are
left, so a rerun after a failure is harmless. The downgrade decrypts it all again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 09:30:00.000000
"""

import json
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from clinic import crypto
from clinic.settings import settings

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

# table → (JSON columns, text columns) holding patient data
COLUMNS = {
    "inbound_messages": (("payload",), ("rasa_text",)),
    "outbound_messages": (("body",), ()),
    "handoff_tickets": (("summary",), ()),
    "ticket_notes": ((), ("text",)),
}
LOCAL_PATH, LOCAL_ENCRYPTED = "local_path", "local_encrypted"


def _is_token(value: str) -> bool:
    try:
        crypto.decrypt_text(value)
        return True
    except (crypto.InvalidToken, ValueError):
        return False


def _encrypt_json(value):
    return value if isinstance(value, str) and _is_token(value) else crypto.encrypt_text(json.dumps(value))


def _decrypt_json(value):
    return json.loads(crypto.decrypt_text(value)) if isinstance(value, str) and _is_token(value) else value


def _encrypt_text(value: str) -> str:
    return value if _is_token(value) else crypto.encrypt_text(value)


def _decrypt_text(value: str) -> str:
    return crypto.decrypt_text(value) if _is_token(value) else value


def _convert(json_value, text_value) -> None:
    connection = op.get_bind()
    for name, (json_columns, text_columns) in COLUMNS.items():
        table = sa.table(name, sa.column("id", sa.Integer),
                         *(sa.column(c, sa.JSON) for c in json_columns),
                         *(sa.column(c, sa.Text) for c in text_columns))
        for row in connection.execute(sa.select(table)).mappings().all():
            values = {c: json_value(row[c]) for c in json_columns if row[c] is not None}
            values.update({c: text_value(row[c]) for c in text_columns if row[c] is not None})
            if values:
                connection.execute(sa.update(table).where(table.c.id == row["id"]).values(**values))


def _flag_outbox_files(encrypted: bool) -> None:
    """Outbox rows (still plaintext) whose local file is under MEDIA_DIR: the client decrypts it before uploading."""
    root = settings().media_dir.resolve()
    connection = op.get_bind()
    table = sa.table("outbound_messages", sa.column("id", sa.Integer), sa.column("kind", sa.String),
                     sa.column("body", sa.JSON))
    for row in connection.execute(sa.select(table)).mappings().all():
        body = row["body"]
        media = body.get(row["kind"]) if isinstance(body, dict) else None
        if not isinstance(media, dict) or LOCAL_PATH not in media:
            continue
        if root not in Path(media[LOCAL_PATH]).resolve().parents:
            continue
        media = {k: v for k, v in media.items() if k != LOCAL_ENCRYPTED}
        if encrypted:
            media[LOCAL_ENCRYPTED] = True
        connection.execute(sa.update(table).where(table.c.id == row["id"]).values(body={**body, row["kind"]: media}))


def _files(encrypt: bool) -> None:
    root = settings().media_dir
    for path in sorted(root.rglob("*")) if root.is_dir() else []:
        if not path.is_file() or path.name.endswith(".part"):
            continue
        data = path.read_bytes()
        try:
            plain = crypto.decrypt(data)
        except crypto.InvalidToken:
            plain = None
        if encrypt and plain is None:
            crypto.write_file(path, data)
        elif not encrypt and plain is not None:
            path.write_bytes(plain)


def upgrade() -> None:
    _flag_outbox_files(encrypted=True)
    _convert(_encrypt_json, _encrypt_text)
    _files(encrypt=True)


def downgrade() -> None:
    _files(encrypt=False)
    _convert(_decrypt_json, _decrypt_text)
    _flag_outbox_files(encrypted=False)
