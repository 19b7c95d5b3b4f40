"""Token Vault (checklist §1.P): upstream tokens kept encrypted, exchanged for the same user
only, refreshed once on expiry — also under parallel exchanges — and keys that rotate."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from sqlalchemy import select
from sqlalchemy import text

from login_site import token_vault
from login_site.models import Client
from login_site.models import UpstreamToken
from login_site.oauth.vault_grant import FEDERATED_TOKEN_EXCHANGE
from login_site.oauth.vault_grant import FEDERATED_TOKEN_TYPE
from login_site.vault import Keyring
from tests.conftest import T1
from tests.conftest import basic
from tests.conftest import redeem
from tests.social.conftest import code_from
from tests.social.conftest import round_trip

REFRESH = "urn:ietf:params:oauth:token-type:refresh_token"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
VAULT = {"federated_connections_access_tokens": {"active": True}}


def allow_exchange(app, client_id: str = "web") -> None:
    with app.extensions["login_site.sessionmaker"]() as db:
        client = db.execute(select(Client).where(Client.client_id == client_id)).scalar_one()
        client.grant_types = [*client.grant_types, FEDERATED_TOKEN_EXCHANGE]
        db.commit()


@pytest.fixture
def vaulted(app, backend, connect, fresh_upstream):
    """A github connection with the vault on, ``web`` allowed the exchange, and
    ``login(sub)`` → the login_site token response (with a refresh token)."""
    name = connect("github", name="gh", **VAULT)
    allow_exchange(app)

    def login(sub: str = "1001", **attrs):
        fresh_upstream.add_user(sub, login=f"user{sub}", email=f"u{sub}@example.test", **attrs)
        browser = app.test_client()
        trip = round_trip(browser, name, sub, scope="openid offline_access")
        return redeem(browser, code_from(trip)).get_json()

    login.connection = name
    return login


def exchange(client, subject: str, connection: str = "gh", subject_type=REFRESH, **extra):
    return client.post(
        "/oauth/token",
        base_url=f"http://{T1}",
        headers=basic(),
        data={
            "grant_type": FEDERATED_TOKEN_EXCHANGE,
            "subject_token": subject,
            "subject_token_type": subject_type,
            "requested_token_type": FEDERATED_TOKEN_TYPE,
            "connection": connection,
            **extra,
        },
    )


def upstream_tokens_in_database(app) -> str:
    """Every text the database holds, to search for plaintext tokens."""
    engine = app.extensions["login_site.engine"]
    dump = []
    with engine.connect() as conn:
        for table in ("upstream_tokens", "identities", "users", "login_transactions"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):  # noqa: S608 - fixed names
                dump.append(repr(tuple(row)))
    return "\n".join(dump)


def test_an_exchange_returns_a_working_upstream_token(app, client, vaulted, fresh_upstream):
    tokens = vaulted()
    response = exchange(client, tokens["refresh_token"])
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["issued_token_type"] == FEDERATED_TOKEN_TYPE and body["token_type"] == "Bearer"
    upstream_answer = requests.get(
        fresh_upstream.resource_url("github"),
        headers={"Authorization": f"Bearer {body['access_token']}"},
        timeout=5,
    )
    assert upstream_answer.status_code == 200 and upstream_answer.json()["sub"] == "1001"
    # The token is nowhere in plaintext: not in the database, tokens or userinfo.
    assert body["access_token"] not in upstream_tokens_in_database(app)
    assert body["access_token"] not in str(tokens)
    info = client.get(
        "/userinfo",
        base_url=f"http://{T1}",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert body["access_token"] not in info.get_data(as_text=True)


def test_the_access_token_variant_works_for_the_same_client(client, vaulted):
    tokens = vaulted()
    response = exchange(client, tokens["access_token"], subject_type=ACCESS)
    assert response.status_code == 200, response.get_data(as_text=True)


def test_an_expired_upstream_token_is_refreshed(client, vaulted, fresh_upstream):
    fresh_upstream.knobs["access_token_ttl"] = 2
    tokens = vaulted()
    first = exchange(client, tokens["refresh_token"]).get_json()["access_token"]
    time.sleep(2.5)
    refreshed = exchange(client, tokens["refresh_token"]).get_json()
    assert refreshed["access_token"] != first
    assert 0 < refreshed["expires_in"] <= 2
    grants = [e["grant_type"] for e in fresh_upstream.token_log]
    assert grants.count("refresh_token") == 1
    ok = requests.get(
        fresh_upstream.resource_url("github"),
        headers={"Authorization": f"Bearer {refreshed['access_token']}"},
        timeout=5,
    )
    assert ok.status_code == 200


def test_parallel_exchanges_refresh_upstream_once(app, vaulted, fresh_upstream):
    fresh_upstream.knobs["access_token_ttl"] = 2
    tokens = vaulted()
    time.sleep(2.5)
    results: list = []

    def one():
        results.append(exchange(app.test_client(), tokens["refresh_token"]))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200] * 6
    assert len({r.get_json()["access_token"] for r in results}) == 1
    grants = [e["grant_type"] for e in fresh_upstream.token_log]
    assert grants.count("refresh_token") == 1


def test_a_revoked_upstream_grant_asks_the_user_to_reconnect(client, vaulted, fresh_upstream):
    fresh_upstream.knobs["access_token_ttl"] = 2
    tokens = vaulted()
    fresh_upstream.revoke_user_grants("1001")
    time.sleep(2.5)
    response = exchange(client, tokens["refresh_token"])
    assert response.status_code == 401
    body = response.get_json()
    assert body["error"] == "invalid_grant" and "reconnect" in body["error_description"]


def test_a_client_without_the_grant_is_unauthorized(app, client, vaulted):
    tokens = vaulted()
    with app.extensions["login_site.sessionmaker"]() as db:
        web = db.execute(select(Client).where(Client.client_id == "web")).scalar_one()
        web.grant_types = [g for g in web.grant_types if g != FEDERATED_TOKEN_EXCHANGE]
        db.commit()
    response = exchange(client, tokens["refresh_token"])
    assert response.status_code == 403
    assert response.get_json()["error"] == "unauthorized_client"


def test_a_user_without_that_identity_gets_nothing(app, client, vaulted, connect):
    """Another user's token (Alice logged in with her password) asks for the GitHub token."""
    vaulted("1001")
    from tests.conftest import login_code

    alice = redeem(client, login_code(client, scope="openid offline_access")).get_json()
    response = exchange(client, alice["refresh_token"])
    assert response.status_code == 401
    assert "no identity" in response.get_json()["error_description"]


def test_garbage_or_unknown_subject_tokens_are_refused(client, vaulted):
    vaulted()
    for subject, kind in (("nope", REFRESH), ("nope", ACCESS), ("x" * 9000, REFRESH)):
        assert exchange(client, subject, subject_type=kind).status_code == 401
    assert exchange(client, "nope", subject_type="urn:other").status_code == 400
    assert exchange(client, "nope", connection="db").status_code in (400, 401)


def test_a_connection_without_the_vault_is_refused(app, client, connect, vaulted):
    tokens = vaulted()
    connect("google-oauth2", name="plain-google")
    response = exchange(client, tokens["refresh_token"], connection="plain-google")
    assert response.status_code == 400
    assert "not enabled" in response.get_json()["error_description"]


def test_a_tampered_ciphertext_fails_closed(app, client, vaulted):
    tokens = vaulted()
    with app.extensions["login_site.sessionmaker"]() as db:
        row = db.execute(select(UpstreamToken)).scalar_one()
        flipped = bytearray(row.ciphertext)
        flipped[5] ^= 0x01
        row.ciphertext = bytes(flipped)
        db.commit()
    response = exchange(client, tokens["refresh_token"])
    assert response.status_code == 401
    assert "access_token" not in response.get_json()


def test_master_key_rotation_keeps_tokens_readable(app, client, vaulted):
    """TV-05: a new master key first, the old after it; rotate; the old key can go."""
    from cryptography.fernet import Fernet

    tokens = vaulted()
    before = exchange(client, tokens["refresh_token"]).get_json()["access_token"]
    old_keys = list(app.config["ENCRYPTION_KEYS"])
    new_key = Fernet.generate_key().decode()
    with app.app_context(), app.extensions["login_site.sessionmaker"]() as db:
        counts = token_vault.rotate(db, Keyring([new_key, *old_keys]), new_data_keys=True)
        db.commit()
    assert counts["token_sets_reencrypted"] == 1 and counts["data_keys_dropped"] == 1
    # Only the new master key now; connection secrets are sealed with the old one, so the
    # vault is checked directly rather than through the whole app.
    with app.app_context(), app.extensions["login_site.sessionmaker"]() as db:
        app.extensions["login_site.keyring"] = Keyring([new_key])
        row = db.execute(select(UpstreamToken)).scalar_one()
        assert token_vault.token_set(db, row).access_token == before
        app.extensions["login_site.keyring"] = Keyring([new_key, *old_keys])
