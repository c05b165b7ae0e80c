"""Forecast vs outcome: relative risk, conformal tier set and reporting intensity on each score,
backfilled runs marked, and the observed tier of every scored month's window.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scores") as batch:
        batch.add_column(sa.Column("relative_red", sa.Float(), nullable=True))
        batch.add_column(sa.Column("relative_orange", sa.Float(), nullable=True))
        batch.add_column(sa.Column("tier_set", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("reporting", sa.JSON(), nullable=True))
    with op.batch_alter_table("score_runs") as batch:
        batch.add_column(sa.Column("backfilled", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "observed_tiers",
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("as_of", sa.String(7), nullable=False),
        sa.Column("tier", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("unit_id", "as_of", name="pk_observed_tiers"),
    )


def downgrade() -> None:
    op.drop_table("observed_tiers")
    with op.batch_alter_table("score_runs") as batch:
        batch.drop_column("backfilled")
    with op.batch_alter_table("scores") as batch:
        batch.drop_column("reporting")
        batch.drop_column("tier_set")
        batch.drop_column("relative_orange")
        batch.drop_column("relative_red")
