"""Alembic environment, run programmatically by :func:`serving.store.db.upgrade` (which passes an open
connection in ``config.attributes``). With the ``alembic`` command line, set ``sqlalchemy.url``."""

from __future__ import annotations

from alembic import context

from sanling.serving.store.tables import Base

config = context.config


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from sanling.serving.store.db import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        _run(conn)
