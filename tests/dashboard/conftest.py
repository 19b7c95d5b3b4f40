"""The admin tenant on ``admin.localhost`` (plus ``admin.localhost:PORT`` for live servers), an
admin and a non-admin user, and ``signin(client)``: the real dashboard sign-in through the
admin tenant's hosted login, with the test client."""

from __future__ import annotations

import pytest

from login_site import admin as admin_setup
from login_site.accounts import SignupData
from login_site.accounts import create_database_user
from login_site.db import session_scope
from login_site.passwords import hash_password
from login_site.vault import keyring
from tests.conftest import csrf_token
from tests.conftest import query_of

ADMIN_HOST = "admin.localhost"
ADMIN = ("root@example.test", "Quiet-Harbor-Lantern-42")
NOBODY = ("clerk@example.test", "Paper-Mountain-Sailing-17")


def setup_admin_tenant(app, *hosts: str) -> None:
    """What ``login-site admin create`` does, plus a user without the admin role."""
    with app.app_context(), session_scope(app) as db:
        ring = keyring()
        tenant = None
        for host in hosts or (ADMIN_HOST,):
            tenant = admin_setup.ensure_admin_tenant(db, ring, host)
        admin_setup.create_admin(db, ring, tenant, *ADMIN)
        conn = admin_setup._connection(db, ring, tenant)
        create_database_user(
            db,
            tenant,
            conn,
            SignupData(email=NOBODY[0], password_hash=hash_password(NOBODY[1])),
        )


def scheme_of(host: str) -> str:
    """As the dashboard's callback: http on loopback hosts only."""
    return admin_setup.dashboard_callback(host).split(":", 1)[0]


def signin(client, user=ADMIN, host: str = ADMIN_HOST, path: str = "/dashboard/applications"):
    """Open ``path``, follow the sign-in through the hosted login, return the final response."""
    base = f"{scheme_of(host)}://{host}"
    response = client.get(path, base_url=base)
    assert response.status_code == 302, response.status_code
    response = client.get(response.headers["Location"], base_url=base)  # /dashboard/signin
    assert response.status_code == 302
    response = client.get(response.headers["Location"], base_url=base)  # /authorize
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    login_url = response.headers["Location"]
    page = client.get(login_url, base_url=base)
    assert page.status_code == 200
    response = client.post(
        "/login",
        base_url=base,
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "state": query_of(login_url)["state"],
            "connection": admin_setup.CONNECTION_NAME,
            "action": "login",
            "username": user[0],
            "password": user[1],
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    assert "/dashboard/callback?" in response.headers["Location"]
    response = client.get(response.headers["Location"], base_url=base)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return client.get(response.headers["Location"], base_url=base)


@pytest.fixture
def admin_app(app):
    setup_admin_tenant(app)
    return app


@pytest.fixture
def dash(admin_app):
    """A test client signed in to the dashboard as the admin."""
    client = admin_app.test_client()
    response = signin(client)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    client.base = f"http://{ADMIN_HOST}"
    return client
