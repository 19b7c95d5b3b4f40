"""Mail: templates per tenant, the outbox, delivery to a real SMTP server, and the worker."""

from __future__ import annotations

import logging
import re
import shutil
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import jsonify

from login_site import mail
from login_site.cli import main
from login_site.db import get_db
from login_site.db import utcnow
from login_site.models import MailOutbox
from login_site.models import Tenant
from login_site.tenancy import current_tenant
from tests.conftest import T1
from tests.conftest import make_app
from tests.fixtures.smtp import Mailbox

BOB = "bob.mail-test@example.test"
LINK = "https://t1.test/verify?ticket=tok_0123456789abcdefSECRET"
LOGO = "https://cdn.t1.test/logo.png"

CONTEXTS = {
    "verify_email": {"link": LINK, "application_name": "Web App"},
    "reset_password": {"link": LINK, "expires_minutes": 60},
    "already_registered": {
        "login_link": "https://t1.test/login",
        "reset_link": "https://t1.test/reset?ticket=tok_reset",
    },
    "blocked_account": {"ip": "198.51.100.7", "unblock_link": LINK},
    "password_changed": {"reset_link": "https://t1.test/reset?ticket=tok_reset"},
}


def tenant_t1(db) -> Tenant:
    return db.execute(sa.select(Tenant).where(Tenant.name == "t1")).scalar_one()


def brand_t1(db, **settings) -> Tenant:
    tenant = tenant_t1(db)
    tenant.settings = {
        **(tenant.settings or {}),
        "branding": {"logo_url": LOGO, "colors": {"primary": "#0f766e"}},
        "support_email": "help@t1.test",
        **settings,
    }
    db.commit()
    return tenant


def queue(app, db, *, to=BOB, template="verify_email", context=None, kind=None) -> MailOutbox:
    with app.app_context():
        row = mail.enqueue(
            db,
            tenant_t1(db),
            to=to,
            template=template,
            context=CONTEXTS[template] if context is None else context,
            kind=kind or template,
        )
    db.commit()
    return row


def outbox(app, outbox_id: int) -> MailOutbox:
    with app.extensions["login_site.sessionmaker"]() as session:
        return session.get(MailOutbox, outbox_id)


def outbox_rows(app) -> list[MailOutbox]:
    with app.extensions["login_site.sessionmaker"]() as session:
        return list(session.scalars(sa.select(MailOutbox).order_by(MailOutbox.id)))


def make_due(app, outbox_id: int) -> None:
    """Time passes: the row's backoff is over."""
    with app.extensions["login_site.sessionmaker"]() as session:
        session.execute(
            sa.update(MailOutbox)
            .where(MailOutbox.id == outbox_id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
        session.commit()


def worker_once(app):
    result = app.test_cli_runner().invoke(main, ["worker", "--once"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def announce_route(app, threads: list):
    """Request code as the sign-up and reset views write it: enqueue, commit, deliver."""

    @app.get("/_test/announce")
    def announce():
        db = get_db()
        row = mail.enqueue(
            db,
            current_tenant(),
            to=BOB,
            template="password_changed",
            context={},
            kind="password_changed",
        )
        db.commit()
        threads.append(mail.deliver_after_commit())  # what this request enqueued
        return jsonify(id=row.id)


# --- rendering ------------------------------------------------------------------------------


def test_a_queued_mail_reaches_the_mailbox_with_text_html_and_tenant_branding(app, db, mailbox):
    brand_t1(db)
    row = queue(app, db)
    assert mail.deliver(app, [row.id]) == 1

    message = mailbox.wait_for(to=BOB, subject_contains="Verify your email")
    assert message["Subject"] == "Verify your email address for Tenant One"
    assert message["From"].addresses[0].display_name == "Tenant One"
    assert message["From"].addresses[0].addr_spec == "no-reply@login-site.test"
    assert message["Reply-To"].addresses[0].addr_spec == "help@t1.test"
    assert message.get_body(("plain",)) and message.get_body(("html",))
    text, html = Mailbox.text(message), Mailbox.html(message)
    assert Mailbox.links(message) == [LINK]
    assert "Web App" in text and "Tenant One" in text and "help@t1.test" in text
    assert "#0f766e" in html and f'src="{LOGO}"' in html
    assert html.count(f'href="{LINK}"') == 2  # the button and the link in full
    # No remote resource but the tenant's logo.
    assert re.findall(r'src="([^"]*)"', html) == [LOGO]
    assert "<link" not in html and "url(" not in html

    sent = outbox(app, row.id)
    assert sent.sent_at is not None and sent.claimed_until is None
    assert sent.attempts == 1 and sent.last_error is None


def test_html_is_autoescaped_and_the_text_part_is_not(app, db, mailbox):
    brand_t1(db)
    tenant = tenant_t1(db)
    tenant.friendly_name = "Tom & Jerry <Co>"
    db.commit()
    row = queue(app, db, context={"link": LINK, "application_name": "<b>App</b>"})
    assert "&lt;b&gt;App&lt;/b&gt;" in row.body_html and "<b>App</b>" not in row.body_html
    assert "Tom &amp; Jerry &lt;Co&gt;" in row.body_html
    assert "<b>App</b>" in row.body_text and row.subject.endswith("Tom & Jerry <Co>")
    mail.deliver(app, [row.id])
    assert mailbox.wait_for(to=BOB)["From"].addresses[0].display_name == "Tom & Jerry <Co>"


@pytest.mark.parametrize("template", sorted(mail.TEMPLATES))
def test_every_template_has_a_subject_a_text_and_an_html_part(app, db, template):
    with app.app_context():
        subject, text, html = mail.render(tenant_t1(db), template, CONTEXTS[template])
    assert subject and "\n" not in subject and "Tenant One" in subject
    assert "{" not in text and "\n\n\n" not in text
    assert html.startswith("<!doctype html>") and f"<title>{subject}</title>" in html
    for value in CONTEXTS[template].values():
        assert str(value) in text  # links in full in the text part
        if str(value).startswith("https://"):
            assert f'href="{value}"' in html


def test_unsafe_branding_falls_back_to_the_defaults(app, db):
    tenant = brand_t1(
        db,
        branding={"logo_url": "javascript:alert(1)", "colors": {"primary": "red;x:url(//e)"}},
        support_email="help@t1.test\r\nBcc: x@evil.test",
    )
    with app.app_context():
        brand = mail.branding(tenant)
        _, _, html = mail.render(tenant, "password_changed", {})
    assert brand["logo_url"] is None and brand["support_email"] is None
    assert brand["primary"].startswith("#") and "url(" not in html and "<img" not in html
    http_logo = brand_t1(db, branding={"logo_url": "http://cdn.t1.test/logo.png"})
    with app.app_context():
        assert mail.branding(http_logo)["logo_url"] is None


@pytest.mark.parametrize(
    ("to", "template", "context"),
    [
        ("a@b.test\r\nBcc: x@evil.test", "verify_email", {"link": LINK}),
        ("a@b.test, x@evil.test", "verify_email", {"link": LINK}),
        ("not-an-address", "verify_email", {"link": LINK}),
        ("a@b.test", "no_such_template", {}),
        ("a@b.test", "reset_password", {"link": LINK}),  # expires_minutes missing
    ],
)
def test_enqueue_rejects_bad_recipients_unknown_templates_and_missing_context(
    app, db, to, template, context
):
    with app.app_context(), pytest.raises(ValueError):
        mail.enqueue(db, tenant_t1(db), to=to, template=template, context=context, kind="x")
    db.rollback()
    assert outbox_rows(app) == []


def test_enqueue_leaves_the_commit_to_the_caller(app, db):
    with app.app_context():
        mail.enqueue(
            db, tenant_t1(db), to=BOB, template="verify_email", context={"link": LINK}, kind="v"
        )
    db.rollback()  # the change the mail announced did not happen
    assert outbox_rows(app) == []


# --- outages and retries --------------------------------------------------------------------


def test_smtp_outage_keeps_the_mail_queued_and_the_worker_sends_it_once_later(
    app, smtp_server, mailbox
):
    threads: list = []
    announce_route(app, threads)
    client = app.test_client()
    with smtp_server.down():
        response = client.get("/_test/announce", base_url=f"http://{T1}")
        assert response.status_code == 200
        threads[0].join(10)
        row = outbox(app, response.json["id"])
        assert row.sent_at is None and row.attempts == 1 and row.claimed_until is None
        assert row.last_error.startswith("ConnectionRefusedError")
        assert BOB not in row.last_error
        wait = (row.next_attempt_at - utcnow()).total_seconds()
        assert mail.BACKOFF_BASE_SECONDS - 5 < wait <= mail.BACKOFF_BASE_SECONDS
        assert "0 mail(s) sent" in worker_once(app)  # still backing off

    assert "0 mail(s) sent" in worker_once(app)  # SMTP is back; the backoff is not over
    assert len(mailbox) == 0
    make_due(app, row.id)
    assert "1 mail(s) sent" in worker_once(app)
    assert "0 mail(s) sent" in worker_once(app)
    mailbox.wait_for(to=BOB, subject_contains="password was changed")
    assert len(mailbox) == 1
    row = outbox(app, row.id)
    assert row.sent_at is not None and row.attempts == 2 and row.last_error is None


def test_immediate_delivery_sends_committed_rows_and_skips_rolled_back_ones(app, db, mailbox):
    with app.test_request_context(base_url=f"http://{T1}"):
        mail.enqueue(
            db,
            tenant_t1(db),
            to="gone@example.test",
            template="password_changed",
            context={},
            kind="k",
        )
        db.rollback()  # the change failed: its mail must not go out
        mail.deliver_after_commit().join(10)
        row = queue(app, db, template="password_changed")
        mail.deliver_after_commit(row).join(10)
    mailbox.wait_for(to=BOB)
    assert [str(m["X-RcptTo"]) for m in mailbox.messages] == [BOB]
    assert [r.id for r in outbox_rows(app)] == [row.id]


def test_the_backoff_doubles_up_to_its_cap():
    delays = [mail.backoff_seconds(n) for n in range(1, 12)]
    assert delays[:4] == [30, 60, 120, 240]
    assert delays == sorted(delays) and max(delays) == mail.BACKOFF_CAP_SECONDS == 3600


def test_failed_attempts_wait_for_their_backoff(app, db, smtp_server):
    row = queue(app, db)
    start = utcnow()
    with smtp_server.down():
        assert mail.deliver(app, now=start) == 0
        assert outbox(app, row.id).attempts == 1
        assert mail.deliver(app, now=start + timedelta(seconds=29)) == 0
        assert outbox(app, row.id).attempts == 1  # not due: not tried
        mail.deliver(app, now=start + timedelta(seconds=31))
        again = outbox(app, row.id)
    assert again.attempts == 2
    assert again.next_attempt_at == start + timedelta(seconds=31 + 60)


def test_an_unreachable_server_ends_the_pass_after_one_try(app, db, smtp_server):
    rows = [queue(app, db, to=f"user{i}@example.test") for i in range(3)]
    with smtp_server.down():
        assert mail.deliver(app) == 0
    assert [outbox(app, r.id).attempts for r in rows] == [1, 0, 0]


def test_a_claimed_mail_waits_until_its_claim_runs_out(app, db, mailbox):
    row = queue(app, db)
    now = utcnow()
    with app.extensions["login_site.sessionmaker"]() as session:
        session.execute(
            sa.update(MailOutbox).values(claimed_until=now + timedelta(seconds=60))
        )  # a worker took it and died
        session.commit()
    assert mail.deliver(app, now=now) == 0
    assert mail.deliver(app, now=now + timedelta(seconds=61)) == 1
    assert mailbox.wait_for(to=BOB) and outbox(app, row.id).sent_at is not None


def test_without_a_mail_server_mail_stays_queued_with_a_warning(
    tmp_path, sqlite_template, monkeypatch, caplog
):
    monkeypatch.delenv("LOGIN_SITE_MAIL_SERVER", raising=False)
    shutil.copy(sqlite_template, tmp_path / "test.db")
    app = make_app(f"sqlite:///{tmp_path / 'test.db'}", tmp_path)
    assert app.config["MAIL_SERVER"] is None
    with app.extensions["login_site.sessionmaker"]() as db:
        row = queue(app, db)
    caplog.set_level(logging.WARNING, logger="login_site.mail")
    assert mail.deliver(app) == 0
    with app.app_context():
        assert mail.deliver_after_commit(row) is None
    assert outbox(app, row.id).sent_at is None and outbox(app, row.id).attempts == 0
    assert "not_configured" in caplog.text and BOB not in caplog.text
    app.extensions["login_site.engine"].dispose()


def test_mail_settings_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGIN_SITE_MAIL_SERVER", "smtp.example.test")
    monkeypatch.setenv("LOGIN_SITE_MAIL_PORT", "2525")
    monkeypatch.setenv("LOGIN_SITE_MAIL_USE_TLS", "true")
    monkeypatch.setenv("LOGIN_SITE_MAIL_DEFAULT_SENDER", "Login <login@example.test>")
    app = make_app(f"sqlite:///{tmp_path / 'x.db'}", tmp_path)
    state = app.extensions["mail"]
    assert (state.server, state.port, state.use_tls) == ("smtp.example.test", 2525, True)
    assert state.default_sender == "Login <login@example.test>"
    monkeypatch.delenv("LOGIN_SITE_MAIL_DEFAULT_SENDER")
    with pytest.raises(RuntimeError, match="MAIL_DEFAULT_SENDER"):
        make_app(f"sqlite:///{tmp_path / 'x.db'}", tmp_path)


# --- concurrency ----------------------------------------------------------------------------


@pytest.mark.parametrize("restrict", [False, True], ids=["due", "ids"])
def test_concurrent_deliveries_send_each_mail_exactly_once(app, backend, db, mailbox, restrict):
    rows = [queue(app, db, to=f"user{i}@example.test") for i in range(12)]
    ids = [r.id for r in rows] if restrict else None
    barrier = threading.Barrier(4)
    counts: list[int] = []

    def run():
        barrier.wait()
        counts.append(mail.deliver(app, ids))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert len(counts) == 4 and sum(counts) == 12
    recipients = sorted(str(m["X-RcptTo"]) for m in mailbox.messages)
    assert recipients == sorted(f"user{i}@example.test" for i in range(12))
    assert all(r.sent_at is not None and r.attempts == 1 for r in outbox_rows(app))


# --- logs -----------------------------------------------------------------------------------


def test_logs_name_the_outbox_row_and_kind_but_never_the_address_or_link(
    app, db, smtp_server, mailbox, caplog
):
    caplog.set_level(logging.DEBUG)
    sent = queue(app, db, template="reset_password", kind="reset_password")
    mail.deliver(app)
    mailbox.wait_for(to=BOB)
    failed = queue(app, db, template="blocked_account", kind="blocked_account")
    with smtp_server.down():
        mail.deliver(app)
    text = caplog.text
    for secret in (BOB, BOB.split("@")[0], LINK, "tok_0123456789abcdefSECRET", "198.51.100.7"):
        assert secret not in text
    assert f'"outbox_id": {sent.id}' in text and f'"outbox_id": {failed.id}' in text
    assert '"kind": "reset_password"' in text and '"outcome": "retry"' in text
    assert any(r.levelno == logging.WARNING and r.name == "login_site.mail" for r in caplog.records)
