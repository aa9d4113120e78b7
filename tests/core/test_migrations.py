"""The Alembic migrations build, from an empty database, exactly the schema the models describe."""

import sqlite3

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from clinic import migrate
from clinic.db import Database, make_engine
from clinic.demo import seed
from clinic.models import Contact, InboundMessage, metadata, utcnow
from tests.conftest import DEMO_TODAY
from tests.outreach.conftest import book


def test_migrations_from_empty_match_the_models_and_downgrade_cleanly(any_db):
    metadata.drop_all(any_db.engine)
    migrate.upgrade(any_db.url)
    engine = make_engine(any_db.url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []
    assert {"appointments", "slots", "contact_patients", "waitlist_entries"} <= set(inspect(engine).get_table_names())
    migrate.upgrade(any_db.url)  # running it again is a no-op
    command.downgrade(migrate.alembic_config(any_db.url), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_downgrading_keeps_the_messages_and_appointments_already_stored(tmp_path):
    """A downgrade that rebuilt a referenced table on SQLite would cascade-delete what refers to it."""
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    migrate.upgrade(url)
    db = Database(url)
    seed(db, today=DEMO_TODAY)
    book(db)
    with db.transaction() as session:
        contact = session.scalars(select(Contact)).first()
        session.add(InboundMessage(wamid="wamid.keep", contact_id=contact.id, phone_number_id="1", type="text",
                                   payload={}, sent_at=utcnow()))
    db.dispose()
    command.downgrade(migrate.alembic_config(url), "0006")
    with sqlite3.connect(tmp_path / "clinic.db") as connection:
        counts = [connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                  for table in ("inbound_messages", "appointments", "contacts", "specialties")]
    assert counts[:2] == [1, 1] and all(counts)
