"""Logout: Auth0's ``/v2/logout`` and OpenID Connect RP-Initiated Logout (``/oidc/logout``).

The session always ends server-side first. A redirect happens only to a URL registered
for the client (or the tenant), compared exactly; ``/oidc/logout`` also needs a valid
``id_token_hint`` to redirect, and without one that matches the session it asks first.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from login_site import config_cache
from login_site.errors import PageError
from login_site.i18n import N_
from login_site.models import Client
from login_site.models import LoginSession
from login_site.models import Tenant
from login_site.models import User
from login_site.oauth import keys
from login_site.oauth.authorize import add_query


def find_client(db: Session, tenant: Tenant, client_id: str | None) -> Client | None:
    if not client_id:
        return None
    return config_cache.client(db, tenant, client_id)


def v2_return_to(
    db: Session, tenant: Tenant, client_id: str | None, return_to: str | None
) -> str | None:
    """Auth0 ``/v2/logout``: ``returnTo`` from the client's list (its first entry when
    omitted), or from the tenant's list without ``client_id``; ``None`` = no redirect."""
    if client_id:
        client = find_client(db, tenant, client_id)
        allowed = list(client.allowed_logout_urls or []) if client else []
        if client and not return_to and allowed:
            return allowed[0]
    else:
        allowed = list(tenant.setting("allowed_logout_urls") or [])
    return return_to if return_to and return_to in allowed else None


@dataclass
class LogoutRequest:
    redirect: str | None  # validated post_logout_redirect_uri with state, or None
    hint_matches_session: bool


def _invalid(description: str) -> PageError:
    return PageError(N_("Logout request rejected"), description)


def rp_initiated(
    db: Session, tenant: Tenant, issuer: str, args, record: LoginSession | None
) -> LogoutRequest:
    """Validate an RP-initiated logout request (OIDC RP-Initiated Logout 1.0 §2–§3)."""
    hint = args.get("id_token_hint")
    claims = None
    if hint:
        claims = keys.verify_own_jwt(db, tenant.id, hint, issuer)
        if claims is None:
            raise _invalid(N_("The id_token_hint is not a valid ID token of this service."))
    client_id = args.get("client_id")
    client = None
    if claims is not None:
        aud = claims.get("aud")
        hinted = aud if isinstance(aud, str) else claims.get("azp")
        if client_id and client_id != hinted:
            raise _invalid(N_("client_id does not match the id_token_hint."))
        client = find_client(db, tenant, hinted)
        if client is None:
            raise _invalid(N_("The id_token_hint is not a valid ID token of this service."))
        if args.get("logout_hint") and claims.get("sid") != args.get("logout_hint"):
            raise _invalid(N_("logout_hint does not match the id_token_hint."))
    elif client_id:
        client = find_client(db, tenant, client_id)
        if client is None:
            raise _invalid(N_("Unknown client_id."))

    redirect = None
    uri = args.get("post_logout_redirect_uri")
    if uri:
        allowed = (
            client.allowed_logout_urls
            if client is not None
            else tenant.setting("allowed_logout_urls")
        ) or []
        if uri not in allowed:
            raise _invalid(
                N_("The post_logout_redirect_uri is not registered for this application.")
            )
        if claims is not None:  # redirect only for a verified requester
            state = args.get("state")
            redirect = add_query(uri, {"state": state}) if state else uri

    matches = False
    if claims is not None and record is not None:
        user = db.get(User, record.user_pk)
        matches = claims.get("sid") == record.sid or (
            user is not None and user.user_id == claims["sub"]
        )
    return LogoutRequest(redirect=redirect, hint_matches_session=matches or record is None)
