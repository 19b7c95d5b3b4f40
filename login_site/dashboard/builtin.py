"""The dashboard's own clients, made with the Management services like any other client.

``dashboard``: in the admin tenant, the client the dashboard signs admins in with.
``dashboard_try``: in each tenant, the client the "Try" button logs in with. Both are public
(PKCE, no secret), first-party (no consent screen), and marked in ``client_metadata`` so they
are found again whatever their name.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from login_site.management import clients
from login_site.models import Client
from login_site.models import Tenant
from login_site.vault import Keyring

MARKER = "login_site_builtin"  # client_metadata key
DASHBOARD = "dashboard"
TRY = "dashboard_try"
NAMES = {DASHBOARD: "Dashboard", TRY: "Dashboard Try"}
DESCRIPTIONS = {
    DASHBOARD: "Built in: admins sign in to the dashboard with it.",
    TRY: "Built in: the dashboard's Try button logs in with it.",
}


def role_of(client: Client) -> str | None:
    metadata = (client.extra or {}).get("client_metadata") or {}
    return metadata.get(MARKER)


def find(db: Session, tenant: Tenant, role: str) -> Client | None:
    rows = db.execute(
        select(Client).where(Client.tenant_id == tenant.id).order_by(Client.created_at)
    ).scalars()
    return next((c for c in rows if role_of(c) == role), None)


def _free_name(db: Session, tenant: Tenant, name: str) -> str:
    taken = set(db.execute(select(Client.name).where(Client.tenant_id == tenant.id)).scalars())
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name} {n}", n + 1
    return candidate


def ensure(db: Session, ring: Keyring, tenant: Tenant, role: str, callback: str) -> Client:
    """The tenant's built-in client for ``role``, with ``callback`` registered (created or
    extended as needed; :class:`ManagementError` if the URL is refused, e.g. plain http on
    a public host)."""
    client = find(db, tenant, role)
    if client is None:
        client, _ = clients.create(
            db,
            ring,
            tenant,
            {
                "name": _free_name(db, tenant, NAMES[role]),
                "description": DESCRIPTIONS[role],
                "app_type": "regular_web",
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code"],
                "callbacks": [callback],
                "client_metadata": {MARKER: role},
            },
        )
    elif callback not in (client.callbacks or []):
        clients.update(db, ring, tenant, client, {"callbacks": [*client.callbacks, callback]})
    return client
