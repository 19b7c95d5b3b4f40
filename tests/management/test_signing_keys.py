"""/api/v2/keys/signing: list, get, rotate, revoke (management-api.md §7). Each key is shown
with a certificate self-signed by the key; nothing new is stored for it."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import pkcs7
from sqlalchemy import select

from login_site.management import signing_keys
from login_site.models import SigningKey
from login_site.models import Tenant
from login_site.oauth.keys import jwt_header
from tests.management.conftest import T1
from tests.management.conftest import T2
from tests.management.conftest import T2WEB
from tests.management.conftest import call
from tests.management.conftest import grant_management_api


def rows(app):
    with app.extensions["login_site.sessionmaker"]() as db:
        return {
            k.kid: (k.state, k.private_pem_enc) for k in db.execute(select(SigningKey)).scalars()
        }


def jwks_kids(api, host=T1) -> list[str]:
    return [
        k["kid"] for k in api.get("/.well-known/jwks.json", base_url=f"http://{host}").json["keys"]
    ]


def b64int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def test_each_key_has_a_certificate_of_its_own_public_key(api):
    token = api.token("read:signing_keys")
    response = call(api, "GET", "/api/v2/keys/signing", token)
    assert response.status_code == 200
    listed = response.get_json()
    published = {
        k["kid"]: k for k in api.get("/.well-known/jwks.json", base_url=f"http://{T1}").json["keys"]
    }
    assert [k["kid"] for k in listed if k["current"]] == [jwt_header(token)["kid"]]
    for key in listed:
        assert "PRIVATE" not in str(key)
        cert = x509.load_pem_x509_certificate(key["cert"].encode())
        cert.verify_directly_issued_by(cert)  # self-signed by the key itself
        numbers = cert.public_key().public_numbers()
        jwk = published[key["kid"]]
        assert (numbers.n, numbers.e) == (b64int(jwk["n"]), b64int(jwk["e"]))
        sha1 = cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - Auth0's format
        assert key["thumbprint"] == sha1
        assert key["fingerprint"].replace(":", "") == sha1
        assert pkcs7.load_pem_pkcs7_certificates(key["pkcs7"].encode()) == [cert]
        assert ("current_since" in key) is not key["next"]
        assert key.get("current_since", "Z").endswith("Z")
        assert key["revoked"] is False
    # Auth0's model: a next key is published beside the current one before it signs.
    assert [(k["current"], k["next"]) for k in listed] == [(True, False), (False, True)]
    assert set(published) == {k["kid"] for k in listed}


def test_the_certificate_is_the_same_on_every_read_and_worker(app, api, backend):
    token = api.token("read:signing_keys")
    kid = jwt_header(token)["kid"]
    before = rows(app)
    first = call(api, "GET", f"/api/v2/keys/signing/{kid}", token).get_json()
    signing_keys._CERTS.clear()  # another worker: nothing cached
    second = call(api, "GET", f"/api/v2/keys/signing/{kid}", token).get_json()
    assert first == second
    assert first["kid"] == kid
    assert rows(app) == before  # nothing stored for the certificate


def test_unknown_or_other_tenants_key_is_404(app, api):
    grant_management_api(app, "t2", T2, "t2web")
    t2_kid = jwt_header(api.token(host=T2, credentials=T2WEB))["kid"]
    token = api.token("read:signing_keys", "update:signing_keys")
    for path in (f"/api/v2/keys/signing/{t2_kid}", "/api/v2/keys/signing/nope"):
        response = call(api, "GET", path, token)
        assert response.status_code == 404
        assert response.get_json()["errorCode"] == "inexistent_signing_key"
    assert call(api, "PUT", f"/api/v2/keys/signing/{t2_kid}/revoke", token).status_code == 404
    assert rows(app)[t2_kid][0] == "current"


def states(app, tenant: str = "t1") -> dict[str, list[str]]:
    by_state: dict[str, list[str]] = {}
    with app.extensions["login_site.sessionmaker"]() as db:
        for key in db.execute(
            select(SigningKey).join(Tenant).where(Tenant.name == tenant)
        ).scalars():
            by_state.setdefault(key.state, []).append(key.kid)
    return by_state


@pytest.mark.parametrize("scope", ["create:signing_keys", "update:signing_keys"])
def test_rotation_promotes_the_published_next_key_and_keeps_the_old_one(app, api, backend, scope):
    old_token = api.token()
    old_kid = jwt_header(old_token)["kid"]
    [next_kid] = states(app)["next"]
    published_before = jwks_kids(api)
    assert next_kid in published_before
    response = call(api, "POST", "/api/v2/keys/signing/rotate", api.token(scope))
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"cert", "kid"}
    # The new current key is the one every JWKS fetched before the rotation already holds.
    assert body["kid"] == next_kid != old_kid
    x509.load_pem_x509_certificate(body["cert"].encode())
    after = states(app)
    assert after["previous"] == [old_kid] and after["current"] == [next_kid]
    [new_next] = after["next"]
    assert new_next not in published_before
    assert set(jwks_kids(api)) == {old_kid, next_kid, new_next}
    listed = {k["kid"]: k for k in call(api, "GET", "/api/v2/keys/signing", old_token).json}
    assert listed[body["kid"]]["current"] and listed[body["kid"]]["cert"] == body["cert"]
    assert listed[old_kid]["previous"] and "current_until" in listed[old_kid]
    assert listed[next_kid]["current_since"] == listed[old_kid]["current_until"]
    assert listed[new_next]["next"] and "current_since" not in listed[new_next]
    # Tokens signed before still verify; new ones use the new key.
    assert call(api, "GET", "/api/v2/clients", old_token).status_code == 200
    assert jwt_header(api.token())["kid"] == body["kid"]


def test_rotation_needs_a_write_scope(app, api):
    before = rows(app)
    response = call(api, "POST", "/api/v2/keys/signing/rotate", api.token("read:signing_keys"))
    assert response.status_code == 403
    assert response.get_json()["message"].endswith("create:signing_keys,update:signing_keys")
    assert rows(app) == before


def test_a_revoked_key_leaves_the_jwks_and_its_tokens_die(app, api, backend):
    old_token = api.token()
    old_kid = jwt_header(old_token)["kid"]
    rotated = call(api, "POST", "/api/v2/keys/signing/rotate", old_token).get_json()
    new_token = api.token()
    current = call(api, "PUT", f"/api/v2/keys/signing/{rotated['kid']}/revoke", new_token)
    assert current.status_code == 400
    assert rows(app)[rotated["kid"]][0] == "current"
    response = call(api, "PUT", f"/api/v2/keys/signing/{old_kid}/revoke", new_token)
    assert response.status_code == 200
    assert response.get_json()["kid"] == old_kid
    assert old_kid not in jwks_kids(api)
    assert call(api, "GET", "/api/v2/clients", old_token).status_code == 401
    assert call(api, "GET", "/api/v2/clients", new_token).status_code == 200
    shown = call(api, "GET", f"/api/v2/keys/signing/{old_kid}", new_token).get_json()
    assert shown["revoked"] is True and shown["current"] is False


def test_revocation_needs_update_scope(app, api):
    kid = jwt_header(api.token())["kid"]
    response = call(
        api, "PUT", f"/api/v2/keys/signing/{kid}/revoke", api.token("create:signing_keys")
    )
    assert response.status_code == 403
    assert rows(app)[kid][0] == "current"
