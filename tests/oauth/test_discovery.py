"""Discovery answered in front of Flask (``oauth/discovery.py``, ``DiscoveryAnswer``): the same
answer as Flask's, and Flask for every request the shortcut cannot answer alike."""

from __future__ import annotations

import re

import pytest

from login_site import tenancy
from login_site.models import TenantHost
from login_site.oauth import discovery
from tests.conftest import T1
from tests.conftest import T2
from tests.conftest import make_app

PATH = "/.well-known/openid-configuration"


def count_flask_calls(answer) -> list[str]:
    """The paths of the requests that reached Flask behind the shortcut."""
    assert isinstance(answer, discovery.DiscoveryAnswer)
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


def get(client, host: str = T1, scheme: str = "http", method: str = "GET", **headers):
    return client.open(PATH, method=method, base_url=f"{scheme}://{host}", headers=headers)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_the_shortcut_answers_exactly_as_flask_does(app, flask_calls, scheme):
    client = app.test_client(use_cookies=False)
    # A cookie, even one that is not ours, sends the request through Flask.
    by_flask = get(client, scheme=scheme, **{"X-Request-Id": "req-1", "Cookie": "other=1"})
    assert len(flask_calls) == 1
    shortcut = get(client, scheme=scheme, **{"X-Request-Id": "req-1"})
    assert len(flask_calls) == 1
    assert shortcut.status == by_flask.status == "200 OK"
    assert shortcut.get_data() == by_flask.get_data()
    assert shortcut.headers.to_wsgi_list() == by_flask.headers.to_wsgi_list()
    assert shortcut.json["issuer"] == f"{scheme}://{T1}/"
    assert ("Strict-Transport-Security" in shortcut.headers) is (scheme == "https")


def test_the_shortcut_makes_a_request_id_unless_given_a_plain_one(app, flask_calls):
    client = app.test_client(use_cookies=False)
    get(client)
    ids = {get(client, **{"X-Request-Id": "bad id\x7f"}).headers["X-Request-Id"] for _ in range(3)}
    assert len(flask_calls) == 1
    assert len(ids) == 3 and all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)


def test_flask_answers_what_the_shortcut_cannot(app, flask_calls):
    client = app.test_client(use_cookies=False)
    assert get(client).status_code == 200  # the tenant is not cached yet
    assert get(client, host="unknown.test").status_code == 404
    assert get(client, method="HEAD").status_code == 200
    assert get(client, method="POST").status_code == 405
    assert get(client, Cookie="login_site_session=x").status_code == 200
    assert len(flask_calls) == 5
    assert get(client).status_code == 200
    assert get(client, host="T1.TEST.").status_code == 200  # the same host, spelled otherwise
    assert len(flask_calls) == 5


def test_flask_reads_the_tenant_again_once_its_cache_entry_expired(app, flask_calls):
    cache = app.extensions[tenancy.CACHE]
    now = [0.0]
    cache.clock = lambda: now[0]
    client = app.test_client(use_cookies=False)
    get(client)
    get(client)
    assert len(flask_calls) == 1
    now[0] += tenancy.TENANT_CACHE_SECONDS + 0.01
    get(client)
    get(client)
    assert len(flask_calls) == 2


def test_a_host_removed_by_this_process_is_not_answered_by_the_shortcut(
    backend, app, flask_calls, db
):
    client = app.test_client(use_cookies=False)
    assert get(client).status_code == get(client).status_code == 200
    db.delete(db.get(TenantHost, T1))
    db.commit()
    assert get(client).status_code == 404
    assert get(client, host=T2).status_code == 200


def test_arbitrary_hosts_grow_no_cache(app):
    client = app.test_client(use_cookies=False)
    get(client)
    documents = discovery.document.cache_info().currsize
    tenants = len(app.extensions[tenancy.CACHE]._entries)
    for i in range(50):
        assert get(client, host=f"h{i}.example").status_code == 404
        assert get(client, host=f"{T1}:{1000 + i}").status_code == 404
    assert discovery.document.cache_info().currsize == documents
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
