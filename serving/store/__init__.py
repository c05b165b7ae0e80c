"""The store: SQLAlchemy tables, Alembic migrations and plain functions over a ``Session``.

Writers: ``sanling score`` (units, score runs, scores, event history), ``sanling token create``
(tokens), township staff through the pages (follow-ups, responsible persons — audited).
Readers: the API and the pages. Open with :func:`serving.store.db.init_db` and
:func:`serving.store.db.session_scope`.
"""

from sanling.serving.store.audit import list_audit, record_audit
from sanling.serving.store.db import init_db, make_engine, session_scope
from sanling.serving.store.errors import RecordNotFound
from sanling.serving.store.followups import (
    create_followup,
    delete_followup,
    get_followup,
    latest_followups,
    list_followups,
    update_followup,
)
from sanling.serving.store.history import event_months_for, open_events_for, replace_event_history
from sanling.serving.store.outcomes import forecast_history, observed_for, replace_observed_tiers
from sanling.serving.store.scope import Scope
from sanling.serving.store.scores import (
    get_score,
    latest_as_of,
    latest_run,
    list_runs,
    previous_score,
    risk_list,
    save_scores,
    unit_history,
)
from sanling.serving.store.sessions import end_session, open_session, principal_for_session
from sanling.serving.store.tokens import (
    Principal,
    create_token,
    list_tokens,
    principal_for,
    revoke_token,
)
from sanling.serving.store.units import (
    existing_unit_ids,
    get_unit,
    list_townships,
    set_responsible_person,
    upsert_units,
)

__all__ = [
    "Principal",
    "RecordNotFound",
    "Scope",
    "create_followup",
    "create_token",
    "delete_followup",
    "end_session",
    "event_months_for",
    "existing_unit_ids",
    "forecast_history",
    "get_followup",
    "get_score",
    "get_unit",
    "init_db",
    "latest_as_of",
    "latest_followups",
    "latest_run",
    "list_audit",
    "list_followups",
    "list_runs",
    "list_tokens",
    "list_townships",
    "make_engine",
    "observed_for",
    "open_events_for",
    "open_session",
    "previous_score",
    "principal_for",
    "principal_for_session",
    "record_audit",
    "replace_event_history",
    "replace_observed_tiers",
    "revoke_token",
    "risk_list",
    "save_scores",
    "session_scope",
    "set_responsible_person",
    "unit_history",
    "update_followup",
    "upsert_units",
]
