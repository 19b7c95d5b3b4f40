"""The dashboard through the Flask test client: who may reach it, CSRF, the sign-in's
checks, and that each form calls the Management services and shows their errors inline."""

from __future__ import annotations

import html
import json
import logging
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from login_site import admin as admin_setup
from login_site.cli import main
from login_site.dashboard.views import safe_next
from login_site.models import Client
from login_site.models import Connection
from login_site.models import Tenant
from login_site.models import User
from login_site.models.event import SecurityEvent
from tests.conftest import ALICE
from tests.conftest import T1
from tests.conftest import WEB_SECRET
from tests.conftest import basic
from tests.conftest import count
from tests.conftest import csrf_token
from tests.conftest import query_of
from tests.conftest import start_login
from tests.dashboard.conftest import ADMIN
from tests.dashboard.conftest import ADMIN_HOST
from tests.dashboard.conftest import NOBODY
from tests.dashboard.conftest import signin

BASE = f"http://{ADMIN_HOST}"


def get(client, path: str, **kwargs):
    return client.get(path, base_url=BASE, **kwargs)


def post(client, path: str, data: dict, token_from: str | None = None):
    """POST with the CSRF token of the page at ``token_from`` (default: ``path``)."""
    page = get(client, token_from or path)
    assert page.status_code == 200, page.status_code
    return client.post(
        path, base_url=BASE, data={"csrf_token": csrf_token(page.get_data(as_text=True)), **data}
    )


def tenant_row(db, name: str) -> Tenant:
    return db.execute(select(Tenant).where(Tenant.name == name)).scalar_one()


def t1_connection(db, name: str) -> Connection:
    return db.execute(
        select(Connection).where(
            Connection.tenant_id == tenant_row(db, "t1").id, Connection.name == name
        )
    ).scalar_one()


def t1_client(db, client_id: str) -> Client:
    return db.execute(
        select(Client).where(
            Client.tenant_id == tenant_row(db, "t1").id, Client.client_id == client_id
        )
    ).scalar_one()


def select_t1(dash, db) -> None:
    response = post(
        dash, "/dashboard/tenant", {"tenant": tenant_row(db, "t1").id}, "/dashboard/tenants"
    )
    assert response.status_code == 303


@pytest.fixture
def dashboard_events(caplog):
    caplog.set_level(logging.INFO, logger="login_site.events")

    def events() -> list[dict]:
        records = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith("events")]
        return [r for r in records if r["event"].startswith("dashboard.")]

    return events


# --- who reaches it ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/dashboard/", "/dashboard/signin", "/dashboard/callback", "/dashboard/applications"]
)
def test_the_dashboard_does_not_exist_on_a_normal_tenant_host(admin_app, path):
    response = admin_app.test_client().get(path, base_url=f"http://{T1}")
    assert response.status_code == 404


def test_an_admin_signed_in_on_the_admin_host_cannot_reach_it_from_a_tenant_host(dash):
    assert get(dash, "/dashboard/applications").status_code == 200
    response = dash.get("/dashboard/applications", base_url=f"http://{T1}")
    assert response.status_code == 404


def test_the_admin_role_in_an_ordinary_tenant_grants_nothing(admin_app, db):
    alice = db.execute(select(User).where(User.email == ALICE[0])).scalars().first()
    alice.app_metadata = {"roles": ["admin"]}
    db.commit()
    client = admin_app.test_client()
    page, state = start_login(client)
    assert client.get("/dashboard/", base_url=f"http://{T1}").status_code == 404


def test_a_visitor_is_sent_to_sign_in_and_a_post_is_refused(admin_app):
    client = admin_app.test_client()
    response = get(client, "/dashboard/applications")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/dashboard/signin?next=/dashboard/applications")
    token = csrf_token(get(client, "/dashboard/signin", follow_redirects=True).get_data(True))
    before = count(admin_app, Client)
    response = client.post(
        "/dashboard/applications/new",
        base_url=BASE,
        data={"csrf_token": token, "name": "sneaky", "app_type": "spa"},
    )
    assert response.status_code == 401
    assert count(admin_app, Client) == before


def test_a_user_without_the_admin_role_gets_403_on_every_page(admin_app):
    client = admin_app.test_client()
    response = signin(client, NOBODY)
    assert response.status_code == 403
    assert "Not an administrator" in response.get_data(as_text=True)
    for path in ("/dashboard/applications", "/dashboard/connections", "/dashboard/tenants"):
        assert get(client, path).status_code == 403


def test_a_blocked_admin_is_refused(admin_app, db, dash):
    root = db.execute(select(User).where(User.email == ADMIN[0])).scalar_one()
    root.blocked = True
    db.commit()
    assert get(dash, "/dashboard/applications").status_code == 403


def test_signing_out_ends_the_dashboard_session(dash):
    response = post(dash, "/dashboard/signout", {}, "/dashboard/applications")
    assert response.status_code == 200
    assert get(dash, "/dashboard/applications").status_code == 302


# --- CSRF -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/dashboard/applications/new", {"name": "No Token", "app_type": "spa"}),
        ("/dashboard/tenants", {"name": "notoken", "friendly_name": "x", "hosts": "x.test"}),
        ("/dashboard/applications/web/credentials/rotate", {}),
        ("/dashboard/applications/web/connections", {"shown": "x"}),
        ("/dashboard/signout", {}),
    ],
)
def test_a_post_without_csrf_token_is_refused_and_changes_nothing(admin_app, dash, path, data):
    before = (count(admin_app, Client), count(admin_app, Tenant))
    response = dash.post(path, base_url=BASE, data=data)
    assert response.status_code == 400
    assert (count(admin_app, Client), count(admin_app, Tenant)) == before
    assert get(dash, "/dashboard/applications").status_code == 200  # still signed in


def test_a_post_with_another_sessions_csrf_token_is_refused(admin_app, dash):
    other = admin_app.test_client()
    foreign = csrf_token(get(other, "/dashboard/signin", follow_redirects=True).get_data(True))
    response = dash.post(
        "/dashboard/applications/new",
        base_url=BASE,
        data={"csrf_token": foreign, "name": "Foreign", "app_type": "spa"},
    )
    assert response.status_code == 400


# --- the sign-in ------------------------------------------------------------------------


def _to_callback(client, user=ADMIN):
    """Run the sign-in up to the callback URL (not followed)."""
    response = get(client, "/dashboard/signin")
    authorize = response.headers["Location"]
    login_url = client.get(authorize, base_url=BASE).headers["Location"]
    page = client.get(login_url, base_url=BASE)
    response = client.post(
        "/login",
        base_url=BASE,
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "state": query_of(login_url)["state"],
            "connection": admin_setup.CONNECTION_NAME,
            "action": "login",
            "username": user[0],
            "password": user[1],
        },
    )
    return authorize, response.headers["Location"]


def test_the_sign_in_uses_pkce_and_its_code_cannot_be_replayed(backend, admin_app):
    client = admin_app.test_client()
    authorize, callback = _to_callback(client)
    params = query_of(authorize)
    assert params["code_challenge_method"] == "S256" and params["nonce"]
    assert get(client, callback).status_code == 303
    assert get(client, "/dashboard/applications").status_code == 200
    assert get(client, callback).status_code == 400  # the code is spent


def test_the_callback_refuses_a_state_it_did_not_issue(admin_app):
    client = admin_app.test_client()
    _authorize, callback = _to_callback(client)
    parts = urlsplit(callback)
    tampered = callback.replace(query_of(callback)["state"], "forged-state")
    assert parts.path == "/dashboard/callback"
    assert get(client, tampered).status_code == 400
    assert get(client, "/dashboard/applications").status_code == 302  # not signed in


def test_the_callback_refuses_a_code_from_another_browser(admin_app):
    victim, attacker = admin_app.test_client(), admin_app.test_client()
    _authorize, callback = _to_callback(victim)
    get(attacker, "/dashboard/signin")  # the attacker's own pending sign-in
    assert get(attacker, callback).status_code == 400
    assert get(attacker, "/dashboard/applications").status_code == 302


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/dashboard/connections?kind=social", "/dashboard/connections?kind=social"),
        ("//evil.test/dashboard", ""),
        ("https://evil.test/dashboard", ""),
        ("/dashboard\\@evil.test", ""),
        ("/authorize?client_id=x", ""),
        ("/dashboard/" + "x" * 2000, ""),
        (None, ""),
    ],
)
def test_only_dashboard_paths_are_kept_to_return_to(value, expected):
    assert safe_next(value) == expected


# --- applications -----------------------------------------------------------------------


def test_creating_an_application_calls_the_service_and_records_who(
    backend, admin_app, dash, db, dashboard_events
):
    select_t1(dash, db)
    response = post(dash, "/dashboard/applications/new", {"name": "Shop", "app_type": "spa"})
    assert response.status_code == 303
    client = db.execute(select(Client).where(Client.name == "Shop")).scalar_one()
    assert client.tenant_id == tenant_row(db, "t1").id
    assert client.token_endpoint_auth_method == "none"  # the service's default for a SPA
    assert response.headers["Location"] == f"/dashboard/applications/{client.client_id}"
    root = db.execute(select(User).where(User.email == ADMIN[0])).scalar_one()
    created = [e for e in dashboard_events() if e["event"] == "dashboard.client_created"]
    assert created == [
        {
            "event": "dashboard.client_created",
            "outcome": "success",
            "actor": root.user_id,
            "tenant": "t1",
            "tenant_id": client.tenant_id,
            "target": f"client:{client.client_id}",
            "ip": "127.0.0.1",
            "request_id": created[0]["request_id"],
        }
    ]


def test_an_application_name_in_use_is_refused_on_the_name_field(dash, db):
    select_t1(dash, db)
    response = post(dash, "/dashboard/applications/new", {"name": "web", "app_type": "spa"})
    assert response.status_code == 400
    assert (
        '<p class="field-error" id="name-error">A client with the same name already exists.</p>'
        in response.get_data(as_text=True)
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "callbacks",
            "https://app.test/cb\nhttps://app.test/x#frag",
            "Line 2: must not contain a fragment.",
        ),
        ("callbacks", "https://*.app.test/cb", "Line 1: must not contain wildcards."),
        (
            "callbacks",
            "http://app.test/cb",
            "Line 1: must use https (http is allowed on loopback hosts only).",
        ),
        (
            "allowed_logout_urls",
            "javascript:alert(1)",
            "Line 1: the javascript: scheme is not allowed.",
        ),
        (
            "web_origins",
            "https://app.test/path",
            "Line 1: must be an origin (scheme://host[:port]).",
        ),
        (
            "allowed_origins",
            "https://*.app.test",
            "Line 1: must be an origin (scheme://host[:port]).",
        ),
    ],
)
def test_url_errors_from_the_service_are_shown_on_their_field_and_nothing_is_saved(
    dash, db, field, value, message
):
    select_t1(dash, db)
    page = get(dash, "/dashboard/applications/web").get_data(as_text=True)
    data = {
        "csrf_token": csrf_token(page),
        "name": "web",
        "app_type": "regular_web",
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["authorization_code"],
        "callbacks": "https://app.test/cb",
        field: value,
    }
    response = dash.post("/dashboard/applications/web", base_url=BASE, data=data)
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert f'<p class="field-error" id="{field}-error">{message}</p>' in text
    assert f'id="{field}" name="{field}" rows="3" spellcheck="false" aria-invalid="true"' in text
    db.expire_all()
    web = t1_client(db, "web")
    assert web.grant_types != ["authorization_code"]


def test_saving_settings_updates_the_application(dash, db, dashboard_events):
    select_t1(dash, db)
    page = get(dash, "/dashboard/applications/spa").get_data(as_text=True)
    response = dash.post(
        "/dashboard/applications/spa",
        base_url=BASE,
        data={
            "csrf_token": csrf_token(page),
            "name": "spa",
            "description": "The single-page app",
            "app_type": "spa",
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "callbacks": "http://127.0.0.1:8765/cb, http://127.0.0.1:8765/cb2",
            "web_origins": "http://127.0.0.1:8765",
            "allowed_origins": "",
            "allowed_logout_urls": "",
        },
    )
    assert response.status_code == 303
    db.expire_all()
    spa = t1_client(db, "spa")
    assert spa.callbacks == ["http://127.0.0.1:8765/cb", "http://127.0.0.1:8765/cb2"]
    assert spa.allowed_origins == [] and spa.description == "The single-page app"
    assert [e["event"] for e in dashboard_events()][-1] == "dashboard.client_updated"


def test_the_secret_is_shown_only_after_a_post_and_rotation_replaces_it(app, dash, db):
    select_t1(dash, db)
    shown = get(dash, "/dashboard/applications/web/credentials").get_data(as_text=True)
    assert WEB_SECRET not in shown
    revealed = post(
        dash,
        "/dashboard/applications/web/credentials/reveal",
        {},
        "/dashboard/applications/web/credentials",
    )
    assert revealed.status_code == 200 and WEB_SECRET in revealed.get_data(as_text=True)
    assert revealed.headers["Cache-Control"] == "no-store"
    rotated = post(
        dash,
        "/dashboard/applications/web/credentials/rotate",
        {},
        "/dashboard/applications/web/credentials",
    )
    text = rotated.get_data(as_text=True)
    assert rotated.status_code == 200 and WEB_SECRET not in text
    new_secret = text.split('id="client-secret">', 1)[1].split("<", 1)[0]
    token = app.test_client().post(
        "/oauth/token",
        base_url=f"http://{T1}",
        data={
            "grant_type": "authorization_code",
            "code": "x",
            "redirect_uri": "https://app.test/cb",
        },
        headers=basic("web", WEB_SECRET),
    )
    assert token.status_code == 401  # the old secret stopped working
    token = app.test_client().post(
        "/oauth/token",
        base_url=f"http://{T1}",
        data={
            "grant_type": "authorization_code",
            "code": "x",
            "redirect_uri": "https://app.test/cb",
        },
        headers=basic("web", new_secret),
    )
    assert token.get_json()["error"] == "invalid_grant"  # authenticated; the code is wrong


def test_the_connections_tab_toggles_what_the_login_page_offers(backend, admin_app, dash, db):
    select_t1(dash, db)
    page = get(dash, "/dashboard/applications/web/connections").get_data(as_text=True)
    conns = {
        c.name: c.id
        for c in db.execute(
            select(Connection).where(Connection.tenant_id == tenant_row(db, "t1").id)
        ).scalars()
    }
    assert f'name="enabled" value="{conns["db"]}" data-connection="db" checked' in page
    shown = list(conns.values())
    enabled = [conns["partners-db"], conns["email-otp"]]  # db and sms off, the rest as shown
    response = dash.post(
        "/dashboard/applications/web/connections",
        base_url=BASE,
        data={"csrf_token": csrf_token(page), "shown": shown, "enabled": enabled},
    )
    assert response.status_code == 303
    browser = admin_app.test_client()
    login, _state = start_login(browser)
    text = login.get_data(as_text=True)
    assert 'data-connection="partners-db"' in text
    assert 'data-connection="db"' not in text and 'data-connection="sms"' not in text


def test_deleting_the_dashboards_own_client_is_refused(dash, db):
    admin_tenant = db.execute(select(Tenant)).scalars().all()
    admin_tenant = next(t for t in admin_tenant if t.setting("admin"))
    post(dash, "/dashboard/tenant", {"tenant": admin_tenant.id}, "/dashboard/tenants")
    client = db.execute(select(Client).where(Client.tenant_id == admin_tenant.id)).scalar_one()
    response = post(
        dash,
        f"/dashboard/applications/{client.client_id}/delete",
        {},
        f"/dashboard/applications/{client.client_id}",
    )
    assert response.status_code == 303
    assert db.get(Client, client.id) is not None
    assert get(dash, "/dashboard/applications").status_code == 200


def test_an_unknown_application_is_a_404_page(dash):
    response = get(dash, "/dashboard/applications/nope/credentials")
    assert response.status_code == 404
    assert "The client does not exist." in response.get_data(as_text=True)


# --- connections ------------------------------------------------------------------------


def test_a_database_connection_is_created_with_real_fields(backend, dash, db, dashboard_events):
    select_t1(dash, db)
    response = post(
        dash,
        "/dashboard/connections/new",
        {
            "kind": "database",
            "strategy": "auth0",
            "name": "staff",
            "display_name": "Staff",
            "passwordPolicy": "excellent",
            "min_length": "14",
            "history": "on",
            "history_size": "3",
            "dictionary": "on",
            "disable_signup": "on",
        },
        "/dashboard/connections/new?kind=database",
    )
    assert response.status_code == 303
    conn = t1_connection(db, "staff")
    assert response.headers["Location"] == f"/dashboard/connections/{conn.id}/applications"
    assert conn.strategy == "auth0" and conn.display_name == "Staff"
    assert conn.options["passwordPolicy"] == "excellent"
    assert conn.options["password_complexity_options"] == {"min_length": 14}
    assert conn.options["password_history"] == {"enable": True, "size": 3}
    assert conn.options["password_dictionary"] == {"enable": True}
    assert conn.options["disable_signup"] is True
    assert conn.options["brute_force_protection"] is False
    assert dashboard_events()[-1]["target"] == f"connection:{conn.id}"


def test_editing_a_database_connection_keeps_the_options_without_a_field(dash, db):
    select_t1(dash, db)
    conn = t1_connection(db, "widget-b-db")
    conn.options = {
        **conn.options,
        "validation": {"username": {"min": 3, "max": 20}},
        "password_dictionary": {"enable": False, "dictionary": ["acme"]},
    }
    db.commit()
    page = get(dash, f"/dashboard/connections/{conn.id}").get_data(as_text=True)
    assert 'id="brute_force_protection" name="brute_force_protection" checked' in page  # default
    assert 'id="requires_username" name="requires_username" checked' in page
    response = dash.post(
        f"/dashboard/connections/{conn.id}",
        base_url=BASE,
        data={"csrf_token": csrf_token(page), "passwordPolicy": "fair", "dictionary": "on"},
    )
    assert response.status_code == 303
    db.expire_all()
    options = db.get(Connection, conn.id).options
    assert options["passwordPolicy"] == "fair"
    assert options["validation"] == {"username": {"min": 3, "max": 20}}
    assert options["password_dictionary"] == {"enable": True, "dictionary": ["acme"]}
    assert options["requires_username"] is False  # unticked
    assert options["brute_force_protection"] is False


def test_a_bad_number_is_shown_on_its_field(dash, db):
    select_t1(dash, db)
    conn = t1_connection(db, "db")
    response = post(
        dash, f"/dashboard/connections/{conn.id}", {"passwordPolicy": "good", "min_length": "500"}
    )
    assert response.status_code == 400
    assert (
        '<p class="field-error" id="min_length-error">Enter a whole number from 1 to 128.</p>'
        in response.get_data(as_text=True)
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            "{not json",
            "Not valid JSON (line 1, column 2): Expecting property name enclosed in double quotes.",
        ),
        ("[1, 2]", "Enter a JSON object: { … }."),
        pytest.param("[" * 20_000 + "]" * 20_000, "Not valid JSON.", id="deep"),
        ('{"totp": {"length": 99}}', "options.totp.length must be an integer"),
    ],
)
def test_json_options_errors_are_shown_on_the_options_field(dash, db, options, message):
    select_t1(dash, db)
    response = post(
        dash,
        "/dashboard/connections/new",
        {"kind": "passwordless", "strategy": "email", "name": "mail-code", "options": options},
        "/dashboard/connections/new?kind=passwordless",
    )
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert '<p class="field-error" id="options-error">' + message in text
    assert db.execute(select(Connection).where(Connection.name == "mail-code")).first() is None


def test_a_connection_name_is_checked_by_the_service(dash, db):
    select_t1(dash, db)
    response = post(
        dash,
        "/dashboard/connections/new",
        {"kind": "social", "strategy": "github", "name": "bad name!", "options": "{}"},
        "/dashboard/connections/new?kind=social",
    )
    assert response.status_code == 400
    assert "Must be letters, digits and &#39;-&#39;" in response.get_data(as_text=True)


def test_the_applications_tab_of_a_connection_toggles_clients(dash, db):
    select_t1(dash, db)
    conn = t1_connection(db, "closed-db")
    assert conn.enabled_client_ids == set()
    page = get(dash, f"/dashboard/connections/{conn.id}/applications").get_data(as_text=True)
    response = dash.post(
        f"/dashboard/connections/{conn.id}/applications",
        base_url=BASE,
        data={"csrf_token": csrf_token(page), "shown": ["web", "spa"], "enabled": ["spa"]},
    )
    assert response.status_code == 303
    db.expire_all()
    spa = t1_client(db, "spa")
    assert db.get(Connection, conn.id).enabled_client_ids == {spa.id}


def test_try_refuses_a_callback_without_its_cookie_or_replayed(admin_app, dash, db):
    select_t1(dash, db)
    conn = t1_connection(db, "db")
    response = post(
        dash, f"/dashboard/connections/{conn.id}/try", {}, f"/dashboard/connections/{conn.id}"
    )
    assert response.status_code == 303
    authorize = response.headers["Location"]
    params = query_of(authorize)
    assert params["connection"] == "db" and params["prompt"] == "login"
    host = urlsplit(authorize).netloc
    assert host == T1 or host.endswith(".localhost") or host in ("t1.localhost",)
    # the user logs in on the tenant's host
    login_url = dash.get(authorize, base_url=f"http://{host}").headers["Location"]
    page = dash.get(login_url, base_url=f"http://{host}")
    done = dash.post(
        "/login",
        base_url=f"http://{host}",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "state": query_of(login_url)["state"],
            "connection": "db",
            "action": "login",
            "username": ALICE[0],
            "password": ALICE[1],
        },
    )
    callback = done.headers["Location"]
    assert callback.startswith(f"{BASE}/dashboard/try/callback?")
    stranger = admin_app.test_client()
    signin(stranger)
    assert stranger.get(callback).status_code == 400  # not the browser that started it
    result = dash.get(callback)
    assert result.status_code == 200
    assert '"email": "alice@example.test"' in html.unescape(result.get_data(as_text=True))
    again = dash.get(callback)
    assert again.status_code == 400  # the code is spent and the cookie gone


# --- tenants ----------------------------------------------------------------------------


def test_a_new_tenant_answers_on_its_host_with_its_branding(backend, admin_app, dash, db):
    response = post(
        dash,
        "/dashboard/tenants",
        {
            "name": "shop",
            "friendly_name": "The Shop",
            "hosts": "login.shop.test\nLOGIN.shop.test",
            "primary": "#112233",
            "logo_url": "https://shop.test/logo.png",
        },
    )
    assert response.status_code == 303
    shop = tenant_row(db, "shop")
    assert [h.host for h in shop.hosts] == ["login.shop.test"]
    assert shop.settings["branding"] == {
        "colors": {"primary": "#112233"},
        "logo_url": "https://shop.test/logo.png",
    }
    css = admin_app.test_client().get("/branding.css", base_url="http://login.shop.test")
    assert "--primary: #112233;" in css.get_data(as_text=True)
    discovery = admin_app.test_client().get(
        "/.well-known/jwks.json", base_url="http://login.shop.test"
    )
    assert discovery.status_code == 200 and discovery.get_json()["keys"]
    assert (
        db.execute(select(Connection).where(Connection.tenant_id == shop.id)).scalar_one().strategy
        == "auth0"
    )
    # the new tenant is selected
    assert "The Shop" in get(dash, "/dashboard/applications").get_data(as_text=True)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": "Bad Name"}, "name", "Use 1-63 lower-case letters"),
        ({"name": "t1"}, "name", "A tenant with this name already exists."),
        ({"hosts": T1}, "hosts", f"{T1} already belongs to another tenant."),
        ({"hosts": "not a host"}, "hosts", "Line 1: not a host[:port] value."),
        ({"hosts": ""}, "hosts", "Enter at least one host name"),
        ({"primary": "red"}, "primary", "Enter a colour as #rrggbb."),
        ({"logo_url": "http://shop.test/logo.png"}, "logo_url", "The logo URL must use https"),
    ],
)
def test_the_tenant_form_shows_what_is_wrong(admin_app, dash, data, field, message):
    before = count(admin_app, Tenant)
    form = {"name": "shop", "friendly_name": "Shop", "hosts": "shop.test", **data}
    response = post(dash, "/dashboard/tenants", form)
    assert response.status_code == 400
    assert f'<p class="field-error" id="{field}-error">{message}' in response.get_data(as_text=True)
    assert count(admin_app, Tenant) == before


def test_the_dashboard_host_cannot_be_removed_from_the_admin_tenant(dash, db):
    admin_tenant = next(t for t in db.execute(select(Tenant)).scalars() if t.setting("admin"))
    path = f"/dashboard/tenants/{admin_tenant.id}"
    response = post(dash, path, {"friendly_name": "Admin", "hosts": "admin.example.test"})
    assert response.status_code == 400
    assert f"{ADMIN_HOST} is the host of this dashboard: keep it." in response.get_data(True)


def test_switching_to_an_unknown_tenant_is_a_404(dash):
    response = post(dash, "/dashboard/tenant", {"tenant": "ten_nope"}, "/dashboard/applications")
    assert response.status_code == 404


# --- setup ------------------------------------------------------------------------------


def test_admin_create_checks_the_password_policy_and_grants_the_role(app, db):
    runner = app.test_cli_runner()
    weak = runner.invoke(
        main,
        [
            "admin",
            "create",
            "--email",
            "boss@example.test",
            "--password",
            "boss12",
            "--host",
            "boss.test",
        ],
    )
    assert weak.exit_code == 1
    assert "The password is too weak: At least 12 characters in length" in weak.output
    assert db.execute(select(User).where(User.email == "boss@example.test")).first() is None
    ok = runner.invoke(
        main,
        [
            "admin",
            "create",
            "--email",
            "boss@example.test",
            "--password",
            "Velvet-Orchard-Compass-93",
            "--host",
            "boss.test",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "dashboard: https://boss.test/dashboard/" in ok.output
    boss = db.execute(select(User).where(User.email == "boss@example.test")).scalar_one()
    assert boss.app_metadata == {"roles": ["admin"]}
    assert tenant_row(db, "admin").setting("admin") is True


def test_admin_create_needs_a_host_the_first_time(app):
    result = app.test_cli_runner().invoke(
        main,
        [
            "admin",
            "create",
            "--email",
            "boss@example.test",
            "--password",
            "Velvet-Orchard-Compass-93",
        ],
    )
    assert result.exit_code == 1
    assert "there is no admin tenant yet: give the host it answers on" in result.output


def test_the_demo_admin_can_sign_in_on_admin_localhost(app):
    url, email, password = admin_setup.seed_demo(app, 5000)
    assert url == "http://admin.localhost:5000/dashboard/"
    again = admin_setup.seed_demo(app, 5000)
    assert again == (url, email, password)  # idempotent, same generated password
    client = app.test_client()
    response = signin(client, (email, password), host="admin.localhost:5000")
    assert response.status_code == 200


# --- checklist MG-08, MG-09 -------------------------------------------------------------


def test_a_dashboard_session_does_not_authenticate_the_management_api(dash):
    response = dash.get("/api/v2/clients", base_url=BASE)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_dashboard_change_is_kept_in_the_tenants_security_events(backend, admin_app, dash, db):
    select_t1(dash, db)
    page = get(dash, "/dashboard/applications/m2m").get_data(as_text=True)
    response = dash.post(
        "/dashboard/applications/m2m",
        base_url=BASE,
        data={
            "csrf_token": csrf_token(page),
            "name": "m2m renamed",
            "app_type": "non_interactive",
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["client_credentials"],
        },
    )
    assert response.status_code == 303
    root = db.execute(select(User).where(User.email == ADMIN[0])).scalar_one()
    db.expire_all()
    row = db.execute(
        select(SecurityEvent).where(SecurityEvent.name == "dashboard.client_updated")
    ).scalar_one()
    assert row.tenant_id == tenant_row(db, "t1").id
    assert (row.outcome, row.actor, row.target) == ("success", root.user_id, "client:m2m")
    assert row.time.tzinfo is not None


def test_the_admin_cannot_disable_the_connection_they_signed_in_with(dash, db):
    admin_tenant = next(t for t in db.execute(select(Tenant)).scalars() if t.setting("admin"))
    post(dash, "/dashboard/tenant", {"tenant": admin_tenant.id}, "/dashboard/tenants")
    client = db.execute(select(Client).where(Client.tenant_id == admin_tenant.id)).scalar_one()
    conn = db.execute(
        select(Connection).where(Connection.tenant_id == admin_tenant.id)
    ).scalar_one()
    path = f"/dashboard/applications/{client.client_id}/connections"
    response = post(dash, path, {"shown": conn.id})  # its box unticked
    assert response.status_code == 303
    text = get(dash, path).get_data(as_text=True)
    assert "admin-users stays enabled for the Dashboard: you signed in with it." in text
    db.expire_all()
    assert client.id in db.get(Connection, conn.id).enabled_client_ids
    path = f"/dashboard/connections/{conn.id}/applications"
    assert post(dash, path, {"shown": client.client_id}).status_code == 303
    db.expire_all()
    assert client.id in db.get(Connection, conn.id).enabled_client_ids
