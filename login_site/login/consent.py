"""Consent for third-party clients, remembered per user, client and API (ASVS 10.7)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from login_site.i18n import N_
from login_site.models import Client
from login_site.models import Consent
from login_site.models import ResourceServer
from login_site.models import Tenant

SCOPE_TEXT = {
    "openid": N_("Know who you are"),
    "profile": N_("Read your name and profile picture"),
    "email": N_("Read your email address"),
    "phone": N_("Read your phone number"),
    "address": N_("Read your address"),
    "offline_access": N_("Stay signed in on your behalf"),
}


def _row(db: Session, user_pk: int, client: Client, audience: str | None) -> Consent | None:
    return db.execute(
        select(Consent).where(
            Consent.user_pk == user_pk,
            Consent.client_pk == client.id,
            Consent.audience_key == (audience or ""),
        )
    ).scalar_one_or_none()


def needed(
    db: Session, client: Client, user_pk: int, scope: str, audience: str | None, prompt: set[str]
) -> bool:
    if "consent" in prompt:
        return True
    if client.is_first_party:
        return False
    row = _row(db, user_pk, client, audience)
    return row is None or not set(scope.split()) <= set(row.scopes or [])


def remember(
    db: Session, tenant: Tenant, client: Client, user_pk: int, scope: str, audience: str | None
) -> None:
    row = _row(db, user_pk, client, audience)
    if row is None:
        row = Consent(
            tenant_id=tenant.id,
            user_pk=user_pk,
            client_pk=client.id,
            audience_key=audience or "",
            scopes=[],
        )
        db.add(row)
    row.scopes = sorted(set(row.scopes or []) | set(scope.split()))


def describe(
    db: Session, tenant: Tenant, scope: str, audience: str | None
) -> list[tuple[str, str]]:
    """(scope, text to show) for each requested scope; API scopes use their description."""
    api_text: dict[str, str] = {}
    if audience:
        api = db.execute(
            select(ResourceServer).where(
                ResourceServer.tenant_id == tenant.id, ResourceServer.identifier == audience
            )
        ).scalar_one_or_none()
        if api:
            api_text = {s["value"]: s.get("description") or s["value"] for s in api.scopes or []}
    return [(s, SCOPE_TEXT.get(s) or api_text.get(s) or s) for s in scope.split()]
