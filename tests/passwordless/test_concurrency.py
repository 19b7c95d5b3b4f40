"""The right code presented 20 times at once, to two servers on one database: exactly one
login (checklist PW-08), on SQLite and PostgreSQL."""

from __future__ import annotations

import requests

from login_site.models import AccessToken
from login_site.models import User
from tests.conftest import WEB_SECRET
from tests.conftest import count
from tests.passwordless.conftest import NEW_EMAIL
from tests.passwordless.conftest import OTP_GRANT
from tests.passwordless.conftest import code_in
from tests.test_concurrency import PARALLEL
from tests.test_concurrency import run_together
from tests.test_concurrency import second_server  # noqa: F401 - fixture
from tests.test_concurrency import worker_urls


def test_twenty_parallel_redemptions_of_the_right_code_make_one_login(
    backend,
    live_server,
    second_server,  # noqa: F811 - fixture
    mailbox,
):
    base = live_server.api_url("t1")
    started = requests.post(
        base + "passwordless/start",
        timeout=30,
        json={
            "client_id": "web",
            "client_secret": WEB_SECRET,
            "connection": "email-otp",
            "email": NEW_EMAIL,
            "send": "code",
        },
    )
    assert started.status_code == 200, started.text
    code = code_in(mailbox, NEW_EMAIL)
    users = count(live_server.app, User)
    targets = worker_urls(live_server, second_server)

    def redeem(index):
        url, headers = targets[index % len(targets)]
        return lambda: requests.post(
            url + "oauth/token",
            headers=headers,
            timeout=60,
            json={
                "grant_type": OTP_GRANT,
                "client_id": "web",
                "client_secret": WEB_SECRET,
                "username": NEW_EMAIL,
                "otp": code,
                "realm": "email-otp",
            },
        )

    answers = run_together([redeem(i) for i in range(PARALLEL)])
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] + [403] * (PARALLEL - 1), statuses
    assert all(r.json()["error"] == "invalid_grant" for r in answers if r.status_code == 403)
    assert count(live_server.app, AccessToken) == 1
    assert count(live_server.app, User) == users + 1
