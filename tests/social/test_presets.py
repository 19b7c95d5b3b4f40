"""Every preset's round trip against a loopback provider with that provider's shapes:
/authorize → provider login → /login/callback → code → tokens, and the normalised profile."""

from __future__ import annotations

import pytest

from login_site.connections.social import PRESETS
from login_site.models import Identity
from login_site.models import User
from tests.conftest import T1
from tests.conftest import pkce_pair
from tests.conftest import redeem
from tests.social.conftest import code_from
from tests.social.conftest import id_claims
from tests.social.conftest import round_trip

# strategy → (user id of the new user, email_verified we must conclude, fields to expect)
EXPECTED = {
    "google-oauth2": ("google-oauth2|1001", True, {"name": "Ann Lee", "given_name": "Ann"}),
    "github": ("github|1001", True, {"nickname": "annlee", "name": "Ann Lee"}),
    "windowslive": ("windowslive|1001", False, {"name": "Ann Lee", "family_name": "Lee"}),
    "facebook": ("facebook|1001", True, {"name": "Ann Lee", "given_name": "Ann"}),
    "linkedin": ("linkedin|1001", True, {"name": "Ann Lee", "family_name": "Lee"}),
    "apple": ("apple|1001", True, {"name": "Ann Lee", "given_name": "Ann"}),
    "slack": ("slack|1001", True, {"name": "Ann Lee"}),
    "box": ("box|1001", False, {"name": "Ann Lee"}),
    "amazon": (None, False, {"name": "Ann Lee"}),  # amzn1.account.… ids
    "bitbucket": (None, True, {"nickname": "annlee", "name": "Ann Lee"}),  # {uuid}
    "twitter": ("twitter|1001", True, {"nickname": "annlee", "name": "Ann Lee"}),
    "oauth2": (None, True, {"name": "Ann Lee"}),  # oauth2|<connection>|42
    "oidc": ("oidc|oidc-conn|1001", True, {"name": "Ann Lee", "given_name": "Ann"}),
}
ENTERPRISE = {"oidc"}


def add_ann(up):
    up.add_user(
        "1001",
        email="ann@example.test",
        email_verified=True,
        name="Ann Lee",
        given_name="Ann",
        family_name="Lee",
        login="annlee",
        picture="https://img.test/ann.png",
    )


@pytest.mark.parametrize("strategy", sorted(EXPECTED))
def test_every_preset_completes_a_login_with_the_providers_shapes(
    app, client, connect, fresh_upstream, strategy
):
    name = connect(strategy)
    add_ann(fresh_upstream)
    verifier, challenge = pkce_pair()
    trip = round_trip(client, name, "1001", code_challenge=challenge, code_challenge_method="S256")
    tokens = redeem(client, code_from(trip), code_verifier=verifier).get_json()
    claims = id_claims(tokens)
    user_id, verified, fields = EXPECTED[strategy]
    if user_id is not None:
        assert claims["sub"] == user_id
    else:
        assert claims["sub"].startswith(strategy + "|")
    assert claims["email"] == "ann@example.test"
    assert claims["email_verified"] is verified
    for key, value in fields.items():
        assert claims[key] == value, key
    with app.extensions["login_site.sessionmaker"]() as db:
        user = db.query(User).filter_by(user_id=claims["sub"]).one()
        (identity,) = db.query(Identity).filter_by(user_pk=user.id).all()
        assert identity.provider == strategy
        assert identity.is_social is (strategy not in ENTERPRISE)
        assert f"{identity.provider}|{identity.user_id}" == user.user_id
        assert identity.profile_data  # the provider's raw profile is kept
    # What we sent upstream: our callback, state; PKCE and nonce where the preset uses them.
    sent = fresh_upstream.authorize_log[-1]
    assert sent["redirect_uri"] == f"http://{T1}/login/callback"
    assert sent["state"].count(".") == 1
    preset = PRESETS[strategy]
    if preset.pkce:
        assert sent["code_challenge_method"] == "S256"
    else:
        assert "code_challenge" not in sent
    if preset.id_token:
        assert sent["nonce"]


def test_userinfo_shows_the_normalised_profile(client, connect, fresh_upstream):
    name = connect("github")
    add_ann(fresh_upstream)
    trip = round_trip(client, name, "1001")
    tokens = redeem(client, code_from(trip)).get_json()
    info = client.get(
        "/userinfo",
        base_url=f"http://{T1}",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    ).get_json()
    assert info["sub"] == "github|1001"
    assert info["nickname"] == "annlee"
    assert "access_token" not in str(info)


def test_github_without_a_verified_address_gives_an_unverified_email(
    client, connect, fresh_upstream
):
    name = connect("github")
    fresh_upstream.add_user(
        "2002",
        login="bob",
        name="Bob",
        emails=[{"email": "bob@example.test", "verified": False, "primary": True}],
    )
    tokens = redeem(client, code_from(round_trip(client, name, "2002"))).get_json()
    claims = id_claims(tokens)
    assert claims["email"] == "bob@example.test" and claims["email_verified"] is False
