"""Server-side sessions: checklist SE-01, SE-02, LG-09, OI-04, AZ-13."""

import time
from http.cookies import SimpleCookie

from login_site.models import LoginSession
from tests.conftest import T1
from tests.conftest import count
from tests.conftest import login_code
from tests.conftest import query_of
from tests.conftest import start_login

COOKIE = "login_site_session"


def prompt_none(client, **extra):
    params = {
        "client_id": "web",
        "redirect_uri": "https://app.test/cb",
        "response_type": "code",
        "scope": "openid",
        "state": "s",
        "prompt": "none",
        **extra,
    }
    return client.get("/authorize", base_url=f"http://{T1}", query_string=params)


def cookie_value(client) -> str | None:
    cookie = client.get_cookie(COOKIE, domain="t1.test")
    return cookie.value if cookie else None


def test_session_cookie_is_httponly_and_samesite_lax(client):
    page, state = start_login(client)
    from tests.conftest import submit_login

    response = submit_login(
        client, page, state, "alice@example.test", "correct horse battery Staple1"
    )
    header = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE)][0]
    parsed = SimpleCookie(header)[COOKIE]
    assert parsed["httponly"] and parsed["samesite"] == "Lax" and parsed["path"] == "/"
    assert not parsed["domain"]


def test_session_skips_the_login_page(client):
    login_code(client)
    response = prompt_none(client)
    assert "code" in query_of(response.headers["Location"])


def test_login_issues_a_new_session_id_and_old_cookie_is_not_logged_in(app, client):
    start_login(client)
    before = cookie_value(client)
    assert before
    login_code(client)
    after = cookie_value(client)
    assert after and after != before
    fresh = app.test_client()
    fresh.set_cookie(COOKIE, before, domain="t1.test")
    assert "error=login_required" in prompt_none(fresh).headers["Location"]


def test_logout_kills_the_session_on_the_server(app, client):
    login_code(client)
    stolen = cookie_value(client)
    response = client.get(
        "/v2/logout",
        base_url=f"http://{T1}",
        query_string={"client_id": "web", "returnTo": "https://app.test/bye"},
    )
    assert response.status_code == 302 and response.headers["Location"] == "https://app.test/bye"
    replay = app.test_client()
    replay.set_cookie(COOKIE, stolen, domain="t1.test")
    assert "error=login_required" in prompt_none(replay).headers["Location"]
    assert count(app, LoginSession) == 1  # kept, but revoked


def test_logout_never_redirects_to_an_unlisted_url(client):
    for return_to in (
        "https://evil.test/",
        "https://app.test/bye/",
        "https://app.test/byebye",
        "//evil.test",
    ):
        response = client.get(
            "/v2/logout",
            base_url=f"http://{T1}",
            query_string={"client_id": "web", "returnTo": return_to},
        )
        assert response.status_code == 200 and "Location" not in response.headers


def test_logout_without_client_uses_the_tenant_list(client):
    response = client.get(
        "/v2/logout", base_url=f"http://{T1}", query_string={"returnTo": "https://app.test/bye"}
    )
    assert response.headers["Location"] == "https://app.test/bye"


def test_prompt_login_shows_the_login_page_again(client):
    login_code(client)
    response = client.get(
        "/authorize",
        base_url=f"http://{T1}",
        query_string={
            "client_id": "web",
            "redirect_uri": "https://app.test/cb",
            "response_type": "code",
            "scope": "openid",
            "prompt": "login",
        },
    )
    assert response.headers["Location"].startswith("/login?")


def test_max_age_forces_a_fresh_login(client):
    login_code(client)
    time.sleep(1.1)
    response = prompt_none(client, max_age="0")
    assert "error=login_required" in response.headers["Location"]
    assert "code=" in prompt_none(client, max_age="3600").headers["Location"]


def test_idle_timeout_ends_the_session(app, client):
    login_code(client)
    with app.extensions["login_site.sessionmaker"]() as db:
        from datetime import timedelta

        record = db.query(LoginSession).one()
        record.last_seen_at -= timedelta(hours=100)
        db.commit()
    assert "error=login_required" in prompt_none(client).headers["Location"]
