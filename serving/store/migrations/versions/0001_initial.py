"""The initial store: units, score runs, scores, event history, tokens, follow-ups, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "units",
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("unit_name", sa.String(200), nullable=False),
        sa.Column("unit_type", sa.String(16), nullable=False),
        sa.Column("township", sa.String(100), nullable=False),
        sa.Column("county", sa.String(100), nullable=False),
        sa.Column("city", sa.String(100), nullable=False),
        sa.Column("responsible_person", sa.String(100), nullable=True),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("unit_id", name="pk_units"),
    )
    op.create_index("ix_units_township", "units", ["township"])
    op.create_index("ix_units_county", "units", ["county"])

    op.create_table(
        "score_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("as_of", sa.String(7), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("data_dir", sa.Text(), nullable=True),
        sa.Column("n_units", sa.Integer(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("drift_warnings", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_score_runs"),
    )
    op.create_index("ix_score_runs_as_of_model_version", "score_runs", ["as_of", "model_version"])

    op.create_table(
        "scores",
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("as_of", sa.String(7), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("p_blue", sa.Float(), nullable=False),
        sa.Column("p_yellow", sa.Float(), nullable=False),
        sa.Column("p_orange", sa.Float(), nullable=False),
        sa.Column("p_red", sa.Float(), nullable=False),
        sa.Column("tier", sa.String(8), nullable=False),
        sa.Column("risk_score", sa.Float(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("protective", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("unit_id", "as_of", "model_version", name="pk_scores"),
    )
    op.create_index(
        "ix_scores_as_of_model_version_risk_score", "scores", ["as_of", "model_version", "risk_score"]
    )
    op.create_index("ix_scores_unit_id", "scores", ["unit_id"])

    op.create_table(
        "event_months",
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("unit_id", "month", "category", name="pk_event_months"),
    )

    op.create_table(
        "open_events",
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("subtype", sa.String(100), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=True),
        sa.Column("severity", sa.Integer(), nullable=True),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_open_events"),
    )
    op.create_index("ix_open_events_unit_id", "open_events", ["unit_id"])

    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("township", sa.String(100), nullable=True),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.Column("last_used_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_tokens_token_hash"),
    )

    op.create_table(
        "followups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("township", sa.String(100), nullable=False),
        sa.Column("screened_on", sa.Date(), nullable=True),
        sa.Column("person", sa.String(100), nullable=True),
        sa.Column("findings", sa.Text(), nullable=True),
        sa.Column("measures", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["unit_id"], ["units.unit_id"], name="fk_followups_unit_id_units"),
        sa.PrimaryKeyConstraint("id", name="pk_followups"),
    )
    op.create_index("ix_followups_unit_id", "followups", ["unit_id"])
    op.create_index("ix_followups_township", "followups", ["township"])

    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("entity_id", sa.String(128), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit"),
    )
    op.create_index("ix_audit_at", "audit", ["at"])
    op.create_index("ix_audit_entity_entity_id", "audit", ["entity", "entity_id"])


def downgrade() -> None:
    for table in (
        "audit",
        "followups",
        "tokens",
        "open_events",
        "event_months",
        "scores",
        "score_runs",
        "units",
    ):
        op.drop_table(table)
