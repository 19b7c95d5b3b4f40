"""Discovery, the JWKS and userinfo answered in front of Flask (``oauth/fastpath.py``,
``FastPath``): the same answer as Flask's, and Flask for every request the shortcut
cannot answer alike. The shortcut counts rate limits as Flask does, once per request
whoever answers it, and a worker's copy of a JWKS always holds the key a rotation on another
worker starts signing with."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from login_site import tenancy
from login_site.db import utcnow
from login_site.models import AccessToken
from login_site.models import SigningKey
from login_site.models import Tenant
from login_site.models import TenantHost
from login_site.models import User
from login_site.oauth import discovery
from login_site.oauth import fastpath
from login_site.oauth import keys
from login_site.oauth import userinfo as userinfo_module
from login_site.security.secrets import sha256_hex
from login_site.vault import Keyring
from tests.conftest import T1
from tests.conftest import T2
from tests.conftest import login_code
from tests.conftest import make_app
from tests.conftest import redeem

PATH = discovery.PATH
PATHS = [discovery.PATH, fastpath.JWKS_PATH]
# Counted per request: the rest of the headers must be Flask's exactly.
RATE_HEADERS = ("X-RateLimit-Remaining", "X-RateLimit-Reset")


def count_flask_calls(answer) -> list[str]:
    """The paths of the requests that reached Flask behind the shortcut."""
    assert isinstance(answer, fastpath.FastPath)
    calls = []
    inner = answer.wsgi_app

    def counted(environ, start_response):
        calls.append(environ["PATH_INFO"])
        return inner(environ, start_response)

    answer.wsgi_app = counted
    return calls


@pytest.fixture
def flask_calls(app):
    return count_flask_calls(app.wsgi_app)


def get(
    client, host: str = T1, scheme: str = "http", method: str = "GET", path: str = PATH, **headers
):
    return client.open(path, method=method, base_url=f"{scheme}://{host}", headers=headers)


def without_counts(response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.to_wsgi_list() if k not in RATE_HEADERS]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_the_shortcut_answers_exactly_as_flask_does(app, flask_calls, scheme, path):
    client = app.test_client(use_cookies=False)
    # A cookie, even one that is not ours, sends the request through Flask.
    cookie = {"X-Request-Id": "req-1", "Cookie": "other=1"}
    by_flask = get(client, scheme=scheme, path=path, **cookie)
    assert len(flask_calls) == 1
    shortcut = get(client, scheme=scheme, path=path, **{"X-Request-Id": "req-1"})
    assert len(flask_calls) == 1
    assert shortcut.status == by_flask.status == "200 OK"
    assert shortcut.get_data() == by_flask.get_data()
    assert without_counts(shortcut) == without_counts(by_flask)
    assert ("Strict-Transport-Security" in shortcut.headers) is (scheme == "https")
    if path == PATH:
        assert shortcut.json["issuer"] == f"{scheme}://{T1}/"
        assert shortcut.headers.to_wsgi_list() == by_flask.headers.to_wsgi_list()
    else:
        # One counter for both: the shortcut counted this request after Flask's.
        remaining = [int(r.headers["X-RateLimit-Remaining"]) for r in (by_flask, shortcut)]
        assert remaining[1] in (remaining[0] - 1, int(by_flask.headers["X-RateLimit-Limit"]) - 1)
        assert [k["kid"] for k in shortcut.json["keys"]] == published(app, "t1")


@pytest.mark.parametrize("path", PATHS)
def test_the_shortcut_makes_a_request_id_unless_given_a_plain_one(app, flask_calls, path):
    client = app.test_client(use_cookies=False)
    get(client, path=path)
    bad = {"X-Request-Id": "bad id\x7f"}
    ids = {get(client, path=path, **bad).headers["X-Request-Id"] for _ in range(3)}
    assert len(flask_calls) == 1
    assert len(ids) == 3 and all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)


@pytest.mark.parametrize("path", PATHS)
def test_flask_answers_what_the_shortcut_cannot(app, flask_calls, path):
    client = app.test_client(use_cookies=False)
    assert get(client, path=path).status_code == 200  # the tenant is not cached yet
    assert get(client, path=path, host="unknown.test").status_code == 404
    assert get(client, path=path, method="HEAD").status_code == 200
    assert get(client, path=path, method="POST").status_code == 405
    assert get(client, path=path, Cookie="login_site_session=x").status_code == 200
    assert len(flask_calls) == 5
    assert get(client, path=path).status_code == 200
    assert get(client, path=path, host="T1.TEST.").status_code == 200  # spelled otherwise
    assert len(flask_calls) == 5


@pytest.mark.parametrize("path", PATHS)
def test_flask_reads_the_tenant_again_once_its_cache_entry_expired(app, flask_calls, path):
    cache = app.extensions[tenancy.CACHE]
    now = [0.0]
    cache.clock = lambda: now[0]
    client = app.test_client(use_cookies=False)
    get(client, path=path)
    get(client, path=path)
    assert len(flask_calls) == 1
    now[0] += tenancy.TENANT_CACHE_SECONDS + 0.01
    get(client, path=path)
    get(client, path=path)
    assert len(flask_calls) == 2


@pytest.mark.parametrize("path", PATHS)
def test_a_host_removed_by_this_process_is_not_answered_by_the_shortcut(
    backend, app, flask_calls, db, path
):
    client = app.test_client(use_cookies=False)
    assert get(client, path=path).status_code == get(client, path=path).status_code == 200
    db.delete(db.get(TenantHost, T1))
    db.commit()
    assert get(client, path=path).status_code == 404
    assert get(client, path=path, host=T2).status_code == 200


def test_arbitrary_hosts_grow_no_cache(app):
    client = app.test_client(use_cookies=False)
    get(client)
    documents = discovery.document.cache_info().currsize
    tenants = len(app.extensions[tenancy.CACHE]._entries)
    get(client, path=fastpath.JWKS_PATH)
    jwks_documents = dict(app.extensions[keys.JWKS_DOCUMENTS])
    for i in range(50):
        for path in PATHS:
            assert get(client, path=path, host=f"h{i}.example").status_code == 404
            assert get(client, path=path, host=f"{T1}:{1000 + i}").status_code == 404
    assert discovery.document.cache_info().currsize == documents
    assert app.extensions[keys.JWKS_DOCUMENTS] == jwks_documents
    assert len(app.extensions[tenancy.CACHE]._entries) == tenants


def test_the_shortcut_sees_the_scheme_a_trusted_proxy_forwarded(app, tmp_path):
    proxied = make_app(app.config["DATABASE_URL"], tmp_path, PROXY_FIX_X_PROTO=1)
    try:
        flask_calls = count_flask_calls(proxied.wsgi_app.app)  # behind ProxyFix
        client = proxied.test_client(use_cookies=False)
        for _ in range(2):  # through Flask, then the shortcut
            response = get(client, **{"X-Forwarded-Proto": "https"})
            assert response.json["issuer"] == f"https://{T1}/"
            assert "Strict-Transport-Security" in response.headers
        assert len(flask_calls) == 1
    finally:
        proxied.extensions["login_site.engine"].dispose()


# --- JWKS -----------------------------------------------------------------------------------


def published(app, tenant: str) -> list[str]:
    """The tenant's published kids as stored, oldest first (the JWKS order)."""
    with app.extensions["login_site.sessionmaker"]() as db:
        return list(
            db.execute(
                select(SigningKey.kid)
                .join(Tenant)
                .where(Tenant.name == tenant, SigningKey.state.in_(keys.PUBLISHED_STATES))
                .order_by(SigningKey.created_at)
            ).scalars()
        )


def change_keys(app, action) -> None:
    """``action(db, tenant, ring)`` on t1's keys in a transaction of its own, committed."""
    with app.extensions["login_site.sessionmaker"]() as db:
        tenant = db.execute(select(Tenant).where(Tenant.name == "t1")).scalar_one()
        action(db, tenant, Keyring(app.config["ENCRYPTION_KEYS"]))
        db.commit()


def kids(response) -> list[str]:
    assert response.status_code == 200
    return [k["kid"] for k in response.json["keys"]]


def test_a_rotation_on_another_worker_signs_only_with_a_key_this_worker_publishes(
    backend, app, tmp_path
):
    """Worker B keeps its JWKS for up to a tenant-cache period after worker A rotates; the key
    A then signs with was in B's copy all along, as the next key."""
    worker_b = make_app(app.config["DATABASE_URL"], tmp_path / "b")
    try:
        cache = worker_b.extensions[tenancy.CACHE]
        now = [0.0]
        cache.clock = lambda: now[0]
        b_calls = count_flask_calls(worker_b.wsgi_app)
        client_b = worker_b.test_client(use_cookies=False)
        before = kids(get(client_b, path=fastpath.JWKS_PATH))
        assert kids(get(client_b, path=fastpath.JWKS_PATH)) == before
        assert len(b_calls) == 1

        change_keys(app, lambda db, tenant, ring: keys.rotate(db, tenant, ring))
        with app.extensions["login_site.sessionmaker"]() as db:
            tenant = db.execute(select(Tenant).where(Tenant.name == "t1")).scalar_one()
            signing_kid = keys.current_key(db, tenant.id).kid
        stale = get(client_b, path=fastpath.JWKS_PATH)
        assert len(b_calls) == 1  # still B's copy...
        assert kids(stale) == before and signing_kid in before  # ...which has the new key

        now[0] += tenancy.TENANT_CACHE_SECONDS + 0.01
        fresh = kids(get(client_b, path=fastpath.JWKS_PATH))
        assert len(b_calls) == 2  # a newer version: read again, through Flask
        assert fresh == published(app, "t1") and len(fresh) == len(before) + 1
        assert kids(get(client_b, path=fastpath.JWKS_PATH)) == fresh
        assert len(b_calls) == 2
    finally:
        worker_b.extensions["login_site.engine"].dispose()


def test_a_revocation_by_this_worker_leaves_its_jwks_at_once(backend, app, flask_calls):
    client = app.test_client(use_cookies=False)
    get(client, path=fastpath.JWKS_PATH)
    next_kid = published(app, "t1")[-1]
    assert next_kid in kids(get(client, path=fastpath.JWKS_PATH))

    def revoke_next(db, tenant, _ring):
        db.get(SigningKey, next_kid).state = "revoked"

    change_keys(app, revoke_next)
    assert next_kid not in kids(get(client, path=fastpath.JWKS_PATH))
    assert kids(get(client, path=fastpath.JWKS_PATH)) == published(app, "t1")
    # The tenant cache was emptied by the change: the tenant, then the document, read again.
    assert len(flask_calls) == 2


def test_the_shortcut_counts_the_jwks_rate_limit_and_flask_refuses_past_it(app, tmp_path):
    limited = make_app(app.config["DATABASE_URL"], tmp_path / "limited", RATE_LIMIT_JWKS="3/minute")
    try:
        calls = count_flask_calls(limited.wsgi_app)
        client = limited.test_client(use_cookies=False)
        answers = [get(client, path=fastpath.JWKS_PATH) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert all(a.headers["X-RateLimit-Limit"] == "3" for a in answers)
        assert int(answers[3].headers["Retry-After"]) >= 1
        assert answers[3].json["error"] == "too_many_requests"
        assert len(calls) == 2  # the first (nothing cached yet) and the refused one
        # Another tenant from the same address has counters of its own.
        assert get(client, path=fastpath.JWKS_PATH, host=T2).status_code == 200
    finally:
        limited.extensions["login_site.engine"].dispose()


# --- userinfo -------------------------------------------------------------------------------


def access_token(client, **params) -> str:
    return redeem(client, login_code(client, **params)).json["access_token"]


def userinfo(client, token: str, method: str = "GET", host: str = T1, **headers):
    return get(
        client,
        host=host,
        method=method,
        path=fastpath.USERINFO_PATH,
        Authorization=f"Bearer {token}",
        **headers,
    )


@pytest.mark.parametrize("scope", ["openid profile email", "openid email"])
def test_userinfo_by_the_shortcut_is_flasks_answer(backend, app, client, flask_calls, scope):
    token = access_token(client, scope=scope)
    bare = app.test_client(use_cookies=False)
    calls = len(flask_calls)
    by_flask = userinfo(bare, token, **{"X-Request-Id": "req-1", "Cookie": "other=1"})
    shortcut = userinfo(bare, token, **{"X-Request-Id": "req-1"})
    assert len(flask_calls) == calls + 1
    assert shortcut.status == by_flask.status == "200 OK"
    assert shortcut.get_data() == by_flask.get_data()
    assert without_counts(shortcut) == without_counts(by_flask)
    assert shortcut.headers["Cache-Control"] == "no-store"
    profile = {"name", "nickname", "picture", "given_name", "family_name", "updated_at"}
    expected = {"sub", "email", "email_verified"} | (profile if "profile" in scope else set())
    assert set(shortcut.json) == expected
    remaining = [int(r.headers["X-RateLimit-Remaining"]) for r in (by_flask, shortcut)]
    assert remaining[1] == remaining[0] - 1  # one counter, counted once each


def test_flask_answers_userinfo_requests_the_shortcut_cannot(app, client, flask_calls):
    token = access_token(client)
    bare = app.test_client(use_cookies=False)
    calls = len(flask_calls)
    origin = {"Origin": "https://app.test"}
    answers = {
        "post": userinfo(bare, token, method="POST"),
        "origin": userinfo(bare, token, **origin),
        "bad token": userinfo(bare, "nope"),
        "other tenant": userinfo(bare, token, host=T2),
        "no token": get(bare, path=fastpath.USERINFO_PATH),
        "basic": get(bare, path=fastpath.USERINFO_PATH, Authorization="Basic eDp5"),
    }
    assert len(flask_calls) == calls + len(answers)
    assert answers["post"].json == answers["origin"].json
    assert answers["origin"].headers["Vary"] == "Origin, Cookie"
    for name in ("bad token", "other tenant", "no token", "basic"):
        assert answers[name].status_code == 401, name
        assert answers[name].json["error"] == "invalid_token"
        assert answers[name].headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("change", ["revoked", "blocked", "expired", "user deleted"])
def test_a_token_that_no_longer_works_goes_to_flask_for_its_401(
    backend, app, client, flask_calls, db, change
):
    token = access_token(client)
    bare = app.test_client(use_cookies=False)
    assert userinfo(bare, token).status_code == 200
    calls = len(flask_calls)
    row = db.execute(
        select(AccessToken).where(AccessToken.token_hash == sha256_hex(token))
    ).scalar_one()
    if change == "revoked":
        row.revoked_at = utcnow()
    elif change == "expired":
        row.expires_at = utcnow() - timedelta(seconds=1)
    elif change == "blocked":
        db.get(User, row.user_pk).blocked = True
    else:
        db.delete(db.get(User, row.user_pk))
    db.commit()
    response = userinfo(bare, token)
    assert response.status_code == 401 and response.json["error"] == "invalid_token"
    assert len(flask_calls) == calls + 1


def test_userinfo_is_counted_once_whoever_answers_and_refused_past_its_limit(app, tmp_path):
    limited = make_app(
        app.config["DATABASE_URL"], tmp_path / "limited", RATE_LIMIT_USERINFO="3/minute"
    )
    try:
        calls = count_flask_calls(limited.wsgi_app)
        token = access_token(limited.test_client())
        bare = limited.test_client(use_cookies=False)
        del calls[:]
        answers = [
            userinfo(bare, token),  # the shortcut
            userinfo(bare, token, Origin="https://elsewhere.test"),  # Flask
            userinfo(bare, token),
            userinfo(bare, token),  # over the limit: Flask's 429
        ]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert int(answers[3].headers["Retry-After"]) >= 1
        assert answers[3].json["error"] == "too_many_requests"
        assert calls == ["/userinfo"] * 2  # the Origin one and the refused one
        # A bad token is counted once too, though Flask answers it.
        assert userinfo(bare, "nope").headers["X-RateLimit-Remaining"] == "2"
    finally:
        limited.extensions["login_site.engine"].dispose()


def test_a_failing_database_in_the_shortcut_leaves_the_answer_to_flask(
    app, client, flask_calls, monkeypatch
):
    token = access_token(client)
    bare = app.test_client(use_cookies=False)

    def database_down(*_args):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(userinfo_module, "answer_outside_flask", database_down)
    calls = len(flask_calls)
    response = userinfo(bare, token)
    assert response.status_code == 200 and response.json["sub"].startswith("auth0|")
    assert len(flask_calls) == calls + 1
