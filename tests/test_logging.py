"""Logs carry events, never secrets (checklist SE-06, §0.3 item 6)."""

import json
import logging

from tests.conftest import ALICE
from tests.conftest import T1
from tests.conftest import WEB_SECRET
from tests.conftest import login_code
from tests.conftest import redeem
from tests.conftest import start_login
from tests.conftest import submit_login


def test_a_full_login_logs_events_but_no_secrets(client, caplog):
    caplog.set_level(logging.DEBUG)
    page, state = start_login(client)
    submit_login(client, page, state, ALICE[0], "a-wrong-Password-1")
    code = login_code(client)
    tokens = redeem(client, code).json
    client.get(
        "/userinfo",
        base_url=f"http://{T1}",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    redeem(client, code)  # replay
    cookie = client.get_cookie("login_site_session", domain="t1.test").value
    text = caplog.text
    for secret in (
        ALICE[1],
        "a-wrong-Password-1",
        code,
        tokens["access_token"],
        tokens["id_token"],
        WEB_SECRET,
        cookie,
        state,
        ALICE[0],
    ):
        assert secret not in text
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "login_site.events"]
    outcomes = {(e["event"], e["outcome"]) for e in events}
    assert {
        ("login", "failure"),
        ("login", "success"),
        ("token", "issued"),
        ("token", "invalid_grant"),
    } <= outcomes
    assert all(e["tenant"] == "t1" and e["request_id"] for e in events)


def test_event_lines_reach_stderr_when_nothing_configures_logging(tmp_path, sqlite_template):
    """Under gunicorn nobody configures logging: the lines must still be written."""
    import shutil
    import subprocess
    import sys

    shutil.copy(sqlite_template, tmp_path / "t.db")
    script = (
        "import json\n"
        "from login_site.app import create_app\n"
        "from login_site.events import event\n"
        f"app = create_app({{'DATABASE_URL': 'sqlite:///{tmp_path / 't.db'}',"
        " 'SECRET_KEY': 'x' * 40, 'INSTANCE_PATH': %r})\n"
        "with app.test_request_context('/'):\n"
        "    event('login', 'success', user_id='auth0|1')\n" % str(tmp_path)
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["event"] == "login" and line["outcome"] == "success"
