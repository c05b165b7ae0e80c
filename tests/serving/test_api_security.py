"""Token hashing and the signed session cookie the pages use."""

from __future__ import annotations

import stat
import time

from sanling.serving.security import hash_token, load_secret_key, new_token, read_session, sign_session


def test_tokens_are_random_and_hashed():
    a, b = new_token(), new_token()
    assert a != b and len(a) >= 43
    assert len(hash_token(a)) == 64 and hash_token(a) == hash_token(a) != hash_token(b)


def test_secret_key_is_generated_once_with_mode_0600(tmp_path):
    key = load_secret_key(tmp_path)
    path = tmp_path / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret_key(tmp_path) == key and len(key) >= 48
    assert load_secret_key(tmp_path, "configured") == "configured"


def test_session_cookie_round_trip_forgery_and_expiry():
    cookie = sign_session("sid-7", "k1")
    assert read_session(cookie, "k1") == "sid-7"
    assert read_session(cookie, "k2") is None
    assert read_session(cookie + "x", "k1") is None
    assert read_session("", "k1") is None and read_session(None, "k1") is None
    time.sleep(1.1)
    assert read_session(cookie, "k1", max_age=0) is None
