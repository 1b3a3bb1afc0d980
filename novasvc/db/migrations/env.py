# -*- test-case-name: tests.test_db_migration -*-
"""
The Alembic environment of novasvc's migrations.

novasvc drives Alembic from code (L{novasvc.db.migration.sync}, behind
C{novasvc-manage db sync}): no C{alembic.ini} is needed, and this
environment runs on the connection it is given in
C{config.attributes["connection"]}, inside the caller's transaction (the
caller commits). Offline (C{--sql}) mode is not offered.

Writing a revision: add C{versions/NNNN_<what>.py} with C{revision =
"NNNN"} and C{down_revision} the previous one, and append C{"NNNN"} to
L{novasvc.db.migration.REVISIONS} (a test holds the two in step). The
statements of a revision are written out in full, never taken from
L{novasvc.db.schema}, which describes only the newest schema.
"""

from alembic import context

from novasvc.db import schema


def _run() -> None:
    connection = context.config.attributes.get("connection")
    if context.is_offline_mode() or connection is None:
        raise RuntimeError(
            "novasvc's migrations run on a connection given by "
            "novasvc.db.migration.sync (novasvc-manage db sync)"
        )
    context.configure(
        connection=connection,
        target_metadata=schema.metadata,
        # SQLite cannot ALTER most things: let later revisions use
        # batch_alter_table, which copies the table.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


_run()
