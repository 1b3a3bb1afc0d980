# -*- test-case-name: tests.test_db_schema -*-
"""
The C{services} table, as SQLAlchemy Core metadata.

The columns, their types and the two unique constraints are Nova's (see
C{nova/db/main/models.py} C{Service}); the DDL works on SQLite, PostgreSQL and
MySQL/MariaDB. Timestamps are naive UTC. On MySQL/MariaDB they are
C{DATETIME(6)} so that microseconds survive as they do on the other two
databases (Nova's plain C{DATETIME} rounds them away there). What a store may
write to it is in L{novasvc.db.rules}.
"""

from typing import Any

import sqlalchemy as sa

from novasvc.db.rules import MAX_STRING_LENGTH

metadata = sa.MetaData()


class _Timestamp(sa.types.TypeDecorator):
    """
    C{DateTime}, with microsecond precision (C{DATETIME(6)}) on
    MySQL/MariaDB; the other dialects keep microseconds anyway. The MySQL
    dialect is imported only when it is the one in use.
    """

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            from sqlalchemy.dialects import mysql

            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())


#: The C{services} table. C{deleted} is C{0} for a live row and the row's
#: C{id} once soft-deleted, which is what lets the unique constraints on
#: (C{host}, C{binary}, C{deleted}) and (C{host}, C{topic}, C{deleted}) accept
#: a new live row after the old one was deleted.
services = sa.Table(
    "services",
    metadata,
    sa.Column("created_at", _Timestamp()),
    sa.Column("updated_at", _Timestamp()),
    sa.Column("deleted_at", _Timestamp()),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(36), nullable=True),
    sa.Column("host", sa.String(MAX_STRING_LENGTH)),
    sa.Column("binary", sa.String(MAX_STRING_LENGTH)),
    sa.Column("topic", sa.String(MAX_STRING_LENGTH)),
    sa.Column(
        "report_count", sa.Integer, nullable=False, default=0, server_default=sa.text("0")
    ),
    sa.Column("disabled", sa.Boolean, default=False, server_default=sa.false()),
    sa.Column("disabled_reason", sa.String(MAX_STRING_LENGTH)),
    sa.Column("last_seen_up", _Timestamp(), nullable=True),
    sa.Column("forced_down", sa.Boolean, default=False, server_default=sa.false()),
    sa.Column("version", sa.Integer, default=0, server_default=sa.text("0")),
    sa.Column("deleted", sa.Integer, default=0, server_default=sa.text("0")),
    sa.UniqueConstraint("host", "topic", "deleted", name="uniq_services0host0topic0deleted"),
    sa.UniqueConstraint("host", "binary", "deleted", name="uniq_services0host0binary0deleted"),
    sa.Index("services_uuid_idx", "uuid", unique=True),
)

# InnoDB and utf8mb4 on MySQL/MariaDB (as Nova's tables). Said as DDL run after
# the CREATE there, not as mysql_* table options: those would load the MySQL
# dialect in every process, whatever its database.
sa.event.listen(
    services,
    "after_create",
    sa.DDL("ALTER TABLE services ENGINE=InnoDB, CONVERT TO CHARACTER SET utf8mb4").execute_if(
        dialect=("mysql", "mariadb")
    ),
)
