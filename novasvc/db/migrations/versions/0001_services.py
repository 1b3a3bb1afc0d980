# -*- test-case-name: tests.test_db_migration -*-
"""
The C{services} table as novasvc first made it (Nova's columns, see
L{novasvc.db.schema}), written out in full so that later changes to the
schema module leave this revision as it was.

Revision ID: 0001
Revises: (none)
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# host, binary, topic, disabled_reason: novasvc.db.rules.MAX_STRING_LENGTH then.
_STRING = 255


def _timestamp() -> sa.types.TypeEngine:
    # Microseconds on MySQL/MariaDB too (DATETIME(6)).
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "services",
        sa.Column("created_at", _timestamp()),
        sa.Column("updated_at", _timestamp()),
        sa.Column("deleted_at", _timestamp()),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.String(36), nullable=True),
        sa.Column("host", sa.String(_STRING)),
        sa.Column("binary", sa.String(_STRING)),
        sa.Column("topic", sa.String(_STRING)),
        sa.Column("report_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("disabled", sa.Boolean, server_default=sa.false()),
        sa.Column("disabled_reason", sa.String(_STRING)),
        sa.Column("last_seen_up", _timestamp(), nullable=True),
        sa.Column("forced_down", sa.Boolean, server_default=sa.false()),
        sa.Column("version", sa.Integer, server_default=sa.text("0")),
        sa.Column("deleted", sa.Integer, server_default=sa.text("0")),
        sa.UniqueConstraint("host", "topic", "deleted", name="uniq_services0host0topic0deleted"),
        sa.UniqueConstraint("host", "binary", "deleted", name="uniq_services0host0binary0deleted"),
    )
    op.create_index("services_uuid_idx", "services", ["uuid"], unique=True)
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        op.execute("ALTER TABLE services ENGINE=InnoDB, CONVERT TO CHARACTER SET utf8mb4")


def downgrade() -> None:
    op.drop_index("services_uuid_idx", table_name="services")
    op.drop_table("services")
