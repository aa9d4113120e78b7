"""The audit trail: entries chain, every kind of tampering is named, concurrent appends keep one chain."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import DatabaseError

from clinic import audit, cli
from clinic.db import Database
from clinic.models import AuditEntry

T0 = datetime(2027, 3, 1, 8, 0, tzinfo=timezone.utc)


def fill(db: Database, count: int = 6, start: datetime = T0) -> None:
    for i in range(count):
        with db.transaction() as session:
            audit.record(session, "staff.view", actor=f"staff:{i}", subject=f"ticket:{i}", data={"ticket_id": i},
                         now=start + timedelta(hours=i))


def tamper(db: Database, *statements: str) -> None:
    """Raw SQL by someone who first gets the append-only triggers out of the way."""
    with db.engine.begin() as connection:
        if db.engine.dialect.name == "postgresql":
            connection.exec_driver_sql("ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_append_only")
        else:
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS audit_entries_no_update")
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS audit_entries_no_delete")
        for statement in statements:
            connection.exec_driver_sql(statement)


def row(db: Database, seq: int) -> dict:
    with db.reading() as session:
        return audit.as_dict(session.get(AuditEntry, seq))


def forged(seq: int, prev_hash: str, at: datetime = T0) -> tuple[str, str]:
    """A well-made forgery: a correct hash over its own fields and a real predecessor's hash."""
    data = {"ticket_id": 99}
    digest = audit.digest(seq, at, "staff.view", "staff:99", "ticket:99", data, prev_hash)
    stamp = at.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    values = (f"({seq}, '{stamp}', 'staff.view', 'staff:99', 'ticket:99', '{json.dumps(data)}', "
              f"'{prev_hash}', '{digest}')")
    return values, digest


INSERT = "INSERT INTO audit_entries (seq, at, kind, actor, subject, data, prev_hash, hash) VALUES "


def test_entries_chain_and_verify(any_db):
    assert audit.verify(any_db).ok and audit.verify(any_db).entries == 0
    fill(any_db, 3)
    verdict = audit.verify(any_db)
    assert (verdict.ok, verdict.entries) == (True, 3)
    first, second = row(any_db, 1), row(any_db, 2)
    assert first["prev_hash"] == audit.GENESIS and second["prev_hash"] == first["hash"]
    assert str(verdict) == f"ok, 3 entries, head {row(any_db, 3)['hash']}"
    assert first["at"] == "2027-03-01T08:00:00.000000Z" and first["data"] == {"ticket_id": 0}


def test_an_entry_rolls_back_with_its_transaction(any_db):
    fill(any_db, 1)
    with pytest.raises(RuntimeError), any_db.transaction() as session:
        audit.record(session, "staff.view", actor="staff:1", data={"ticket_id": 1})
        raise RuntimeError("the change failed")
    fill(any_db, 1)
    assert audit.verify(any_db).entries == 2 and audit.verify(any_db).ok


def test_keys_that_would_hold_patient_data_are_refused(db):
    with db.transaction() as session:
        for data in ({"text": "hello"}, {"new": {"first_name": "Luca"}}, {"at": datetime(2027, 1, 1)}, {"x": object()}):
            with pytest.raises(audit.AuditError):
                audit.record(session, "message.inbound", actor="bot", data=data)


def test_the_database_refuses_updates_and_deletes(any_db):
    fill(any_db, 2)
    for statement in ("UPDATE audit_entries SET actor = 'x' WHERE seq = 1", "DELETE FROM audit_entries WHERE seq = 2"):
        with pytest.raises(DatabaseError, match="append-only"), any_db.engine.begin() as connection:
            connection.exec_driver_sql(statement)
    assert audit.verify(any_db).ok


@pytest.mark.parametrize("field, value", [
    ("data", "'{\"ticket_id\": 7}'"), ("actor", "'staff:7'"), ("kind", "'staff.claim'"),
    ("at", "'2027-03-01 08:30:00.000000'"),
])
def test_an_altered_field_is_named(any_db, field, value):
    fill(any_db)
    tamper(any_db, f"UPDATE audit_entries SET {field} = {value} WHERE seq = 3")
    verdict = audit.verify(any_db)
    assert (verdict.ok, verdict.seq) == (False, 3)
    assert verdict.problem == "entry 3 was altered: its content does not match its hash"


def test_an_altered_and_rehashed_entry_is_named(any_db):
    fill(any_db)
    entry = row(any_db, 3)
    at = datetime.fromisoformat(entry["at"].replace("Z", "+00:00"))
    rehashed = audit.digest(3, at, entry["kind"], "staff:7", entry["subject"], entry["data"], entry["prev_hash"])
    tamper(any_db, f"UPDATE audit_entries SET actor = 'staff:7', hash = '{rehashed}' WHERE seq = 3")
    verdict = audit.verify(any_db)
    assert (verdict.seq, verdict.problem) == (3, "entry 3 was altered and re-hashed: entry 4 does not follow it")


def test_a_deleted_middle_entry_is_named(any_db):
    fill(any_db)
    tamper(any_db, "DELETE FROM audit_entries WHERE seq = 3")
    assert audit.verify(any_db).problem == "entry 3 is missing (deleted)"


def test_deleted_entries_hidden_by_renumbering_are_named(any_db):
    fill(any_db)
    tamper(any_db, "DELETE FROM audit_entries WHERE seq IN (3, 4)",
           "UPDATE audit_entries SET seq = seq + 100 WHERE seq > 4",
           "UPDATE audit_entries SET seq = seq - 102 WHERE seq > 100")
    assert audit.verify(any_db).problem == "entries 3-4 are missing (deleted)"


def test_deleted_last_entries_are_named(any_db):
    fill(any_db)
    tamper(any_db, "DELETE FROM audit_entries WHERE seq = 6")
    verdict = audit.verify(any_db)
    assert (verdict.seq, verdict.problem) == (6, "entry 6 is missing (deleted from the end)")
    tamper(any_db, "DELETE FROM audit_entries WHERE seq >= 4")
    assert audit.verify(any_db).problem == "entries 4-6 are missing (deleted from the end)"


def test_a_forged_entry_at_the_end_is_named(any_db):
    fill(any_db)
    values, _ = forged(7, row(any_db, 6)["hash"])
    tamper(any_db, INSERT + values)
    assert audit.verify(any_db).problem == "entry 7 is not in the chain head (inserted after the end)"


def test_a_forged_entry_in_the_middle_is_named(any_db):
    fill(any_db)
    values, _ = forged(3, row(any_db, 2)["hash"])
    tamper(any_db, "UPDATE audit_entries SET seq = seq + 100 WHERE seq >= 3",
           "UPDATE audit_entries SET seq = seq - 99 WHERE seq > 100", INSERT + values)
    verdict = audit.verify(any_db)
    assert (verdict.seq, verdict.problem) == (3, "entry 3 was inserted: entry 4 (originally 3) follows entry 2")


def test_a_clumsy_forgery_is_named_inserted(any_db):
    fill(any_db)
    tamper(any_db, "UPDATE audit_entries SET seq = seq + 100 WHERE seq >= 3",
           "UPDATE audit_entries SET seq = seq - 99 WHERE seq > 100",
           INSERT + f"(3, '2027-03-01 08:00:00', 'staff.view', 'staff:9', NULL, '{{}}', '{'1' * 64}', '{'2' * 64}')")
    assert audit.verify(any_db).problem == "entry 3 was inserted: entry 4 follows entry 2"


def test_swapped_entries_are_named(any_db):
    fill(any_db)
    tamper(any_db, "UPDATE audit_entries SET seq = 100 WHERE seq = 3", "UPDATE audit_entries SET seq = 3 WHERE seq = 5",
           "UPDATE audit_entries SET seq = 5 WHERE seq = 100")
    verdict = audit.verify(any_db)
    assert (verdict.seq, verdict.problem) == (3, "entries reordered: entry 3 (originally 5) belongs after entry 4")


def test_swapped_neighbours_are_named(any_db):
    fill(any_db)
    tamper(any_db, "UPDATE audit_entries SET seq = 100 WHERE seq = 3", "UPDATE audit_entries SET seq = 3 WHERE seq = 4",
           "UPDATE audit_entries SET seq = 4 WHERE seq = 100")
    assert audit.verify(any_db).problem == "entries reordered: entry 3 (originally 4) belongs after entry 4"


def test_a_deleted_chain_head_is_named(any_db):
    fill(any_db, 2)
    tamper(any_db, "DELETE FROM audit_head")
    assert audit.verify(any_db).problem == "the chain head is missing"


def test_concurrent_appends_keep_one_chain(any_db):
    writers, each = 8, 15
    barrier = threading.Barrier(writers)

    def write(n: int) -> None:
        own = Database(any_db.url)
        try:
            barrier.wait()
            for i in range(each):
                with own.transaction() as session:
                    audit.record(session, "staff.view", actor=f"staff:{n}", data={"ticket_id": i})
        finally:
            own.dispose()

    with ThreadPoolExecutor(max_workers=writers) as pool:
        list(pool.map(write, range(writers)))
    verdict = audit.verify(any_db)
    assert (verdict.ok, verdict.entries) == (True, writers * each), verdict


def test_export_writes_json_lines_of_the_days_asked(any_db, tmp_path, monkeypatch, capsys):
    fill(any_db, 6, start=datetime(2027, 3, 1, 20, 0, tzinfo=timezone.utc))  # 21:00 .. 02:00 in Rome
    lines = list(audit.export(any_db, datetime(2027, 3, 1, 23, 0, tzinfo=timezone.utc),
                              datetime(2027, 3, 2, 23, 0, tzinfo=timezone.utc)))
    entries = [json.loads(line) for line in lines]
    assert [e["seq"] for e in entries] == [4, 5, 6]
    assert set(entries[0]) == {"seq", "at", "kind", "actor", "subject", "data", "prev_hash", "hash"}
    assert entries[1]["prev_hash"] == entries[0]["hash"]

    monkeypatch.setenv("DATABASE_URL", any_db.url)
    from clinic.db import database

    database.cache_clear()
    try:
        out = tmp_path / "audit.jsonl"
        assert cli.main(["audit", "export", "--from", "2027-03-02", "--to", "2027-03-02", "--output", str(out)]) == 0
        assert [json.loads(line)["seq"] for line in out.read_text().splitlines()] == [4, 5, 6]
        assert cli.main(["audit", "export", "--from", "2027-03-01", "--to", "2027-03-01"]) == 0
        assert [json.loads(line)["seq"] for line in capsys.readouterr().out.splitlines()] == [1, 2, 3]
        assert cli.main(["audit", "verify"]) == 0
        assert capsys.readouterr().out.startswith("ok, 6 entries, head ")
        tamper(any_db, "DELETE FROM audit_entries WHERE seq = 2")
        assert cli.main(["audit", "verify"]) == 1
        assert capsys.readouterr().err.strip() == "clinic: error: audit trail broken: entry 2 is missing (deleted)"
    finally:
        database().dispose()
        database.cache_clear()


def test_a_migrated_database_refuses_edits_too(any_db):
    from alembic import command

    from clinic import migrate
    from clinic.models import metadata

    metadata.drop_all(any_db.engine)
    migrate.upgrade(any_db.url)
    try:
        fill(any_db, 2)
        with pytest.raises(DatabaseError, match="append-only"), any_db.engine.begin() as connection:
            connection.exec_driver_sql("UPDATE audit_entries SET actor = 'x' WHERE seq = 1")
        assert audit.verify(any_db).ok
    finally:  # the PostgreSQL database is shared by the session's tests: leave no alembic_version behind
        command.downgrade(migrate.alembic_config(any_db.url), "base")
