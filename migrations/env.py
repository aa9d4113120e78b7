"""Alembic environment: migrates the database named by the caller's config or DATABASE_URL."""

from alembic import context

from clinic.db import make_engine
from clinic.models import metadata
from clinic.settings import settings


def run_migrations() -> None:
    url = context.config.get_main_option("sqlalchemy.url") or settings().database_url
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `clinic db upgrade`")
run_migrations()
