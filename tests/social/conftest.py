"""Social and enterprise logins against the loopback providers of tests/fixtures/upstream.py.

``connect(flavour, strategy, **options)`` creates a connection of tenant T1 through the
Management API's own service (so options are validated and secrets sealed as in production),
enabled for ``web``, pointing at the loopback provider. ``round_trip`` runs the whole login with
the Flask test client (our side) and ``requests`` (the provider's login page):
/authorize → provider → /login/callback → the application's redirect URI.
"""

from __future__ import annotations

import html
import json
import re
import time
from dataclasses import dataclass
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pytest
import requests
from joserfc.jwk import ECKey
from sqlalchemy import select

from login_site.management import connections as connection_service
from login_site.models import Tenant
from login_site.vault import keyring
from tests.conftest import T1
from tests.conftest import authorize_params
from tests.conftest import query_of
from tests.fixtures.upstream import fresh_upstream  # noqa: F401 - fixture
from tests.fixtures.upstream import upstream  # noqa: F401 - fixture

CALLBACK = f"http://{T1}/login/callback"
CLIENT_ID, CLIENT_SECRET = "login-site-t1", "upstream-secret-0123456789abcdef"
APPLE_TEAM, APPLE_KID = "TEAM123456", "KEY1234567"
APPLE_KEY = ECKey.generate_key("P-256", parameters={"kid": APPLE_KID})
TIMEOUT = 10
FLAVOUR_OF = {
    "google-oauth2": "google",
    "github": "github",
    "windowslive": "microsoft",
    "facebook": "facebook",
    "linkedin": "linkedin",
    "apple": "apple",
    "slack": "slack",
    "box": "box",
    "amazon": "amazon",
    "bitbucket": "bitbucket",
    "twitter": "twitter",
    "oauth2": "custom",
    "oidc": "oidc",
}
CUSTOM_FIELDS_MAP = {
    "user_id": "account.uid",
    "email": "account.mail",
    "email_verified": "account.mail_ok",
    "name": "account.full_name",
    "picture": "account.avatar.url",
}


def connection_options(up, strategy: str, **extra) -> dict:
    flavour = FLAVOUR_OF[strategy]
    options = {k: v for k, v in up.urls(flavour).items() if k != "discovery_url"}
    options.update(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    if strategy == "oidc":
        options = {
            "issuer": options["issuer"],
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
    if strategy == "oauth2":
        options["fields_map"] = CUSTOM_FIELDS_MAP
    if strategy == "apple":
        options.pop("client_secret")
        options.update(
            team_id=APPLE_TEAM, kid=APPLE_KID, app_secret=APPLE_KEY.as_pem(private=True).decode()
        )
    options.update(extra)
    return options


def create_connection(app, name: str, strategy: str, options: dict, clients=("web",)) -> str:
    with app.app_context(), app.extensions["login_site.sessionmaker"]() as db:
        tenant = db.execute(select(Tenant).where(Tenant.name == "t1")).scalar_one()
        conn = connection_service.create(
            db,
            keyring(),
            tenant,
            {
                "name": name,
                "strategy": strategy,
                "options": options,
                "enabled_clients": list(clients),
            },
        )
        db.commit()
        return conn.id


@pytest.fixture
def connect(app, fresh_upstream):  # noqa: F811 - fixture
    """``connect(strategy, name=None, **options)`` → the connection's name."""

    def make(strategy: str, name: str | None = None, clients=("web",), **extra) -> str:
        flavour = FLAVOUR_OF[strategy]
        if strategy == "apple":
            fresh_upstream.add_apple_client(
                CLIENT_ID, APPLE_TEAM, APPLE_KID, APPLE_KEY.as_pem().decode(), [CALLBACK]
            )
        else:
            fresh_upstream.add_client(flavour, CLIENT_ID, CLIENT_SECRET, [CALLBACK])
        name = name or f"{strategy}-conn"
        create_connection(
            app, name, strategy, connection_options(fresh_upstream, strategy, **extra), clients
        )
        return name

    return make


@dataclass
class Trip:
    """Where a round trip ended."""

    response: object  # our last response (Flask test client)
    location: str | None
    upstream_page: requests.Response | None = None

    @property
    def query(self) -> dict[str, str]:
        return query_of(self.location or "")

    @property
    def text(self) -> str:
        return self.response.get_data(as_text=True)


def _form_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def go_upstream(client, connection: str, **params) -> str:
    """/authorize with ``connection=`` straight to the provider: its authorize URL."""
    response = client.get(
        "/authorize?" + urlencode(authorize_params(connection=connection, **params)),
        base_url=f"http://{T1}",
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    page = client.get(response.headers["Location"], base_url=f"http://{T1}")
    assert page.status_code == 302, page.get_data(as_text=True)[:800]
    return page.headers["Location"]


def provider_answer(authorize_url: str, user: str, decision: str = "allow") -> tuple[str, dict]:
    """The provider's login page, ``user`` chosen, Allow/Cancel pressed: the method and the
    fields (GET query or form_post body) it sends back to our callback."""
    page = requests.get(authorize_url, timeout=TIMEOUT)
    assert page.status_code == 200, page.text[:500]
    action = re.search(r'<form[^>]*action="([^"]*)"', page.text).group(1)
    fields = {k: html.unescape(v) for k, v in _form_fields(page.text).items()}
    answer = requests.post(
        requests.compat.urljoin(page.url, action),
        data={**fields, "user": user, "decision": decision},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    if answer.status_code in (302, 303):
        location = answer.headers["Location"]
        assert location.startswith(CALLBACK), location
        return "GET", query_of(location)
    assert answer.status_code == 200, answer.text[:500]  # response_mode=form_post
    return "POST", {
        k: html.unescape(v) for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', answer.text)
    }


def call_back(client, method: str, fields: dict):
    """Deliver the provider's answer to /login/callback (re-posting once like the browser
    does when a cross-site form_post arrives without our cookie)."""
    if method == "GET":
        return client.get("/login/callback?" + urlencode(fields), base_url=f"http://{T1}")
    return client.post("/login/callback", data=fields, base_url=f"http://{T1}")


def round_trip(client, connection: str, user: str, decision: str = "allow", **params) -> Trip:
    authorize_url = go_upstream(client, connection, **params)
    method, fields = provider_answer(authorize_url, user, decision)
    response = call_back(client, method, fields)
    return Trip(response=response, location=response.headers.get("Location"))


def code_from(trip: Trip) -> str:
    assert trip.response.status_code == 302, trip.text[:1200]
    assert trip.location.startswith("https://app.test/cb"), trip.location
    return trip.query["code"]


def id_claims(token_response: dict) -> dict:
    import base64

    payload = token_response["id_token"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def wait_until(predicate, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
