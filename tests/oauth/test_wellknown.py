"""Discovery and the JWKS answered in front of Flask (``oauth/wellknown.py``,
``WellKnownAnswer``): the same answer as Flask's, and Flask for every request the shortcut
cannot answer alike. The JWKS shortcut counts the rate limit as Flask does, and a worker's
copy of a JWKS always holds the key a rotation on another worker starts signing with."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from login_site import tenancy
from login_site.models import SigningKey
from login_site.models import Tenant
from login_site.models import TenantHost
from login_site.oauth import discovery
from login_site.oauth import keys
from login_site.oauth import wellknown
from login_site.vault import Keyring
from tests.conftest import T1
from tests.conftest import T2
from tests.conftest import make_app

PATH = discovery.PATH
PATHS = [discovery.PATH, wellknown.JWKS_PATH]
# Counted per request: the rest of the headers must be Flask's exactly.
RATE_HEADERS = ("X-RateLimit-Remaining", "X-RateLimit-Reset")


def count_flask_calls(answer) -> list[str]:
    """The paths of the requests that reached Flask behind the shortcut."""
    assert isinstance(answer, wellknown.WellKnownAnswer)
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
    get(client, path=wellknown.JWKS_PATH)
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
        before = kids(get(client_b, path=wellknown.JWKS_PATH))
        assert kids(get(client_b, path=wellknown.JWKS_PATH)) == before
        assert len(b_calls) == 1

        change_keys(app, lambda db, tenant, ring: keys.rotate(db, tenant, ring))
        with app.extensions["login_site.sessionmaker"]() as db:
            tenant = db.execute(select(Tenant).where(Tenant.name == "t1")).scalar_one()
            signing_kid = keys.current_key(db, tenant.id).kid
        stale = get(client_b, path=wellknown.JWKS_PATH)
        assert len(b_calls) == 1  # still B's copy...
        assert kids(stale) == before and signing_kid in before  # ...which has the new key

        now[0] += tenancy.TENANT_CACHE_SECONDS + 0.01
        fresh = kids(get(client_b, path=wellknown.JWKS_PATH))
        assert len(b_calls) == 2  # a newer version: read again, through Flask
        assert fresh == published(app, "t1") and len(fresh) == len(before) + 1
        assert kids(get(client_b, path=wellknown.JWKS_PATH)) == fresh
        assert len(b_calls) == 2
    finally:
        worker_b.extensions["login_site.engine"].dispose()


def test_a_revocation_by_this_worker_leaves_its_jwks_at_once(backend, app, flask_calls):
    client = app.test_client(use_cookies=False)
    get(client, path=wellknown.JWKS_PATH)
    next_kid = published(app, "t1")[-1]
    assert next_kid in kids(get(client, path=wellknown.JWKS_PATH))

    def revoke_next(db, tenant, _ring):
        db.get(SigningKey, next_kid).state = "revoked"

    change_keys(app, revoke_next)
    assert next_kid not in kids(get(client, path=wellknown.JWKS_PATH))
    assert kids(get(client, path=wellknown.JWKS_PATH)) == published(app, "t1")
    # The tenant cache was emptied by the change: the tenant, then the document, read again.
    assert len(flask_calls) == 2


def test_the_shortcut_counts_the_jwks_rate_limit_and_flask_refuses_past_it(app, tmp_path):
    limited = make_app(app.config["DATABASE_URL"], tmp_path / "limited", RATE_LIMIT_JWKS="3/minute")
    try:
        calls = count_flask_calls(limited.wsgi_app)
        client = limited.test_client(use_cookies=False)
        answers = [get(client, path=wellknown.JWKS_PATH) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert all(a.headers["X-RateLimit-Limit"] == "3" for a in answers)
        assert int(answers[3].headers["Retry-After"]) >= 1
        assert answers[3].json["error"] == "too_many_requests"
        assert len(calls) == 2  # the first (nothing cached yet) and the refused one
        # Another tenant from the same address has counters of its own.
        assert get(client, path=wellknown.JWKS_PATH, host=T2).status_code == 200
    finally:
        limited.extensions["login_site.engine"].dispose()
