"""``/api/v2/``: the thin HTTP layer. Each view checks the bearer token and its scope,
parses input, calls :mod:`clients` or :mod:`connections` and renders Auth0's JSON."""

from __future__ import annotations

from flask import Blueprint
from flask import current_app
from flask import g
from flask import jsonify
from flask import request
from flask import url_for

from login_site import accounts
from login_site import events
from login_site import mail
from login_site.api.dbconnections import send_verification_mail
from login_site.db import get_db
from login_site.management import auth
from login_site.management import body
from login_site.management import client_grants
from login_site.management import clients
from login_site.management import connections
from login_site.management import jobs
from login_site.management import openapi
from login_site.management import resource_servers
from login_site.management import signing_keys
from login_site.management import tickets
from login_site.management import users
from login_site.management.errors import ManagementError
from login_site.management.errors import invalid_query
from login_site.management.errors import response
from login_site.tenancy import issuer
from login_site.vault import keyring

bp = Blueprint("management", __name__, url_prefix="/api/v2")


@bp.errorhandler(429)
def _too_many_requests(exc):
    """The rate limiter's 429 in the Management API's shape; its X-RateLimit-* headers stay."""
    return response(
        ManagementError(
            429, "Too many requests. Check the X-RateLimit-* headers.", "too_many_requests"
        )
    )


@bp.errorhandler(ManagementError)
def _management_error(exc: ManagementError):
    return response(exc)


@bp.before_request
def _refuse_nul():
    """A NUL in the path or query is a 400 (PostgreSQL text cannot hold one); bodies are
    checked in :func:`body.json_body`."""
    args = request.args.items(multi=True)
    if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in args):
        raise invalid_query("the URL must not contain NUL characters")


def caller(*scopes: str) -> auth.Caller:
    """The authenticated caller, if its token carries one of ``scopes`` (401/403 otherwise)."""
    token = auth.bearer_token(request.headers.get("Authorization"))
    who = auth.verify(get_db(), g.tenant.id, token, issuer())
    auth.require_scope(who, *scopes)
    return who


def _body(kind: type = dict):
    return body.json_body(request.get_data(cache=False), request.mimetype, kind=kind)


def _changed(name: str, who: auth.Caller, **target: str) -> None:
    events.event(name, "success", actor_client_id=who.client_id, **target)


# --- clients --------------------------------------------------------------------------------


@bp.get("/clients")
def list_clients():
    caller("read:clients")
    page, per_page, totals = body.paging(request.args)
    rows, total = clients.listing(get_db(), g.tenant, page, per_page)
    items = [clients.as_json(c) for c in rows]
    return jsonify(body.page_of(items, total, page, per_page, totals, "clients"))


@bp.post("/clients")
def create_client():
    who = caller("create:clients")
    data = _body()
    db = get_db()
    client, secret = clients.create(db, keyring(), g.tenant, data)
    db.commit()
    _changed("management.client_created", who, client_id=client.client_id)
    return jsonify(clients.as_json(client, secret=secret)), 201


@bp.get("/clients/<client_id>")
def get_client(client_id: str):
    caller("read:clients")
    return jsonify(clients.as_json(clients.find(get_db(), g.tenant, client_id)))


@bp.patch("/clients/<client_id>")
def update_client(client_id: str):
    who = caller("update:clients")
    db = get_db()
    client = clients.find(db, g.tenant, client_id)
    clients.update(db, keyring(), g.tenant, client, _body())
    db.commit()
    _changed("management.client_updated", who, client_id=client.client_id)
    return jsonify(clients.as_json(client))


@bp.delete("/clients/<client_id>")
def delete_client(client_id: str):
    who = caller("delete:clients")
    db = get_db()
    client = clients.find(db, g.tenant, client_id)
    db.delete(client)
    db.commit()
    _changed("management.client_deleted", who, client_id=client_id)
    return "", 204


@bp.post("/clients/<client_id>/rotate-secret")
def rotate_client_secret(client_id: str):
    who = caller("update:client_keys")
    db = get_db()
    client = clients.find(db, g.tenant, client_id)
    secret = clients.rotate_secret(db, keyring(), client)
    db.commit()
    _changed("management.client_secret_rotated", who, client_id=client.client_id)
    return jsonify(clients.as_json(client, secret=secret))


# --- connections ----------------------------------------------------------------------------


@bp.get("/connections")
def list_connections():
    caller("read:connections")
    page, per_page, totals = body.paging(request.args)
    strategies = request.args.getlist("strategy")
    db = get_db()
    rows, total = connections.listing(
        db, g.tenant, page, per_page, strategies, request.args.get("name")
    )
    items = [connections.as_json(db, c) for c in rows]
    return jsonify(body.page_of(items, total, page, per_page, totals, "connections"))


@bp.post("/connections")
def create_connection():
    who = caller("create:connections")
    data = _body()
    db = get_db()
    conn = connections.create(db, keyring(), g.tenant, data)
    db.commit()
    _changed("management.connection_created", who, connection_id=conn.id)
    return jsonify(connections.as_json(db, conn)), 201


@bp.get("/connections/<connection_id>")
def get_connection(connection_id: str):
    caller("read:connections")
    db = get_db()
    return jsonify(connections.as_json(db, connections.find(db, g.tenant, connection_id)))


@bp.patch("/connections/<connection_id>")
def update_connection(connection_id: str):
    who = caller("update:connections")
    db = get_db()
    conn = connections.find(db, g.tenant, connection_id)
    connections.update(db, keyring(), g.tenant, conn, _body())
    db.commit()
    _changed("management.connection_updated", who, connection_id=conn.id)
    return jsonify(connections.as_json(db, conn))


@bp.delete("/connections/<connection_id>")
def delete_connection(connection_id: str):
    who = caller("delete:connections")
    db = get_db()
    conn = connections.find(db, g.tenant, connection_id)
    db.delete(conn)
    db.commit()
    _changed("management.connection_deleted", who, connection_id=connection_id)
    return "", 204


@bp.get("/connections/<connection_id>/clients")
def connection_clients(connection_id: str):
    caller("read:connections")
    db = get_db()
    conn = connections.find(db, g.tenant, connection_id)
    raw_take = request.args.get("take", "")
    if raw_take and (not raw_take.isdigit() or len(raw_take) > 9):
        raise invalid_query("'take' must be a non-negative integer")
    take = min(int(raw_take or body.DEFAULT_PER_PAGE), body.MAX_PER_PAGE) or body.DEFAULT_PER_PAGE
    ids, after = connections.enabled_clients(db, conn, take, request.args.get("from") or None)
    out: dict = {"clients": [{"client_id": c} for c in ids]}
    if after is not None:
        out["next"] = after
    return jsonify(out)


@bp.patch("/connections/<connection_id>/clients")
def change_connection_clients(connection_id: str):
    who = caller("update:connections")
    db = get_db()
    conn = connections.find(db, g.tenant, connection_id)
    changes = connections.change_clients(db, g.tenant, conn, _body(list))
    db.commit()
    for item in changes:
        _changed(
            "management.connection_client_" + ("enabled" if item["status"] else "disabled"),
            who,
            connection_id=conn.id,
            client_id=item["client_id"],
        )
    return "", 204


def register(app) -> Blueprint:
    """Register the blueprint; returns it so the factory can exempt it from CSRF."""
    app.register_blueprint(bp)
    return bp


# --- users ----------------------------------------------------------------------------------


def _user_json(user, selection=None):
    return users.as_json(user, users.connection_names(get_db(), g.tenant), selection)


@bp.get("/users")
def list_users():
    caller("read:users")
    search = users.search_args(request.args)
    selection = users.fields(request.args)
    db = get_db()
    rows, total = users.listing(db, g.tenant, search)
    names = users.connection_names(db, g.tenant)
    items = [users.as_json(user, names, selection) for user in rows]
    return jsonify(body.page_of(items, total, search.page, search.per_page, search.totals, "users"))


@bp.post("/users")
def create_user():
    who = caller("create:users")
    data = _body()
    db = get_db()
    user, verify = users.create(db, g.tenant, data)
    if verify:
        send_verification_mail(user, None)
    db.commit()
    mail.deliver_after_commit()
    _changed("management.user_created", who, user_id=user.user_id)
    return jsonify(_user_json(user)), 201


@bp.get("/users/<user_id>")
def get_user(user_id: str):
    caller("read:users")
    selection = users.fields(request.args)
    return jsonify(_user_json(users.find(get_db(), g.tenant, user_id), selection))


@bp.patch("/users/<user_id>")
def update_user(user_id: str):
    who = caller("update:users", "update:users_app_metadata")
    data = _body()
    if not users.metadata_only(data):
        auth.require_scope(who, "update:users")
    db = get_db()
    user = users.find(db, g.tenant, user_id)
    if users.update(db, g.tenant, user, data):
        send_verification_mail(user, users.client_for(db, g.tenant, data))
    db.commit()
    mail.deliver_after_commit()
    _changed("management.user_updated", who, user_id=user.user_id)
    return jsonify(_user_json(user))


@bp.delete("/users/<user_id>")
def delete_user(user_id: str):
    who = caller("delete:users")
    db = get_db()
    accounts.delete_user(db, users.find(db, g.tenant, user_id))
    db.commit()
    _changed("management.user_deleted", who, user_id=user_id)
    return "", 204


@bp.get("/users-by-email")
def users_by_email():
    caller("read:users")
    selection = users.fields(request.args)
    db = get_db()
    names = users.connection_names(db, g.tenant)
    found = users.by_email(db, g.tenant, request.args.get("email"))
    return jsonify([users.as_json(user, names, selection) for user in found])


@bp.post("/users/<user_id>/identities")
def link_user_identity(user_id: str):
    who = caller("update:users")
    data = _body()
    db = get_db()
    primary = users.find(db, g.tenant, user_id)
    secondary = users.link(db, g.tenant, primary, data, issuer())
    db.commit()
    _changed("management.user_linked", who, user_id=primary.user_id, secondary_user_id=secondary)
    return jsonify(users.identities_json(primary, users.connection_names(db, g.tenant))), 201


@bp.delete("/users/<user_id>/identities/<provider>/<identity_user_id>")
def unlink_user_identity(user_id: str, provider: str, identity_user_id: str):
    who = caller("update:users")
    db = get_db()
    primary = users.find(db, g.tenant, user_id)
    standalone = users.unlink(db, primary, provider, identity_user_id)
    db.commit()
    _changed(
        "management.user_unlinked", who, user_id=primary.user_id, new_user_id=standalone.user_id
    )
    return jsonify(users.identities_json(primary, users.connection_names(db, g.tenant)))


# --- resource servers -----------------------------------------------------------------------


@bp.get("/resource-servers")
def list_resource_servers():
    caller("read:resource_servers")
    page, per_page, totals = body.paging(request.args)
    db = get_db()
    rows, total = resource_servers.listing(
        db, g.tenant, page, per_page, request.args.getlist("identifiers")
    )
    items = [resource_servers.as_json(g.tenant, r) for r in rows]
    return jsonify(body.page_of(items, total, page, per_page, totals, "resource_servers"))


@bp.post("/resource-servers")
def create_resource_server():
    who = caller("create:resource_servers")
    data = _body()
    db = get_db()
    api = resource_servers.create(db, g.tenant, data)
    db.commit()
    _changed("management.resource_server_created", who, resource_server_id=api.id)
    return jsonify(resource_servers.as_json(g.tenant, api)), 201


# ``{id}`` is an ``rs_…`` id or the URL-encoded identifier, which may hold "/" and "//".
@bp.get("/resource-servers/<path:rs_id>", merge_slashes=False)
def get_resource_server(rs_id: str):
    caller("read:resource_servers")
    api = resource_servers.find(get_db(), g.tenant, rs_id)
    return jsonify(resource_servers.as_json(g.tenant, api))


@bp.patch("/resource-servers/<path:rs_id>", merge_slashes=False)
def update_resource_server(rs_id: str):
    who = caller("update:resource_servers")
    db = get_db()
    api = resource_servers.find(db, g.tenant, rs_id)
    resource_servers.update(db, g.tenant, api, _body())
    db.commit()
    _changed("management.resource_server_updated", who, resource_server_id=api.id)
    return jsonify(resource_servers.as_json(g.tenant, api))


@bp.delete("/resource-servers/<path:rs_id>", merge_slashes=False)
def delete_resource_server(rs_id: str):
    who = caller("delete:resource_servers")
    db = get_db()
    api = resource_servers.find(db, g.tenant, rs_id)
    api_id = api.id
    resource_servers.remove(db, g.tenant, api)
    db.commit()
    _changed("management.resource_server_deleted", who, resource_server_id=api_id)
    return "", 204


# --- client grants --------------------------------------------------------------------------


@bp.get("/client-grants")
def list_client_grants():
    caller("read:client_grants")
    page, per_page, totals = body.paging(request.args)
    rows, total = client_grants.listing(
        get_db(),
        g.tenant,
        page,
        per_page,
        request.args.get("audience") or None,
        request.args.get("client_id") or None,
    )
    items = [client_grants.as_json(grant, client_id) for grant, client_id in rows]
    return jsonify(body.page_of(items, total, page, per_page, totals, "client_grants"))


@bp.post("/client-grants")
def create_client_grant():
    who = caller("create:client_grants")
    data = _body()
    db = get_db()
    grant, client_id = client_grants.create(db, g.tenant, data)
    db.commit()
    _changed("management.client_grant_created", who, client_grant_id=grant.id, client_id=client_id)
    return jsonify(client_grants.as_json(grant, client_id)), 201


@bp.patch("/client-grants/<grant_id>")
def update_client_grant(grant_id: str):
    who = caller("update:client_grants")
    db = get_db()
    grant, client_id = client_grants.find(db, g.tenant, grant_id)
    client_grants.update(db, g.tenant, grant, _body())
    db.commit()
    _changed("management.client_grant_updated", who, client_grant_id=grant.id, client_id=client_id)
    return jsonify(client_grants.as_json(grant, client_id))


@bp.delete("/client-grants/<grant_id>")
def delete_client_grant(grant_id: str):
    who = caller("delete:client_grants")
    db = get_db()
    grant, client_id = client_grants.find(db, g.tenant, grant_id)
    db.delete(grant)
    db.commit()
    _changed("management.client_grant_deleted", who, client_grant_id=grant_id, client_id=client_id)
    return "", 204


# --- signing keys ---------------------------------------------------------------------------


@bp.get("/keys/signing")
def list_signing_keys():
    caller("read:signing_keys")
    rows = signing_keys.listing(get_db(), g.tenant)
    return jsonify([signing_keys.as_json(k, g.tenant, keyring()) for k in rows])


@bp.get("/keys/signing/<kid>")
def get_signing_key(kid: str):
    caller("read:signing_keys")
    key = signing_keys.find(get_db(), g.tenant, kid)
    return jsonify(signing_keys.as_json(key, g.tenant, keyring()))


@bp.post("/keys/signing/rotate")
def rotate_signing_key():
    who = caller("create:signing_keys", "update:signing_keys")
    db = get_db()
    key = signing_keys.rotate(db, g.tenant, keyring(), current_app.config)
    db.commit()
    _changed("management.signing_key_rotated", who, kid=key.kid)
    cert = signing_keys.certificate(key, g.tenant, keyring())
    return jsonify(cert=signing_keys.cert_pem(cert), kid=key.kid), 201


@bp.put("/keys/signing/<kid>/revoke")
def revoke_signing_key(kid: str):
    who = caller("update:signing_keys")
    db = get_db()
    key = signing_keys.revoke(db, signing_keys.find(db, g.tenant, kid))
    db.commit()
    _changed("management.signing_key_revoked", who, kid=key.kid)
    cert = signing_keys.certificate(key, g.tenant, keyring())
    return jsonify(cert=signing_keys.cert_pem(cert), kid=key.kid)


# --- tickets --------------------------------------------------------------------------------


@bp.post("/tickets/password-change")
def create_password_change_ticket():
    who = caller("create:user_tickets")
    data = _body()
    db = get_db()
    user, raw = tickets.password_change(
        db, g.tenant, data, default_ttl_seconds=current_app.config["RESET_TICKET_TTL_SECONDS"]
    )
    db.commit()
    _changed("management.password_change_ticket_created", who, user_id=user.user_id)
    url = url_for("selfservice.reset_password_form", ticket=raw, _external=True)
    return jsonify(ticket=url), 201, {"Cache-Control": "no-store"}


# --- jobs -----------------------------------------------------------------------------------


def _job_json(job) -> dict:
    location = url_for("management.get_job_export", job_id=job.id, _external=True)
    return jobs.as_json(get_db(), job, location=location)


@bp.post("/jobs/verification-email")
def create_verification_email_job():
    who = caller("update:users")
    data = _body()
    db = get_db()
    job = jobs.verification_email(db, g.tenant, data)
    db.commit()
    mail.deliver_after_commit()
    _changed("management.verification_email_job_created", who, job_id=job.id)
    return jsonify(_job_json(job)), 201


@bp.post("/jobs/users-exports")
def create_users_export_job():
    who = caller("read:users")
    data = _body()
    db = get_db()
    job = jobs.users_export(db, g.tenant, data)
    db.commit()
    _changed("management.users_export_job_created", who, job_id=job.id)
    return jsonify(_job_json(job)), 201


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    caller("read:users", "create:users")
    return jsonify(_job_json(jobs.find(get_db(), g.tenant, job_id)))


@bp.get("/jobs/<job_id>/export")
def get_job_export(job_id: str):
    who = caller("read:users")
    job = jobs.export_file(get_db(), g.tenant, job_id)
    _changed("management.users_export_downloaded", who, job_id=job.id)
    kind = "application/x-ndjson" if job.format == "json" else "text/csv"
    headers = {
        "Content-Type": f"{kind}; charset=utf-8",
        "Content-Disposition": f'attachment; filename="users-{job.id}.{job.format}"',
        "Cache-Control": "no-store",
    }
    return job.export, 200, headers


# --- OpenAPI --------------------------------------------------------------------------------


@bp.get("/openapi.json")
def openapi_document():
    """The OpenAPI 3 description of every /api/v2 route (no token needed: it holds no data)."""
    return jsonify(openapi.document(current_app, issuer()))
