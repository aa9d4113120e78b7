"""The Alembic migrations build, from an empty database, exactly the schema the models describe."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from clinic import migrate
from clinic.db import make_engine
from clinic.models import metadata


def test_migrations_from_empty_match_the_models_and_downgrade_cleanly(any_db):
    metadata.drop_all(any_db.engine)
    migrate.upgrade(any_db.url)
    engine = make_engine(any_db.url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []
    assert {"appointments", "slots", "contact_patients", "waitlist_entries"} <= set(inspect(engine).get_table_names())
    migrate.upgrade(any_db.url)  # running it again is a no-op
    from alembic import command

    command.downgrade(migrate.alembic_config(any_db.url), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
