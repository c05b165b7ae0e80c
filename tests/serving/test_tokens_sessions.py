"""Token lifecycle (expiry, list, revoke from the command line) and page sessions that end on the
server (logout) and are bound to the token's hash (issue 13)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from api_world import bearer, build_world
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from sanling.serving.security import SESSION_COOKIE
from sanling.serving.store import create_token, session_scope
from sanling.serving.store.tables import Token, utcnow


def _sign_in(c, token: str) -> str:
    r = c.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
    r = c.post("/login", data={"token": token, "csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    return r.cookies.get(SESSION_COOKIE) or c.cookies.get(SESSION_COOKIE)


def test_logout_ends_the_session_on_the_server(world):
    with TestClient(world.app, raise_server_exceptions=False) as c:
        cookie = _sign_in(c, world.tokens["township"])
        page = c.get("/list")
        assert page.status_code == 200
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        assert c.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    with TestClient(world.app, raise_server_exceptions=False) as thief:  # a copy of the old cookie
        thief.cookies.set(SESSION_COOKIE, cookie)
        r = thief.get("/list", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert thief.get("/v1/risk-list").status_code == 401


def test_a_store_reset_does_not_map_old_cookies_onto_new_tokens(tmp_path):
    first = build_world(tmp_path / "a", with_scorer=False)
    with TestClient(first.app) as c:
        cookie = _sign_in(c, first.tokens["analyst"])
    # A fresh store under the same secret key: the new analyst token gets the same id.
    second = build_world(tmp_path / "b", with_scorer=False)
    assert second.token_ids["analyst"] == first.token_ids["analyst"]
    with TestClient(second.app, raise_server_exceptions=False) as c:
        c.cookies.set(SESSION_COOKIE, cookie)
        assert c.get("/list", follow_redirects=False).status_code == 303
        assert c.get("/v1/risk-list").status_code == 401


def test_tokens_expire(world):
    with session_scope(world.engine) as s:
        raw = create_token(s, "service", expires_days=30)
    with TestClient(world.app, raise_server_exceptions=False) as c:
        assert c.get("/v1/risk-list", headers=bearer(raw)).status_code == 200
        with session_scope(world.engine) as s:
            t = s.query(Token).order_by(Token.id.desc()).first()
            t.expires_at = utcnow() - timedelta(seconds=1)
        assert c.get("/v1/risk-list", headers=bearer(raw)).status_code == 401


def test_token_commands_create_list_and_revoke(tmp_path, monkeypatch):
    from sanling.pipeline.cli import app

    world = build_world(tmp_path, with_scorer=False)
    monkeypatch.setenv("SANLING_HOME", str(tmp_path))
    monkeypatch.delenv("SANLING_DATABASE_URL", raising=False)
    run = CliRunner().invoke
    r = run(
        app,
        [
            "token",
            "create",
            "--role",
            "township",
            "--township",
            "城关镇",
            "--county",
            "清徐县",
            "--expires-days",
            "7",
            "--name",
            "王五",
        ],
    )
    assert r.exit_code == 0, r.output
    raw = r.output.strip().splitlines()[-1]
    listing = run(app, ["token", "list"])
    assert listing.exit_code == 0 and raw not in listing.output
    line = next(x for x in listing.output.splitlines() if "王五" in x)
    assert "清徐县/城关镇" in line and "active" in line
    token_id = int(line.split()[0])
    with TestClient(world.app, raise_server_exceptions=False) as c:
        assert c.get("/v1/risk-list", headers=bearer(raw)).status_code == 200
        assert run(app, ["token", "revoke", str(token_id)]).exit_code == 0
        assert c.get("/v1/risk-list", headers=bearer(raw)).status_code == 401
    again = run(app, ["token", "revoke", str(token_id)])
    assert again.exit_code != 0
    assert "revoked" in next(x for x in run(app, ["token", "list"]).output.splitlines() if "王五" in x)


@pytest.mark.parametrize("days", ["0", "-3", "100000"])
def test_expires_days_out_of_range_is_one_line(tmp_path, monkeypatch, days):
    from sanling.pipeline.cli import app

    monkeypatch.setenv("SANLING_HOME", str(tmp_path))
    r = CliRunner().invoke(app, ["token", "create", "--role", "service", "--expires-days", days])
    assert r.exit_code != 0


def test_a_burst_with_one_token_writes_last_used_once(world):
    """The stall found under load: every request of a burst wrote last_used_at and queued on
    SQLite's write lock. Now the process claims the write once per interval."""
    from sqlalchemy import event

    from sanling.serving.store.tokens import principal_for

    updates: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith("UPDATE TOKENS"):
            updates.append(statement)

    event.listen(world.engine, "before_cursor_execute", count)
    try:
        with session_scope(world.engine) as s:
            raw = create_token(s, "service")
        for _ in range(5):
            with session_scope(world.engine) as s:
                assert principal_for(s, raw) is not None
    finally:
        event.remove(world.engine, "before_cursor_execute", count)
    assert len(updates) == 1
