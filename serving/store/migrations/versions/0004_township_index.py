"""An index on ``units(county, township)``: a township's risk list reads its units by the pair first
(together with planner statistics, :func:`serving.store.db.refresh_statistics`), instead of walking
the risk-ordered scores of every unit of the month (issue 13, measured in docs/operations.md "Load").

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_units_county_township", "units", ["county", "township"])


def downgrade() -> None:
    op.drop_index("ix_units_county_township", table_name="units")
