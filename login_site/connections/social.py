"""Social providers and the generic strategies, as data over the OAuth 2.0/OIDC engine.

Each preset names the provider's real endpoints, default scopes, what it supports (PKCE, ID
token, ``form_post``), how clients authenticate, where a *verified* email comes from and how its
profile JSON maps to Auth0's normalised profile. Connection options may override every endpoint.
The mapping functions are pure and only read the provider's JSON; the generic ``oauth2``
strategy takes a declarative ``fields_map`` of dotted paths instead (no user code runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from login_site.connections.oauth2 import OAuth2Strategy
from login_site.connections.oauth2 import Preset
from login_site.connections.oauth2 import standard_claims


def _verified_primary(entries: Any, *, email="email", primary="primary", verified="verified"):
    """The primary verified address of an emails API answer, else any verified one."""
    rows = [e for e in entries if isinstance(e, Mapping)] if isinstance(entries, list) else []
    good = [e for e in rows if e.get(verified) is True and isinstance(e.get(email), str)]
    good.sort(key=lambda e: e.get(primary) is not True)
    return good[0][email] if good else None


def _github(raw: Mapping[str, Any]) -> dict[str, Any]:
    verified = _verified_primary(raw.get("emails"))
    return {
        "user_id": raw.get("id"),
        "nickname": raw.get("login"),
        "username": raw.get("login"),
        "name": raw.get("name") or raw.get("login"),
        "picture": raw.get("avatar_url"),
        # /user's "email" is whatever the user made public; only /user/emails says verified.
        "email": verified or raw.get("email"),
        "email_verified": verified is not None,
    }


def _bitbucket(raw: Mapping[str, Any]) -> dict[str, Any]:
    values = (raw.get("emails") or {}).get("values") if isinstance(raw.get("emails"), dict) else []
    verified = _verified_primary(values, primary="is_primary", verified="is_confirmed")
    return {
        "user_id": raw.get("uuid") or raw.get("account_id"),
        "nickname": raw.get("username") or raw.get("nickname"),
        "username": raw.get("username"),
        "name": raw.get("display_name"),
        "picture": ((raw.get("links") or {}).get("avatar") or {}).get("href"),
        "email": verified,
        "email_verified": verified is not None,
    }


def _facebook(raw: Mapping[str, Any]) -> dict[str, Any]:
    picture = raw.get("picture")
    return {
        "user_id": raw.get("id"),
        "name": raw.get("name"),
        "given_name": raw.get("first_name"),
        "family_name": raw.get("last_name"),
        "picture": ((picture or {}).get("data") or {}).get("url")
        if isinstance(picture, dict)
        else None,
        "email": raw.get("email"),
        # The Graph API returns only a confirmed primary address (or none).
        "email_verified": bool(raw.get("email")),
    }


def _microsoft(raw: Mapping[str, Any]) -> dict[str, Any]:
    upn = raw.get("userPrincipalName")
    return {
        "user_id": raw.get("id"),
        "name": raw.get("displayName"),
        "given_name": raw.get("givenName"),
        "family_name": raw.get("surname"),
        "email": raw.get("mail") or (upn if isinstance(upn, str) and "@" in upn else None),
        "email_verified": False,  # Graph does not say whether anyone checked the address
    }


def _box(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "user_id": raw.get("id"),
        "name": raw.get("name"),
        "email": raw.get("login"),
        "email_verified": False,
        "picture": raw.get("avatar_url"),
    }


def _amazon(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "user_id": raw.get("user_id"),
        "name": raw.get("name"),
        "email": raw.get("email"),
        "email_verified": False,  # Login with Amazon does not assert verification
    }


def _twitter(raw: Mapping[str, Any]) -> dict[str, Any]:
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    return {
        "user_id": data.get("id"),
        "name": data.get("name"),
        "nickname": data.get("username"),
        "username": data.get("username"),
        "picture": data.get("profile_image_url"),
        "email": data.get("confirmed_email"),
        "email_verified": bool(data.get("confirmed_email")),
    }


def _apple(raw: Mapping[str, Any]) -> dict[str, Any]:
    fields = standard_claims(raw)
    name = (raw.get("user") or {}).get("name") if isinstance(raw.get("user"), dict) else None
    if isinstance(name, dict):
        given, family = name.get("firstName"), name.get("lastName")
        fields.update(
            given_name=given,
            family_name=family,
            name=" ".join(p for p in (given, family) if isinstance(p, str) and p) or None,
        )
    return fields


PRESETS: dict[str, Preset] = {
    p.strategy: p
    for p in (
        Preset(
            strategy="google-oauth2",
            label="Google",
            issuer="https://accounts.google.com",
            authorization_endpoint="https://accounts.google.com/o/oauth2/v2/auth",
            token_endpoint="https://oauth2.googleapis.com/token",
            userinfo_endpoint="https://openidconnect.googleapis.com/v1/userinfo",
            jwks_uri="https://www.googleapis.com/oauth2/v3/certs",
            scopes=("openid", "email", "profile"),
            id_token=True,
            offline_params={"access_type": "offline", "prompt": "consent"},
            email_source="ID token and userinfo email_verified",
        ),
        Preset(
            strategy="github",
            label="GitHub",
            authorization_endpoint="https://github.com/login/oauth/authorize",
            token_endpoint="https://github.com/login/oauth/access_token",
            userinfo_endpoint="https://api.github.com/user",
            emails_endpoint="https://api.github.com/user/emails",
            scopes=("read:user", "user:email"),
            mapping=_github,
            email_source="GET /user/emails: primary address with verified=true",
        ),
        Preset(
            strategy="windowslive",
            label="Microsoft",
            authorization_endpoint=(
                "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
            ),
            token_endpoint="https://login.microsoftonline.com/common/oauth2/v2.0/token",
            userinfo_endpoint="https://graph.microsoft.com/v1.0/me",
            scopes=("openid", "profile", "email", "User.Read"),
            offline_scope="offline_access",
            mapping=_microsoft,
            email_source="none (Graph /me mail is not verified)",
        ),
        Preset(
            strategy="facebook",
            label="Facebook",
            authorization_endpoint="https://www.facebook.com/v19.0/dialog/oauth",
            token_endpoint="https://graph.facebook.com/v19.0/oauth/access_token",
            userinfo_endpoint="https://graph.facebook.com/me",
            userinfo_params={"fields": "id,name,email,first_name,last_name,picture"},
            scopes=("public_profile", "email"),
            scope_separator=",",
            pkce=False,
            mapping=_facebook,
            email_source="Graph /me email (only confirmed addresses are returned)",
        ),
        Preset(
            strategy="linkedin",
            label="LinkedIn",
            issuer="https://www.linkedin.com/oauth",
            authorization_endpoint="https://www.linkedin.com/oauth/v2/authorization",
            token_endpoint="https://www.linkedin.com/oauth/v2/accessToken",
            userinfo_endpoint="https://api.linkedin.com/v2/userinfo",
            jwks_uri="https://www.linkedin.com/oauth/openid/jwks",
            scopes=("openid", "profile", "email"),
            id_token=True,
            pkce=False,
            email_source="ID token / userinfo email_verified",
        ),
        Preset(
            strategy="apple",
            label="Apple",
            issuer="https://appleid.apple.com",
            authorization_endpoint="https://appleid.apple.com/auth/authorize",
            token_endpoint="https://appleid.apple.com/auth/token",
            jwks_uri="https://appleid.apple.com/auth/keys",
            scopes=("name", "email"),
            id_token=True,
            pkce=False,
            response_mode="form_post",
            client_auth="apple_jwt",
            mapping=_apple,
            email_source='ID token email_verified ("true" as a string)',
        ),
        Preset(
            strategy="slack",
            label="Slack",
            issuer="https://slack.com",
            authorization_endpoint="https://slack.com/openid/connect/authorize",
            token_endpoint="https://slack.com/api/openid.connect.token",
            userinfo_endpoint="https://slack.com/api/openid.connect.userInfo",
            jwks_uri="https://slack.com/openid/connect/keys",
            scopes=("openid", "email", "profile"),
            id_token=True,
            pkce=False,
            email_source="ID token / userInfo email_verified",
        ),
        Preset(
            strategy="box",
            label="Box",
            authorization_endpoint="https://account.box.com/api/oauth2/authorize",
            token_endpoint="https://api.box.com/oauth2/token",
            userinfo_endpoint="https://api.box.com/2.0/users/me",
            pkce=False,
            mapping=_box,
            email_source="none (login is not asserted verified)",
        ),
        Preset(
            strategy="amazon",
            label="Amazon",
            authorization_endpoint="https://www.amazon.com/ap/oa",
            token_endpoint="https://api.amazon.com/auth/o2/token",
            userinfo_endpoint="https://api.amazon.com/user/profile",
            scopes=("profile",),
            mapping=_amazon,
            email_source="none (profile email is not asserted verified)",
        ),
        Preset(
            strategy="bitbucket",
            label="Bitbucket",
            authorization_endpoint="https://bitbucket.org/site/oauth2/authorize",
            token_endpoint="https://bitbucket.org/site/oauth2/access_token",
            userinfo_endpoint="https://api.bitbucket.org/2.0/user",
            emails_endpoint="https://api.bitbucket.org/2.0/user/emails",
            scopes=("account", "email"),
            pkce=False,
            client_auth="client_secret_basic",
            mapping=_bitbucket,
            email_source="GET /2.0/user/emails: is_primary and is_confirmed",
        ),
        Preset(
            strategy="twitter",
            label="X (Twitter)",
            authorization_endpoint="https://twitter.com/i/oauth2/authorize",
            token_endpoint="https://api.twitter.com/2/oauth2/token",
            userinfo_endpoint="https://api.twitter.com/2/users/me",
            userinfo_params={"user.fields": "profile_image_url,confirmed_email"},
            scopes=("users.read", "tweet.read", "users.email"),
            offline_scope="offline.access",
            client_auth="client_secret_basic",
            mapping=_twitter,
            email_source="users/me confirmed_email",
        ),
        Preset(
            strategy="oauth2",
            label="OAuth 2.0",
            pkce=False,  # Auth0's pkce_enabled defaults to false for custom OAuth2
            email_source="fields_map email_verified (or the OIDC claim)",
        ),
        Preset(
            strategy="oidc",
            label="Single sign-on",
            discovery=True,
            scopes=("openid", "profile", "email"),
            id_token=True,
            offline_scope="offline_access",
            is_social=False,
            email_source="ID token / userinfo email_verified",
        ),
    )
}

STRATEGIES: dict[str, OAuth2Strategy] = {name: OAuth2Strategy(p) for name, p in PRESETS.items()}
