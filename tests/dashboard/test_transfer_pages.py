"""Dashboard Import/Export with the Flask test client: the export file, the import preview
(what is created, changed, deleted, with nothing written), the confirm (one transaction,
only what was previewed), and readable refusals of bad files."""

from __future__ import annotations

import io
import os
import re

import pytest
import sqlalchemy as sa
import yaml
from playwright.sync_api import expect

from login_site.dashboard import transfer
from login_site.models import Client
from login_site.models import Connection
from login_site.models import SecurityEvent
from login_site.models import Tenant
from login_site.vault import Keyring
from tests.conftest import WEB_SECRET
from tests.conftest import csrf_token
from tests.dashboard.conftest import setup_admin_tenant
from tests.dashboard.test_browser import shot
from tests.dashboard.test_browser import sign_in

NEW_SECRET = "a-new-web-secret-0123456789abcdefghijkl"


def get(dash, path: str, **kwargs):
    return dash.get(path, base_url=dash.base, **kwargs)


def exported(dash) -> str:
    response = get(dash, "/dashboard/export/download")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def upload(dash, text: str | bytes, *, allow_delete: bool = False, as_file: bool = True):
    page = get(dash, "/dashboard/export")
    data = {"csrf_token": csrf_token(page.get_data(as_text=True))}
    if allow_delete:
        data["allow_delete"] = "on"
    raw = text.encode() if isinstance(text, str) else text
    if as_file:
        data["file"] = (io.BytesIO(raw), "tenant.yaml")
    else:
        data["yaml"] = raw.decode()
    return dash.post(
        "/dashboard/import", base_url=dash.base, data=data, content_type="multipart/form-data"
    )


def confirm(dash, preview_html: str, **overrides):
    draft = re.search(r'name="draft" value="([^"]+)"', preview_html)
    data = {
        "csrf_token": csrf_token(preview_html),
        "draft": draft.group(1) if draft else "",
        **overrides,
    }
    return dash.post("/dashboard/import/confirm", base_url=dash.base, data=data)


def client_row(app, client_id: str, tenant: str = "t1") -> Client | None:
    with app.extensions["login_site.sessionmaker"]() as db:
        return db.scalar(
            sa.select(Client)
            .join(Tenant, Tenant.id == Client.tenant_id)
            .where(Tenant.name == tenant, Client.client_id == client_id)
        )


def client_names(app, tenant: str = "t1") -> set[str]:
    with app.extensions["login_site.sessionmaker"]() as db:
        return set(
            db.scalars(
                sa.select(Client.name)
                .join(Tenant, Tenant.id == Client.tenant_id)
                .where(Tenant.name == tenant)
            )
        )


def secret_of(app, client_id: str) -> str:
    return Keyring(app.config["ENCRYPTION_KEYS"]).decrypt(
        client_row(app, client_id).client_secret_enc
    )


def audit_rows(app, name: str) -> list[SecurityEvent]:
    with app.extensions["login_site.sessionmaker"]() as db:
        return list(db.scalars(sa.select(SecurityEvent).where(SecurityEvent.name == name)))


def edited(text: str) -> str:
    """The exported file with one application changed, one added and one left out, and a
    connection added."""
    doc = yaml.safe_load(text)
    for item in doc["clients"]:
        if item["name"] == "partners":
            item["callbacks"] = ["https://partners.test/new-cb"]
    doc["clients"] = [c for c in doc["clients"] if c["name"] != "empty"]
    doc["clients"].append(
        {"name": "imported-app", "app_type": "spa", "callbacks": ["https://imported.test/cb"]}
    )
    doc["databases"].append({"name": "imported-db", "enabled_clients": ["imported-app"]})
    return yaml.safe_dump(doc, sort_keys=False)


def test_the_export_is_the_tenants_yaml_without_secrets(app, dash):
    text = exported(dash)
    doc = yaml.safe_load(text)
    assert doc["tenant"]["name"] == "t1"
    assert "web" in {c["name"] for c in doc["clients"]}
    assert WEB_SECRET not in text
    assert "twilio-test-token" not in text
    assert "##WEB_CLIENT_SECRET##" in text
    assert "password" not in str(doc["users"])
    response = get(dash, "/dashboard/export/download")
    assert response.headers["Content-Disposition"] == 'attachment; filename="t1.yaml"'
    assert response.headers["Cache-Control"] == "no-store"
    rows = audit_rows(app, "dashboard.tenant_exported")
    assert [r.target for r in rows] == ["tenant:t1", "tenant:t1"]


def test_the_import_export_page_renders(dash):
    page = get(dash, "/dashboard/export")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in html
    assert "/dashboard/export/download" in html


def test_importing_the_export_unchanged_changes_nothing(backend, app, dash):
    response = upload(dash, exported(dash))
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    html = response.get_data(as_text=True)
    assert "0 created" in html and "0 changed" in html and "0 deleted" in html
    assert "The file changes nothing" in html
    assert "alice@example.test (db)" in html  # listed without a password: kept as is
    assert 'name="draft"' not in html


def test_the_preview_shows_what_is_created_changed_and_deleted_and_writes_nothing(
    backend, app, dash
):
    response = upload(dash, edited(exported(dash)), allow_delete=True)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    html = response.get_data(as_text=True)
    assert "2 created" in html and "1 changed" in html and "1 deleted" in html
    assert re.search(r'data-kind="created">\s*<td><strong>imported-app</strong>', html)
    assert re.search(r'data-kind="created">\s*<td><strong>imported-db</strong>', html)
    assert re.search(r'data-kind="deleted">\s*<td><strong>empty</strong>', html)
    assert "partners.test/new-cb" in html and "partners.test/cb" in html
    assert WEB_SECRET not in html
    assert client_names(app) >= {"empty", "partners"}
    assert "imported-app" not in client_names(app)
    assert client_row(app, "partners").callbacks == ["https://partners.test/cb"]
    assert response.headers["Cache-Control"] == "no-store"


def test_confirming_applies_exactly_the_preview(backend, app, dash):
    preview = upload(dash, edited(exported(dash)), allow_delete=True)
    response = confirm(dash, preview.get_data(as_text=True))
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    names = client_names(app)
    assert "imported-app" in names and "empty" not in names
    assert client_row(app, "partners").callbacks == ["https://partners.test/new-cb"]
    assert secret_of(app, "web") == WEB_SECRET  # the placeholder kept the secret
    with app.extensions["login_site.sessionmaker"]() as db:
        assert db.scalar(sa.select(Connection).where(Connection.name == "imported-db"))
        twilio = db.scalar(sa.select(Connection).where(Connection.name == "sms")).options
    assert "twilio_token" in twilio and "##" not in str(twilio)
    (row,) = audit_rows(app, "dashboard.tenant_imported")
    assert row.target == "tenant:t1"
    assert row.details == {"allow_delete": True, "created": 2, "changed": 1, "deleted": 1}
    page = get(dash, "/dashboard/export").get_data(as_text=True)
    assert "Imported: 2 created, 1 changed, 1 deleted." in page


def test_a_pasted_file_works_like_an_uploaded_one(app, dash):
    response = upload(dash, edited(exported(dash)), as_file=False)
    assert response.status_code == 200
    assert "2 created" in response.get_data(as_text=True)


def test_a_new_secret_is_shown_as_changed_never_as_text(app, dash):
    text = exported(dash).replace('"##WEB_CLIENT_SECRET##"', f'"{NEW_SECRET}"')
    text = text.replace("'##WEB_CLIENT_SECRET##'", f"'{NEW_SECRET}'")
    assert NEW_SECRET in text
    preview = upload(dash, text)
    html = preview.get_data(as_text=True)
    assert "1 changed" in html and "client_secret" in html
    assert NEW_SECRET not in html and WEB_SECRET not in html
    assert confirm(dash, html).status_code == 303
    assert secret_of(app, "web") == NEW_SECRET


def test_a_changed_seed_password_is_shown(app, dash):
    doc = yaml.safe_load(exported(dash))
    for user in doc["users"]:
        if user["email"] == "carol@example.test":
            user["password"] = "Another-carol-pass-2"
    html = upload(dash, yaml.safe_dump(doc)).get_data(as_text=True)
    assert "carol@example.test (db)" in html
    assert ">password<" in html and "Another-carol-pass-2" not in html


def test_a_tenant_changed_after_the_preview_is_previewed_again_not_applied(app, dash):
    preview = upload(dash, edited(exported(dash))).get_data(as_text=True)
    with app.extensions["login_site.sessionmaker"]() as db:
        db.execute(sa.update(Client).where(Client.client_id == "partners").values(description="X"))
        db.commit()
    response = confirm(dash, preview)
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "The tenant changed since the preview" in html
    assert "imported-app" not in client_names(app)
    assert confirm(dash, html).status_code == 303  # the new preview can be confirmed
    assert "imported-app" in client_names(app)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tenant: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
        ("tenant: {name: t2}\n", "describes tenant 't2'"),
        ("clients: []\n", "describes tenant None"),
        (
            "tenant: {name: t1}\nclients: [{name: x, bogus: 1, app_type: nope}]\n",
            "app_type",
        ),
        ('tenant: {name: t1, friendly_name: "##SECRET_KEY##"}\n', "##SECRET_KEY## has no value"),
        ("tenant: {name: t1, signing_keys: {key_size: [1]}}\n", "could not be imported"),
        ("tenant: {name: t1, session_lifetime: -1}\n", "session_lifetime"),
        ("tenant: {name: t1, hosts: [admin.localhost]}\n", "already belongs to another tenant"),
        ("   \n", "Choose a file"),
    ],
)
def test_a_bad_file_is_a_readable_400_and_writes_nothing(app, dash, text, message):
    before = client_names(app)
    response = upload(dash, text)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert message in html.replace("&#39;", "'").replace("&#34;", '"')
    assert "Nothing was changed" in html
    assert client_names(app) == before


def test_a_file_that_is_too_large_or_not_text_is_refused(dash):
    big = upload(dash, b"tenant: {name: t1}\n# " + b"x" * transfer.MAX_IMPORT_BYTES)
    assert big.status_code == 400
    assert f"larger than {transfer.MAX_IMPORT_BYTES // 1024} KB" in big.get_data(as_text=True)
    binary = upload(dash, b"\xff\xfe\x00bad")
    assert binary.status_code == 400
    assert "not UTF-8" in binary.get_data(as_text=True)


def test_the_admin_tenant_is_not_imported_here(app, dash):
    with app.extensions["login_site.sessionmaker"]() as db:
        admin_id = db.scalar(sa.select(Tenant.id).where(Tenant.name == "admin"))
    page = get(dash, "/dashboard/export")
    dash.post(
        "/dashboard/tenant",
        base_url=dash.base,
        data={"csrf_token": csrf_token(page.get_data(as_text=True)), "tenant": admin_id},
    )
    response = upload(dash, exported(dash))
    assert response.status_code == 400
    assert "admin tenant is not imported" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "draft", ["", "garbage", "x" * (transfer.MAX_DRAFT_CHARS + 1)], ids=["empty", "garbage", "huge"]
)
def test_a_tampered_or_missing_draft_applies_nothing(app, dash, draft):
    preview = upload(dash, edited(exported(dash))).get_data(as_text=True)
    response = confirm(dash, preview, draft=draft)
    assert response.status_code == 400
    assert "Upload the file again" in response.get_data(as_text=True)
    assert "imported-app" not in client_names(app)


def test_a_draft_does_not_apply_to_another_tenant(app, dash):
    preview = upload(dash, edited(exported(dash))).get_data(as_text=True)
    with app.extensions["login_site.sessionmaker"]() as db:
        t2 = db.scalar(sa.select(Tenant.id).where(Tenant.name == "t2"))
    dash.post(
        "/dashboard/tenant",
        base_url=dash.base,
        data={"csrf_token": csrf_token(preview), "tenant": t2},
    )
    assert confirm(dash, preview).status_code == 400
    assert "imported-app" not in client_names(app, "t1")
    assert "imported-app" not in client_names(app, "t2")


def test_confirm_needs_the_csrf_token(app, dash):
    preview = upload(dash, edited(exported(dash))).get_data(as_text=True)
    response = confirm(dash, preview, csrf_token="")
    assert response.status_code == 400
    assert "imported-app" not in client_names(app)


def test_a_draft_of_the_largest_file_fits_in_a_form_field():
    ring = Keyring(["a2rcsr243xcpSqKAXjfcNwkIXY62jgVZameeneDYzVw="])
    noise = os.urandom(transfer.MAX_IMPORT_BYTES // 2).hex()  # incompressible text
    draft = transfer.Draft("ten_1", "auth0|admin", noise, False, "d", 1_000)
    token = transfer.seal(ring, draft)
    assert len(token) <= transfer.MAX_DRAFT_CHARS < 500_000
    assert transfer.unseal(ring, token, "ten_1", "auth0|admin", now=1_001) == draft


def test_drafts_expire_and_are_bound_to_the_admin():
    ring = Keyring(["a2rcsr243xcpSqKAXjfcNwkIXY62jgVZameeneDYzVw="])
    draft = transfer.Draft("ten_1", "auth0|admin", "tenant: {}", False, "d", 1_000)
    token = transfer.seal(ring, draft)
    assert "tenant" not in token
    assert transfer.unseal(ring, token, "ten_1", "auth0|admin", now=1_000 + 60) == draft
    assert transfer.unseal(ring, token, "ten_1", "auth0|other", now=1_060) is None
    assert transfer.unseal(ring, token, "ten_2", "auth0|admin", now=1_060) is None
    late = 1_000 + transfer.DRAFT_TTL_SECONDS + 1
    assert transfer.unseal(ring, token, "ten_1", "auth0|admin", now=late) is None


# --- in Chromium ----------------------------------------------------------------------------


@pytest.fixture
def server(live_server):
    """The app on a loopback port with the admin tenant on ``admin.localhost:PORT``."""
    setup_admin_tenant(live_server.app, f"admin.localhost:{live_server.port}")
    return live_server


@pytest.mark.e2e
def test_in_chromium_an_export_edited_and_imported_is_previewed_then_applied(page, server):
    sign_in(page, server)
    page.get_by_role("navigation", name="Dashboard sections").get_by_role(
        "link", name="Import/Export"
    ).click()
    page.wait_for_url("**/dashboard/export")
    shot(page, "transfer")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download t1.yaml").click()
    text = download.value.path().read_text(encoding="utf-8")
    assert "##WEB_CLIENT_SECRET##" in text and WEB_SECRET not in text

    page.get_by_label("Tenant configuration file").set_input_files(
        files=[{"name": "t1.yaml", "mimeType": "application/yaml", "buffer": edited(text).encode()}]
    )
    page.get_by_role("button", name="Preview import").click()
    page.wait_for_url("**/dashboard/import")
    expect(page.get_by_role("heading", level=1)).to_have_text("Import preview")
    expect(page.locator("#import-summary")).to_contain_text("2 created")
    expect(page.locator("#import-summary")).to_contain_text("1 changed")
    expect(page.locator("#import-summary")).to_contain_text("0 deleted")
    applications = page.get_by_role("region", name="Applications")
    expect(applications.locator('tr[data-kind="created"]')).to_contain_text("imported-app")
    expect(applications.locator('tr[data-kind="changed"]')).to_contain_text("partners.test/new-cb")
    shot(page, "import-preview")
    assert "imported-app" not in client_names(server.app)

    page.get_by_role("button", name="Apply import").click()
    page.wait_for_url("**/dashboard/export")
    expect(page.get_by_role("status")).to_contain_text("Imported: 2 created, 1 changed, 0 deleted.")
    shot(page, "import-applied")
    assert "imported-app" in client_names(server.app)
    assert "empty" in client_names(server.app)  # not deleted: "Delete what the file..." unticked
    assert secret_of(server.app, "web") == WEB_SECRET


@pytest.mark.e2e
def test_in_chromium_a_broken_file_is_explained_and_nothing_changes(page, server):
    sign_in(page, server)
    page.goto(f"http://admin.localhost:{server.port}/dashboard/export")
    broken = "tenant: {name: t1}\nclients: [{name: x, app_type: nope}]\n"
    page.get_by_label("Or paste it").fill(broken)
    page.get_by_role("button", name="Preview import").click()
    expect(page.get_by_role("alert")).to_contain_text("Nothing was changed.")
    expect(page.get_by_role("alert")).to_contain_text("app_type")
    expect(page.get_by_label("Or paste it")).to_have_value(broken)  # kept, to be fixed
    shot(page, "import-error")
    assert "x" not in client_names(server.app)
