"""/login/callback as the checklist's §1.K and §2.7 attack it: each case is a safe rejection
(a readable page or an OAuth error at the registered redirect URI) and nobody is logged in."""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest

from login_site.connections.oidc import JWKS_REFETCH_MIN_SECONDS
from login_site.models import LoginSession
from login_site.models import UpstreamMetadata
from login_site.models import User
from tests.conftest import T1
from tests.conftest import count
from tests.conftest import redeem
from tests.management.conftest import api as api  # noqa: F401 - fixture
from tests.social.conftest import call_back
from tests.social.conftest import code_from
from tests.social.conftest import go_upstream
from tests.social.conftest import id_claims
from tests.social.conftest import provider_answer
from tests.social.conftest import round_trip


@pytest.fixture
def oidc(connect, fresh_upstream):
    fresh_upstream.add_user("1001", email="ann@example.test", email_verified=True, name="Ann")
    return connect("oidc", name="corp-oidc")


@pytest.fixture
def github(connect, fresh_upstream):
    fresh_upstream.add_user("1001", login="ann", email="ann@example.test", email_verified=True)
    return connect("github", name="gh")


def assert_rejected_page(app, response, error: str | None = None):
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    assert "Location" not in response.headers
    body = response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    for leak in ("Traceback", "sqlalchemy", "upstream-secret"):
        assert leak not in body
    if error:
        assert f'data-error="{error}"' in body
    assert count(app, LoginSession) == 0


def assert_app_error(response, error: str):
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    location = response.headers["Location"]
    assert location.startswith("https://app.test/cb?"), location
    assert f"error={error}" in location and "state=st-123" in location


# --- state: present, bound to this browser, single use (UP-01, SC-01…SC-03) -----------------


def test_callback_without_state_is_refused(app, client, github):
    response = client.get("/login/callback?code=abc", base_url=f"http://{T1}")
    assert_rejected_page(app, response, "invalid_state")


def test_callback_in_another_browser_is_refused(app, client, github):
    method, fields = provider_answer(go_upstream(client, github), "1001")
    victim = app.test_client()  # another cookie jar
    assert_rejected_page(app, call_back(victim, method, fields), "invalid_state")


def test_callback_works_once(app, client, github):
    method, fields = provider_answer(go_upstream(client, github), "1001")
    first = call_back(client, method, fields)
    assert first.status_code == 302 and "code=" in first.headers["Location"]
    sessions = count(app, LoginSession)
    second = call_back(client, method, fields)
    assert second.status_code == 400
    assert count(app, LoginSession) == sessions


def test_a_tampered_state_secret_is_refused(app, client, github):
    method, fields = provider_answer(go_upstream(client, github), "1001")
    tx_id, _, secret = fields["state"].partition(".")
    fields["state"] = f"{tx_id}.{secret[:-2]}xx"
    assert_rejected_page(app, call_back(client, method, fields), "invalid_state")


def test_an_injected_code_fails_our_pkce(app, client, github, fresh_upstream):
    """SC-04: the attacker's code (issued for the attacker's PKCE challenge) pasted into the
    victim's callback: the provider refuses our verifier, nobody is logged in."""
    attacker = app.test_client()
    _, attacker_fields = provider_answer(go_upstream(attacker, github), "1001")
    _, victim_fields = provider_answer(go_upstream(client, github), "1001")
    injected = {"code": attacker_fields["code"], "state": victim_fields["state"]}
    assert_rejected_page(app, call_back(client, "GET", injected), "upstream_rejected")


# --- ID token validation (UP-03, UP-04, SC-05…SC-09) -----------------------------------------


@pytest.mark.parametrize(
    "knobs",
    [
        {"id_token_overrides": {"aud": "other-client"}},
        {"id_token_overrides": {"iss": "http://127.0.0.1:1/elsewhere"}},
        {"id_token_overrides": {"nonce": "not-ours"}},
        {"id_token_overrides": {"nonce": None}},
        {"id_token_overrides": {"exp": int(time.time()) - 3600}},
        {"id_token_overrides": {"iat": int(time.time()) + 3600}},
        {"id_token_overrides": {"aud": ["login-site-t1", "other"], "azp": "other"}},
        {"id_token_alg": "none"},
        {"id_token_alg": "HS256-pubkey"},
        {"id_token_kid": "unpublished"},
    ],
    ids=[
        "wrong-aud",
        "wrong-iss",
        "wrong-nonce",
        "no-nonce",
        "expired",
        "issued-in-future",
        "foreign-azp",
        "alg-none",
        "hs256-with-public-key",
        "unknown-kid",
    ],
)
def test_a_bad_upstream_id_token_logs_nobody_in(app, client, oidc, fresh_upstream, knobs):
    fresh_upstream.knobs.update(knobs)
    users = count(app, User)
    trip = round_trip(client, oidc, "1001")
    assert_rejected_page(app, trip.response, "upstream_rejected")
    assert count(app, User) == users


def test_an_iss_from_another_provider_is_a_mix_up(app, client, oidc, fresh_upstream):
    fresh_upstream.knobs.update(send_iss=True, iss_value=fresh_upstream.issuer("google"))
    assert_rejected_page(app, round_trip(client, oidc, "1001").response, "upstream_rejected")


def test_the_right_iss_in_the_response_is_accepted(client, oidc, fresh_upstream):
    fresh_upstream.knobs.update(send_iss=True)
    code_from(round_trip(client, oidc, "1001"))


def _jwks_fetches(up) -> int:
    return sum(1 for e in up.metadata_log if e["path"].endswith("/jwks"))


def _age_cached_metadata(app, seconds: int) -> None:
    """Time passes for the cached discovery/JWKS row (no clock to inject in a server)."""
    with app.extensions["login_site.sessionmaker"]() as db:
        for row in db.query(UpstreamMetadata):
            row.fetched_at = row.fetched_at - timedelta(seconds=seconds)
        db.commit()


def test_a_rotated_upstream_key_is_fetched_once(app, client, oidc, fresh_upstream):
    code_from(round_trip(client, oidc, "1001"))  # JWKS now cached
    fresh_upstream.rotate_signing_key(drop_old=True)
    _age_cached_metadata(app, JWKS_REFETCH_MIN_SECONDS + 1)
    before = _jwks_fetches(fresh_upstream)
    code_from(round_trip(app.test_client(), oidc, "1001"))
    assert _jwks_fetches(fresh_upstream) == before + 1
    code_from(round_trip(app.test_client(), oidc, "1001"))  # cached again
    assert _jwks_fetches(fresh_upstream) == before + 1


def test_unknown_kids_cannot_make_us_refetch_in_a_loop(app, client, oidc, fresh_upstream):
    code_from(round_trip(client, oidc, "1001"))
    before = _jwks_fetches(fresh_upstream)
    for kid in ("k1", "k2", "k3"):
        fresh_upstream.knobs["id_token_kid"] = kid
        assert round_trip(app.test_client(), oidc, "1001").response.status_code == 400
    assert _jwks_fetches(fresh_upstream) == before  # fetched moments ago: not again


# --- upstream refusals and outages (UP-06, UP-07, SC-12…SC-16) -------------------------------


def test_cancel_at_the_provider_is_access_denied_at_the_application(client, github):
    trip = round_trip(client, github, "1001", decision="deny")
    assert_app_error(trip.response, "access_denied")


def test_a_slow_provider_is_temporarily_unavailable(app, client, github, fresh_upstream):
    app.config["UPSTREAM_READ_TIMEOUT_SECONDS"] = 1.0
    fresh_upstream.knobs["token_delay_seconds"] = 4
    started = time.monotonic()
    trip = round_trip(client, github, "1001")
    assert time.monotonic() - started < 4
    assert_app_error(trip.response, "temporarily_unavailable")


def test_a_provider_error_page_is_a_server_error(client, github, fresh_upstream):
    fresh_upstream.knobs["token_status"] = 500
    trip = round_trip(client, github, "1001")
    assert_app_error(trip.response, "server_error")
    assert "oops" not in trip.response.headers["Location"]


def test_a_huge_answer_is_cut_off(app, client, github, fresh_upstream):
    fresh_upstream.knobs["huge_token_response"] = True
    assert_app_error(round_trip(client, github, "1001").response, "server_error")
    assert count(app, LoginSession) == 0


def test_redirects_from_the_provider_are_not_followed(client, github, fresh_upstream):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.5)
    hits = []

    def accept():
        try:
            conn, _ = listener.accept()
            hits.append(1)
            conn.close()
        except OSError:
            pass

    watcher = threading.Thread(target=accept)
    watcher.start()
    port = listener.getsockname()[1]
    fresh_upstream.knobs["token_redirect_to"] = f"http://127.0.0.1:{port}/steal"
    trip = round_trip(client, github, "1001")
    watcher.join()
    listener.close()
    assert hits == []
    assert_app_error(trip.response, "server_error")


def test_a_connection_disabled_mid_flow_logs_nobody_in(app, client, github, api):
    authorize_url = go_upstream(client, github)
    token = api.token("read:connections", "update:connections")
    headers = {"Authorization": f"Bearer {token}"}
    listing = client.get(
        "/api/v2/connections?name=gh", base_url=f"http://{T1}", headers=headers
    ).get_json()
    conn_id = listing[0]["id"]
    response = client.patch(
        f"/api/v2/connections/{conn_id}/clients",
        base_url=f"http://{T1}",
        headers=headers,
        json=[{"client_id": "web", "status": False}],
    )
    assert response.status_code == 204
    method, fields = provider_answer(authorize_url, "1001")
    assert_app_error(call_back(client, method, fields), "access_denied")
    assert count(app, LoginSession) == 0


# --- identities (UP-05, SC-10, SC-11, SC-18) ---------------------------------------------------


def test_the_same_sub_at_two_providers_makes_two_users(app, client, connect, fresh_upstream):
    fresh_upstream.add_user("1001", email="x@example.test", email_verified=False)
    first, second = connect("oidc", name="idp-a"), connect("oidc", name="idp-b")
    a = id_claims(redeem(client, code_from(round_trip(client, first, "1001"))).get_json())
    other = app.test_client()
    b = id_claims(redeem(other, code_from(round_trip(other, second, "1001"))).get_json())
    assert (a["sub"], b["sub"]) == ("oidc|idp-a|1001", "oidc|idp-b|1001")


def test_a_changed_upstream_email_never_moves_the_login_to_another_user(
    app, client, github, fresh_upstream
):
    """nOAuth: the provider's account changes its address to Alice's; the sub decides."""
    first = id_claims(redeem(client, code_from(round_trip(client, github, "1001"))).get_json())
    fresh_upstream.set_user("1001", email="alice@example.test", email_verified=True)
    other = app.test_client()
    again = id_claims(redeem(other, code_from(round_trip(other, github, "1001"))).get_json())
    assert again["sub"] == first["sub"] == "github|1001"


# --- nothing secret in the logs (TV-03, STYLE logging) -----------------------------------------


def test_no_upstream_code_or_token_reaches_the_logs(client, github, fresh_upstream, caplog):
    caplog.set_level(logging.DEBUG)
    method, fields = provider_answer(go_upstream(client, github), "1001")
    response = call_back(client, method, fields)
    tokens = redeem(client, code_from_response(response)).get_json()
    # Our own records (the test's requests to the provider log their URLs through urllib3).
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.split(".")[0] in OUR_LOGGERS)
    assert "login" in text  # the login was logged
    assert fields["code"] not in text
    assert fields["state"].split(".")[1] not in text
    assert tokens["access_token"] not in text


OUR_LOGGERS = ("login_site", "authlib", "werkzeug", "flask", "sqlalchemy")


def code_from_response(response) -> str:
    assert response.status_code == 302
    from tests.conftest import query_of

    return query_of(response.headers["Location"])["code"]


def test_an_unsafe_endpoint_is_refused_when_the_connection_is_saved(client, api):
    token = api.token("create:connections")
    for url in ("http://169.254.169.254/latest", "file:///etc/passwd", "http://example.test/t"):
        response = client.post(
            "/api/v2/connections",
            base_url=f"http://{T1}",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "name": "evil",
                "strategy": "oauth2",
                "options": {
                    "client_id": "x",
                    "authorization_endpoint": "https://idp.example.test/authorize",
                    "token_endpoint": url,
                },
            },
        )
        assert response.status_code == 400, url
        assert "token_endpoint" in response.get_json()["message"]


def test_unknown_callback_parameters_change_nothing(app, client, github):
    response = client.get(
        "/login/callback?" + urlencode({"state": "x.y", "code": "c", "evil": "1"}),
        base_url=f"http://{T1}",
    )
    assert_rejected_page(app, response, "invalid_state")
