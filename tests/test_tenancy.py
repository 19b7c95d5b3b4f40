"""Tenants by host: checklist MG-01, MG-02."""

import pytest

from tests.conftest import T1
from tests.conftest import T2
from tests.conftest import login_code
from tests.conftest import redeem
from tests.conftest import start_login
from tests.conftest import submit_login


@pytest.mark.parametrize(
    "path", ["/.well-known/openid-configuration", "/authorize", "/login", "/.well-known/jwks.json"]
)
def test_unknown_host_is_a_plain_404(client, path):
    response = client.get(path, base_url="http://unknown.localhost")
    assert response.status_code == 404
    assert "demo" not in response.get_data(as_text=True).lower()


def test_host_matching_ignores_case(client):
    response = client.get("/.well-known/openid-configuration", base_url="http://T1.TEST")
    assert response.status_code == 200
    assert response.json["issuer"] == "http://t1.test/"


def test_each_tenant_has_its_own_keys(client):
    one = client.get("/.well-known/jwks.json", base_url=f"http://{T1}").json
    two = client.get("/.well-known/jwks.json", base_url=f"http://{T2}").json
    assert {k["kid"] for k in one["keys"]}.isdisjoint({k["kid"] for k in two["keys"]})


def test_access_token_of_one_tenant_is_rejected_by_the_other(client):
    access = redeem(client, login_code(client)).json["access_token"]
    response = client.get(
        "/userinfo", base_url=f"http://{T2}", headers={"Authorization": f"Bearer {access}"}
    )
    assert response.status_code == 401


def test_code_of_one_tenant_cannot_be_redeemed_at_the_other(client):
    code = login_code(client)
    response = redeem(client, code, host=T2)
    assert response.status_code in (400, 401)


def test_same_email_in_two_tenants_are_two_users_with_their_own_passwords(client):
    # alice exists in both tenants with different passwords.
    page, state = start_login(client, T2, client_id="t2web")
    response = submit_login(
        client, page, state, "alice@example.test", "correct horse battery Staple1", host=T2
    )
    assert response.status_code == 400
    assert "Wrong email or password." in response.get_data(as_text=True)
    response = submit_login(client, page, state, "alice@example.test", "alice-in-t2", host=T2)
    assert response.status_code == 302


def test_session_of_one_tenant_does_not_log_in_at_the_other(client):
    login_code(client)
    response = client.get(
        "/authorize",
        base_url=f"http://{T2}",
        query_string={
            "client_id": "t2web",
            "redirect_uri": "https://app.test/cb",
            "response_type": "code",
            "scope": "openid",
            "prompt": "none",
            "state": "s",
        },
    )
    assert "error=login_required" in response.headers["Location"]
