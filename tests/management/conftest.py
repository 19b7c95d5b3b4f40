"""Management API tokens: tenant T1 gets its system API ``http://t1.test/api/v2/`` and a
client grant for ``m2m``; ``token(*scopes)`` runs the real client_credentials grant."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from login_site.management import system_api
from login_site.models import Client
from login_site.models import ClientGrant
from login_site.models import Connection
from login_site.models import ResourceServer
from login_site.models import Tenant
from login_site.models import User
from tests.conftest import T1
from tests.conftest import T2
from tests.conftest import basic

M2M = ("m2m", "m2m-secret-0123456789abcdefghijklmnop")
T2WEB = ("t2web", "t2web-secret-0123456789abcdefghijklmn")
SCOPES = [*system_api.SCOPES, "read:user_idp_tokens"]


def grant_management_api(app, tenant: str, host: str, client_id: str) -> None:
    with app.extensions["login_site.sessionmaker"]() as db:
        tenant_row = db.execute(select(Tenant).where(Tenant.name == tenant)).scalar_one()
        client = db.execute(
            select(Client).where(Client.tenant_id == tenant_row.id, Client.client_id == client_id)
        ).scalar_one()
        if "client_credentials" not in client.grant_types:
            client.grant_types = [*client.grant_types, "client_credentials"]
        audience = f"http://{host}/api/v2/"
        db.add(
            ResourceServer(
                tenant_id=tenant_row.id,
                identifier=audience,
                name="Management API",
                scopes=[{"value": s} for s in SCOPES],
            )
        )
        db.add(
            ClientGrant(
                tenant_id=tenant_row.id, client_pk=client.id, audience=audience, scope=SCOPES
            )
        )
        db.commit()


@pytest.fixture
def api(app):
    """A test client on T1 and ``token(*scopes)`` → a Management API bearer token."""
    grant_management_api(app, "t1", T1, "m2m")
    client = app.test_client()

    def token(*scopes: str, host: str = T1, credentials=M2M) -> str:
        response = client.post(
            "/oauth/token",
            base_url=f"http://{host}",
            data={
                "grant_type": "client_credentials",
                "audience": f"http://{host}/api/v2/",
                "scope": " ".join(scopes or SCOPES),
            },
            headers=basic(*credentials),
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["access_token"]

    client.token = token
    return client


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


__all__ = ["M2M", "SCOPES", "T1", "T2", "T2WEB", "bearer", "grant_management_api"]


def call(api, method, path, token=None, host=T1, **kwargs):
    """A Management API request on ``host`` with an optional bearer token."""
    headers = bearer(token) if token else {}
    return api.open(path, method=method, base_url=f"http://{host}", headers=headers, **kwargs)


def user_id(app, email, tenant="t1") -> str:
    return _in_tenant(app, User.user_id, User.tenant_id, User.email == email, tenant)


def connection_id(app, name, tenant="t1") -> str:
    return _in_tenant(app, Connection.id, Connection.tenant_id, Connection.name == name, tenant)


def _in_tenant(app, column, tenant_column, condition, tenant: str):
    """``column`` of the one row matching ``condition`` in the tenant named ``tenant``."""
    with app.extensions["login_site.sessionmaker"]() as db:
        return db.execute(
            select(column)
            .join(Tenant, Tenant.id == tenant_column)
            .where(condition, Tenant.name == tenant)
        ).scalar_one()
