"""/api/v2/jobs: verification mails through the outbox and user exports kept briefly on the
job row, fetched at /jobs/{id}/export with ``read:users`` (management-api.md §7)."""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy import update

from login_site import mail
from login_site.db import utcnow
from login_site.models import Connection
from login_site.models import Job
from login_site.models import MailOutbox
from login_site.models import User
from login_site.models import UserTicket
from tests.conftest import count
from tests.management.conftest import T1
from tests.management.conftest import T2
from tests.management.conftest import T2WEB
from tests.management.conftest import call
from tests.management.conftest import grant_management_api
from tests.management.conftest import user_id

CAROL = "carol@example.test"


def user(app, email) -> User:
    with app.extensions["login_site.sessionmaker"]() as db:
        return db.execute(select(User).where(User.user_id == user_id(app, email))).scalar_one()


def verification_job(api, token=None, host=T1, **data):
    token = token or api.token("update:users")
    return call(api, "POST", "/api/v2/jobs/verification-email", token, host=host, json=data)


def export_job(api, token=None, **data):
    token = token or api.token("read:users")
    return call(api, "POST", "/api/v2/jobs/users-exports", token, json=data)


def download(api, job, token=None):
    location = job["location"]
    assert location.startswith(f"http://{T1}/api/v2/jobs/")
    return call(api, "GET", location.split(T1, 1)[1], token or api.token("read:users"))


def finish_deliveries() -> None:
    """Wait for the delivery attempt ``deliver_after_commit`` started."""
    for thread in threading.enumerate():
        if thread.name == "mail-after-commit":
            thread.join(10)


# --- verification mails ---------------------------------------------------------------------


def test_verification_job_mails_a_link_and_completes_when_sent(app, api, mailbox, backend):
    response = verification_job(api, user_id=user_id(app, CAROL), client_id="web")
    assert response.status_code == 201, response.get_json()
    job = response.get_json()
    assert job["type"] == "verification_email"
    assert job["id"].startswith("job_")
    assert job["status"] in ("pending", "completed")
    assert job["created_at"].endswith("Z")
    message = mailbox.wait_for(to=CAROL)
    assert "signing up for web" in mailbox.text(message)  # the client's name
    link = [u for u in mailbox.links(message) if "verify_email" in u][0]
    finish_deliveries()
    with app.extensions["login_site.sessionmaker"]() as db:
        sent = db.execute(select(MailOutbox.sent_at).where(MailOutbox.recipient == CAROL))
        assert [row[0] is not None for row in sent] == [True]
    later = call(api, "GET", f"/api/v2/jobs/{job['id']}", api.token("read:users")).get_json()
    assert later["status"] == "completed"
    assert later["completed_at"].endswith("Z")
    assert app.test_client().get(link.split(T1, 1)[1], base_url=f"http://{T1}").status_code == 200
    assert user(app, CAROL).email_verified is True


def test_verification_job_stays_pending_while_smtp_is_down(app, api, mailbox, smtp_server):
    token = api.token("update:users", "read:users")
    with smtp_server.down():
        job = verification_job(api, token, user_id=user_id(app, CAROL)).get_json()
        finish_deliveries()
        pending = call(api, "GET", f"/api/v2/jobs/{job['id']}", token).get_json()
        assert pending["status"] == "pending"
        assert "completed_at" not in pending
    with app.extensions["login_site.sessionmaker"]() as db:  # the worker's retry is due now
        db.execute(update(MailOutbox).values(next_attempt_at=utcnow()))
        db.commit()
    assert mail.deliver(app) == 1
    mailbox.wait_for(to=CAROL)
    assert call(api, "GET", f"/api/v2/jobs/{job['id']}", token).get_json()["status"] == "completed"


def test_identity_must_be_one_of_the_users(app, api, mailbox):
    carol = user_id(app, CAROL)
    provider, _, own_id = carol.partition("|")
    wrong = verification_job(api, user_id=carol, identity={"user_id": "x", "provider": provider})
    assert wrong.status_code == 400
    assert "'identity'" in wrong.get_json()["message"]
    right = verification_job(api, user_id=carol, identity={"user_id": own_id, "provider": provider})
    assert right.status_code == 201
    mailbox.wait_for(to=CAROL)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ({}, 400),
        ({"user_id": 5}, 400),
        ({"user_id": "auth0|nobody"}, 404),
        ({"user_id": "carol", "client_id": "nope"}, 404),
        ({"user_id": "carol", "client_id": "t2web"}, 404),
        ({"user_id": "carol", "identity": "auth0"}, 400),
        ({"user_id": "carol", "identity": {"user_id": 1, "provider": "auth0"}}, 400),
        ({"user_id": "carol", "organization_id": "org_1"}, 400),
    ],
)
def test_bad_verification_requests_send_nothing(app, api, data, status):
    data = {k: user_id(app, CAROL) if v == "carol" else v for k, v in data.items()}
    before = (count(app, MailOutbox), count(app, UserTicket), count(app, Job))
    response = verification_job(api, **data)
    assert response.status_code == status, response.get_json()
    assert (count(app, MailOutbox), count(app, UserTicket), count(app, Job)) == before


def test_a_user_without_email_gets_no_verification_job(app, api):
    created = call(
        api,
        "POST",
        "/api/v2/users",
        api.token("create:users"),
        json={"connection": "sms", "phone_number": "+15005550199"},
    )
    assert created.status_code == 201, created.get_json()
    before = count(app, Job)
    response = verification_job(api, user_id=created.get_json()["user_id"])
    assert response.status_code == 400
    assert count(app, Job) == before


def test_another_tenants_user_and_job_are_404(app, api, mailbox):
    grant_management_api(app, "t2", T2, "t2web")
    bob = user_id(app, "bob@example.test", tenant="t2")
    assert verification_job(api, user_id=bob).status_code == 404
    t2_token = api.token("update:users", "read:users", host=T2, credentials=T2WEB)
    t2_job = verification_job(api, t2_token, host=T2, user_id=bob)
    assert t2_job.status_code == 201
    job_id = t2_job.get_json()["id"]
    assert call(api, "GET", f"/api/v2/jobs/{job_id}", api.token("read:users")).status_code == 404
    assert call(api, "GET", f"/api/v2/jobs/{job_id}", t2_token, host=T2).status_code == 200
    mailbox.wait_for(to="bob@example.test")


def test_job_endpoints_need_their_scopes(app, api):
    before = count(app, Job)
    denied = verification_job(api, api.token("read:users"), user_id=user_id(app, CAROL))
    assert denied.status_code == 403
    assert denied.get_json()["message"].endswith("update:users")
    assert export_job(api, api.token("update:users")).status_code == 403
    assert call(api, "GET", "/api/v2/jobs/job_x", api.token("update:users")).status_code == 403
    assert count(app, Job) == before


# --- user exports ---------------------------------------------------------------------------


def test_export_is_a_csv_of_the_tenants_users_by_default(app, api, backend):
    response = export_job(api)
    assert response.status_code == 201, response.get_json()
    job = response.get_json()
    assert (job["type"], job["status"], job["format"]) == ("users_export", "completed", "csv")
    file = download(api, job)
    assert file.status_code == 200
    assert file.headers["Content-Type"].startswith("text/csv")
    assert file.headers["Cache-Control"] == "no-store"
    assert "attachment" in file.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(file.get_data(as_text=True))))
    emails = {r["email"] for r in rows}
    assert {"alice@example.test", CAROL, "pat@example.test"} <= emails
    assert "bob@example.test" not in emails  # T2's
    alice = next(r for r in rows if r["email"] == "alice@example.test")
    assert alice["user_id"] == user_id(app, "alice@example.test")
    assert alice["email_verified"] == "true"
    assert "user_metadata" not in alice and "last_ip" not in alice
    text = file.get_data(as_text=True)
    assert "$argon2" not in text and "password" not in text.lower()


def test_export_as_json_lines_with_chosen_fields_of_one_connection(app, api):
    with app.extensions["login_site.sessionmaker"]() as db:
        partners = db.execute(
            select(Connection.id).where(Connection.name == "partners-db")
        ).scalar_one()
    job = export_job(
        api,
        format="json",
        connection_id=partners,
        fields=[{"name": "email", "export_as": "Email"}, {"name": "identities"}],
    ).get_json()
    assert job["connection_id"] == partners
    file = download(api, job)
    assert file.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in file.get_data(as_text=True).splitlines()]
    assert [line["Email"] for line in lines] == ["pat@example.test"]
    assert set(lines[0]) == {"Email", "identities"}
    assert lines[0]["identities"][0]["connection"] == "partners-db"


def test_export_limit(app, api):
    job = export_job(api, format="json", limit=2, fields=[{"name": "user_id"}]).get_json()
    assert len(download(api, job).get_data(as_text=True).splitlines()) == 2


def test_csv_cells_never_start_a_formula(app, api):
    with app.extensions["login_site.sessionmaker"]() as db:
        db.execute(
            update(User).where(User.email == CAROL).values(name="=HYPERLINK(1)", nickname="-2+3")
        )
        db.commit()
    fields = [{"name": name} for name in ("email", "name", "nickname", "phone_number")]
    job = export_job(api, fields=fields).get_json()
    rows = list(csv.DictReader(io.StringIO(download(api, job).get_data(as_text=True))))
    carol = next(r for r in rows if r["email"] == CAROL)
    assert carol["name"] == "'=HYPERLINK(1)"
    assert carol["nickname"] == "'-2+3"


@pytest.mark.parametrize(
    "data",
    [
        {"format": "xml"},
        {"fields": []},
        {"fields": [{"name": "password_hash"}]},
        {"fields": [{"name": "email", "as": "x"}]},
        {"fields": ["email"]},
        {"limit": 0},
        {"limit": "10"},
        {"connection_id": "con_nope"},
        {"connection_id": 5},
        {"query": "x"},
    ],
)
def test_bad_export_requests_make_no_job(app, api, data):
    before = count(app, Job)
    response = export_job(api, **data)
    assert response.status_code in (400, 404), response.get_json()
    assert count(app, Job) == before


def test_an_export_expires_and_is_then_dropped(app, api, backend):
    job = export_job(api).get_json()
    assert download(api, job).status_code == 200
    with app.extensions["login_site.sessionmaker"]() as db:
        past = utcnow() - timedelta(seconds=1)
        db.execute(update(Job).where(Job.id == job["id"]).values(expires_at=past))
        db.commit()
    gone = download(api, job)
    assert gone.status_code == 404
    shown = call(api, "GET", f"/api/v2/jobs/{job['id']}", api.token("read:users")).get_json()
    assert "location" not in shown
    export_job(api)  # any later export purges the expired files
    with app.extensions["login_site.sessionmaker"]() as db:
        assert db.get(Job, job["id"]).export is None


def test_exports_are_for_read_users_bearers_of_the_same_tenant(app, api):
    job = export_job(api).get_json()
    assert download(api, job, api.token("create:users")).status_code == 403
    assert call(api, "GET", job["location"].split(T1, 1)[1]).status_code == 401
    grant_management_api(app, "t2", T2, "t2web")
    t2_token = api.token("read:users", host=T2, credentials=T2WEB)
    path = job["location"].split(T1, 1)[1]
    assert call(api, "GET", path, t2_token, host=T2).status_code == 404
    verification = call(api, "GET", "/api/v2/jobs/job_nope/export", api.token("read:users"))
    assert verification.status_code == 404
