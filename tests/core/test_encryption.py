"""Encryption at rest: message bodies and media files are unreadable on disk, readable through the
clinic with any configured key, and `clinic crypto rotate` moves them to the newest key.
"""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from cryptography.fernet import Fernet

from clinic import crypto, migrate
from clinic.db import Database
from clinic.models import InboundMessage
from clinic.settings import settings
from clinic.whatsapp import store
from clinic.whatsapp.webhook import parse

CLINIC = str(Path(sys.executable).with_name("clinic"))
PAYLOADS = Path(__file__).parent.parent / "whatsapp" / "payloads"
SECRET = "Ho la febbre alta da tre giorni e una macchia rossa sul braccio"
PHOTO = b"\xff\xd8\xff\xe0 a photo of a rash"
AT = "2026-11-26 09:00:00.000000"
KEY_A, KEY_B = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def use_keys(monkeypatch, keys: str) -> None:
    monkeypatch.setenv("ENCRYPTION_KEYS", keys)
    settings.cache_clear()


def text_webhook():
    payload = json.loads((PAYLOADS / "text.json").read_text(encoding="utf-8"))
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = SECRET
    return parse(payload)


def raw_database(path: Path) -> bytes:
    """Every byte SQLite wrote (the file after a checkpoint), as someone with the disk would see it."""
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.read_bytes()


def read_back(db: Database, media: Path) -> tuple[str, bytes]:
    with db.reading() as session:
        row = session.query(InboundMessage).one()
        return row.rasa_text, crypto.read_file(media)


def test_data_under_key_a_is_read_with_b_a_and_after_rotate_with_b_alone(monkeypatch, tmp_path):
    database_file, media_dir = tmp_path / "clinic.db", tmp_path / "media"
    url = f"sqlite:///{database_file}"
    use_keys(monkeypatch, KEY_A)
    migrate.upgrade(url, "heads")
    db = Database(url)
    store.save(db, text_webhook())
    media = media_dir / "1" / "1.jpg"
    crypto.write_file(media, PHOTO)
    report = tmp_path / "results" / "1.pdf"
    crypto.write_file(report, b"%PDF-1.4 rash")
    assert SECRET.encode() not in raw_database(database_file)
    assert b"rash" not in media.read_bytes() and b"rash" not in report.read_bytes()

    use_keys(monkeypatch, f"{KEY_B},{KEY_A}")  # a new key in front: the old data still reads
    assert read_back(db, media) == (SECRET, PHOTO)

    done = subprocess.run(
        [CLINIC, "crypto", "rotate"], capture_output=True, text=True, timeout=120,
        env={**os.environ, "DATABASE_URL": url, "MEDIA_DIR": str(media_dir), "RESULTS_DIR": str(report.parent),
             "ENCRYPTION_KEYS": f"{KEY_B},{KEY_A}"},
    )
    assert done.returncode == 0, done.stderr
    assert "2 files" in done.stdout  # the photo and the result PDF

    use_keys(monkeypatch, KEY_B)  # the old key dropped
    assert read_back(db, media) == (SECRET, PHOTO)
    assert crypto.read_file(report) == b"%PDF-1.4 rash"
    use_keys(monkeypatch, KEY_A)  # and the old key alone no longer reads anything
    with pytest.raises(crypto.InvalidToken):
        read_back(db, media)
    assert SECRET.encode() not in raw_database(database_file)
    db.dispose()


def test_the_migration_encrypts_what_was_stored_in_plaintext_and_the_downgrade_decrypts(monkeypatch, tmp_path):
    database_file, media_dir = tmp_path / "clinic.db", tmp_path / "media"
    url = f"sqlite:///{database_file}"
    use_keys(monkeypatch, KEY_A)
    monkeypatch.setenv("MEDIA_DIR", str(media_dir))
    migrate.upgrade(url, "0006")
    with sqlite3.connect(database_file) as connection:  # what the code before 0010 wrote
        connection.execute("INSERT INTO contacts (id, wa_id, created_at) VALUES (1, '393471234567', ?)", (AT,))
        connection.execute(
            "INSERT INTO inbound_messages (wamid, contact_id, phone_number_id, type, payload, rasa_text, sent_at, "
            "received_at, status, attempts) VALUES ('wamid.1', 1, '1', 'text', ?, ?, ?, ?, "
            "'handled', 1)", (json.dumps({"text": {"body": SECRET}}), SECRET, AT, AT))
        connection.execute(
            "INSERT INTO outbound_messages (contact_id, kind, body, source, status, attempts, next_attempt_at, "
            "created_at) VALUES (1, 'image', ?, 'inbox:rossi', 'queued', 0, ?, ?)",
            (json.dumps({"type": "image", "image": {"local_path": str(media_dir / "outbound" / "x.jpg")}}), AT, AT))
    (media_dir / "outbound").mkdir(parents=True)
    (media_dir / "outbound" / "x.jpg").write_bytes(PHOTO)

    migrate.upgrade(url, "0010")
    assert SECRET.encode() not in raw_database(database_file)
    assert crypto.read_file(media_dir / "outbound" / "x.jpg") == PHOTO
    with sqlite3.connect(database_file) as connection:  # read as the models do: a JSON string holding a token
        payload, rasa_text = connection.execute("SELECT payload, rasa_text FROM inbound_messages").fetchone()
        (body,) = connection.execute("SELECT body FROM outbound_messages").fetchone()
    assert crypto.decrypt_text(rasa_text) == SECRET
    assert json.loads(crypto.decrypt_text(json.loads(payload))) == {"text": {"body": SECRET}}
    body = json.loads(crypto.decrypt_text(json.loads(body)))
    assert body["image"]["local_encrypted"] is True  # the client decrypts the file before uploading

    command.downgrade(migrate.alembic_config(url), "0006")
    with sqlite3.connect(database_file) as connection:
        assert connection.execute("SELECT rasa_text FROM inbound_messages").fetchone() == (SECRET,)
    assert (media_dir / "outbound" / "x.jpg").read_bytes() == PHOTO
