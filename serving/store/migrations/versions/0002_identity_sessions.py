"""Township identity, token lifecycle, page sessions and several data folders (issue 13).

* ``tokens.county`` — a township is (county, township); existing township tokens get the county of
  their township when the name is unique in the store (an ambiguous one stays empty and is refused);
* ``tokens.expires_at`` — ``sanling token create --expires-days``;
* ``sessions`` — the pages' sign-ins, ended server-side on logout and bound to the token's hash;
* ``units.source`` / ``units.active`` — the data folder a unit was last scored from, and whether it
  is still in that folder's registry.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("tokens") as b:
        b.add_column(sa.Column("county", sa.String(100), nullable=True))
        b.add_column(sa.Column("expires_at", TZ, nullable=True))
    op.execute(
        "UPDATE tokens SET county = (SELECT MIN(u.county) FROM units u WHERE u.township = tokens.township) "
        "WHERE role = 'township' AND county IS NULL AND "
        "(SELECT COUNT(DISTINCT u.county) FROM units u WHERE u.township = tokens.township) = 1"
    )
    with op.batch_alter_table("units") as b:
        b.add_column(sa.Column("source", sa.Text(), nullable=True))
        b.add_column(sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("ended_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(["token_id"], ["tokens.id"], name="fk_sessions_token_id_tokens"),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
    )
    op.create_index("ix_sessions_token_id", "sessions", ["token_id"])


def downgrade() -> None:
    op.drop_index("ix_sessions_token_id", table_name="sessions")
    op.drop_table("sessions")
    with op.batch_alter_table("units") as b:
        b.drop_column("active")
        b.drop_column("source")
    with op.batch_alter_table("tokens") as b:
        b.drop_column("expires_at")
        b.drop_column("county")
