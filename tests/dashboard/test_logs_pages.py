"""Dashboard Logs page with the Flask test client: the selected tenant's security events,
filters, time range, pages, and readable rejections of bad filters."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from login_site import audit
from login_site.models import Tenant
from tests.conftest import ALICE
from tests.conftest import T2
from tests.conftest import csrf_token
from tests.conftest import login_code
from tests.conftest import start_login
from tests.conftest import submit_login
from tests.dashboard.conftest import setup_admin_tenant
from tests.dashboard.test_browser import log_in
from tests.dashboard.test_browser import shot
from tests.dashboard.test_browser import sign_in
from tests.e2e.browser import open_login


def get(dash, path: str, **kwargs):
    return dash.get(path, base_url=dash.base, **kwargs)


def events_table(html: str) -> str:
    return html.split('id="events-title"', 1)[1].split("</section>", 1)[0]


def tenant_id(app, name: str) -> str:
    with app.extensions["login_site.sessionmaker"]() as db:
        return db.scalar(sa.select(Tenant.id).where(Tenant.name == name))


def store(app, tenant: str, *rows: tuple[str, str, dict, datetime]) -> None:
    tid = tenant_id(app, tenant)
    audit.write(
        app.extensions["login_site.engine"],
        [
            audit.make_row(tid, name, outcome, fields, time=time)
            for name, outcome, fields, time in rows
        ],
    )


def test_logs_show_the_selected_tenants_logins(app, dash):
    t1 = app.test_client()
    page, state = start_login(t1)
    submit_login(t1, page, state, ALICE[0], "a-wrong-Password-1")
    login_code(t1)
    t2 = app.test_client()
    page, state = start_login(t2, T2, client_id="t2web")
    submit_login(t2, page, state, "bob@example.test", "a-wrong-Password-1", host=T2)
    response = get(dash, "/dashboard/logs")
    assert response.status_code == 200
    table = events_table(response.get_data(as_text=True))
    assert table.count(">login<") == 2
    assert ">failure<" in table and ">success<" in table
    assert "invalid_user_password" in table
    assert "127.0.0.1" in table
    assert ">web<" in table
    assert "2 events" in response.get_data(as_text=True)


def test_switching_tenant_shows_that_tenants_events(app, dash):
    now = datetime.now(UTC)
    store(app, "t1", ("signup", "success", {"connection": "db"}, now))
    store(app, "t2", ("login", "failure", {"connection": "t2-only-conn"}, now))
    page = get(dash, "/dashboard/logs")
    assert "t2-only-conn" not in events_table(page.get_data(as_text=True))
    switched = dash.post(
        "/dashboard/tenant",
        base_url=dash.base,
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "tenant": tenant_id(app, "t2"),
        },
    )
    assert switched.status_code == 303
    table = events_table(get(dash, "/dashboard/logs").get_data(as_text=True))
    assert "t2-only-conn" in table and ">signup<" not in table


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ({"event": "login"}, ["conn-a", "conn-b"], ["conn-c"]),
        ({"event": "login", "outcome": "failure"}, ["conn-a"], ["conn-b", "conn-c"]),
        ({"user": "auth0|bbb"}, ["conn-b"], ["conn-a", "conn-c"]),
        ({"connection": "conn-c"}, ["conn-c"], ["conn-a", "conn-b"]),
        ({"since": "2026-03-01T10:30"}, ["conn-b", "conn-c"], ["conn-a"]),
        ({"until": "2026-03-01T10:30"}, ["conn-a"], ["conn-b", "conn-c"]),
        (
            {"since": "2026-03-01T10:30", "until": "2026-03-01T11:30"},
            ["conn-b"],
            ["conn-a", "conn-c"],
        ),
        ({"since": "2026-03-01T11:00:00"}, ["conn-b", "conn-c"], ["conn-a"]),
    ],
)
def test_filters_narrow_the_events(backend, app, dash, query, shown, hidden):
    base = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    store(
        app,
        "t1",
        ("login", "failure", {"connection": "conn-a", "user_id": "auth0|aaa"}, base),
        (
            "login",
            "success",
            {"connection": "conn-b", "user_id": "auth0|bbb"},
            base + timedelta(hours=1),
        ),
        (
            "signup",
            "success",
            {"connection": "conn-c", "user_id": "auth0|ccc"},
            base + timedelta(hours=2),
        ),
    )
    response = get(dash, "/dashboard/logs", query_string=query)
    assert response.status_code == 200
    table = events_table(response.get_data(as_text=True))
    for name in shown:
        assert name in table
    for name in hidden:
        assert name not in table


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"since": "yesterday"}, "Enter a date and time"),
        ({"until": "2026-13-45T99:99"}, "Enter a date and time"),
        ({"since": "2026-03-02T00:00", "until": "2026-03-01T00:00"}, "The end must come after"),
    ],
)
def test_a_bad_time_is_a_400_naming_the_problem_and_is_not_applied(app, dash, query, message):
    store(app, "t1", ("login", "success", {"connection": "still-listed"}, datetime.now(UTC)))
    response = get(dash, "/dashboard/logs", query_string=query)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert message in html
    assert 'aria-invalid="true"' in html
    assert "still-listed" in events_table(html)


@pytest.mark.parametrize(
    "query",
    [
        {"page": "-3"},
        {"page": "x"},
        {"page": "9" * 40},
        {"_external": "1", "_anchor": "x", "event": "\x00"},
        {"user": "u" * 5000},
    ],
)
def test_odd_query_strings_never_fail(dash, query):
    assert get(dash, "/dashboard/logs", query_string=query).status_code == 200


def test_pages_go_from_newest_to_oldest_and_keep_the_filters(app, dash):
    now = datetime.now(UTC)
    store(
        app,
        "t1",
        *[
            ("login", "failure", {"connection": f"c{i:02d}"}, now - timedelta(minutes=i))
            for i in range(60)
        ],
        ("signup", "success", {"connection": "not-a-login"}, now),
    )
    first = get(dash, "/dashboard/logs", query_string={"event": "login"}).get_data(as_text=True)
    table = events_table(first)
    assert "60 events" in first
    assert ">c00<" in table and ">c49<" in table and ">c50<" not in table
    assert table.index(">c00<") < table.index(">c49<")
    assert 'href="/dashboard/logs?page=1&amp;event=login"' in table
    second = events_table(
        get(dash, "/dashboard/logs", query_string={"event": "login", "page": 1}).get_data(
            as_text=True
        )
    )
    assert ">c50<" in second and ">c59<" in second and ">c49<" not in second
    assert "not-a-login" not in second
    assert 'rel="prev"' in second and 'rel="next"' not in second


def test_event_values_are_escaped(app, dash):
    store(
        app,
        "t1",
        (
            "login",
            "failure",
            {"reason": "<script>alert(1)</script>", "connection": "<b>x</b>"},
            datetime.now(UTC),
        ),
    )
    html = get(dash, "/dashboard/logs").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


def test_admin_changes_show_actor_and_target(app, dash):
    with app.extensions["login_site.sessionmaker"]() as db:
        alice = db.execute(
            sa.text("SELECT user_id FROM users WHERE email = :e"), {"e": ALICE[0]}
        ).scalar()
    path = "/dashboard/users/" + alice.replace("|", "%7C")
    page = get(dash, path)
    dash.post(
        path + "/block",
        base_url=dash.base,
        data={"csrf_token": csrf_token(page.get_data(as_text=True))},
    )
    table = events_table(
        get(dash, "/dashboard/logs", query_string={"event": "dashboard.user_blocked"}).get_data(
            as_text=True
        )
    )
    assert f"user:{alice}" in table
    assert "auth0|" in table.split(f"user:{alice}", 1)[1]  # the acting admin's user_id


def test_the_logs_page_needs_an_admin(admin_app):
    app = admin_app
    response = app.test_client().get("/dashboard/logs", base_url="http://admin.localhost")
    assert response.status_code == 302
    assert "/dashboard/signin" in response.headers["Location"]
    assert app.test_client().get("/dashboard/logs", base_url="http://t1.test").status_code == 404


# --- in Chromium ----------------------------------------------------------------------------


@pytest.fixture
def server(live_server):
    """The app on a loopback port with the admin tenant on ``admin.localhost:PORT``."""
    setup_admin_tenant(live_server.app, f"admin.localhost:{live_server.port}")
    return live_server


@pytest.mark.e2e
def test_in_chromium_a_failed_login_shows_in_the_logs_and_filters_apply(page, server):
    open_login(page, server)
    log_in(page, (ALICE[0], "a-wrong-Password-1"))
    expect(page.get_by_role("alert")).to_be_visible()
    sign_in(page, server)
    page.get_by_role("navigation", name="Dashboard sections").get_by_role(
        "link", name="Logs"
    ).click()
    page.wait_for_url("**/dashboard/logs")
    table = page.locator("#events-title").locator("..")
    expect(table.get_by_role("cell", name="invalid_user_password")).to_be_visible()
    shot(page, "logs")
    page.get_by_label("Event", exact=True).select_option("login")
    page.get_by_label("Outcome").select_option("failure")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#events-title")).to_have_text("1 event")
    page.get_by_label("From (UTC)").fill("2001-01-01T00:00:00")
    page.get_by_label("To (UTC)").fill("2001-01-02T00:00:00")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#events-title")).to_have_text("0 events")
    shot(page, "logs-filtered")
