"""OAuth/OIDC JSON endpoints: token, userinfo, discovery, JWKS, logout."""

from __future__ import annotations

from flask import Blueprint
from flask import jsonify
from flask import redirect
from flask import render_template
from flask import request
from sqlalchemy import select

from login_site.db import get_db
from login_site.events import event
from login_site.login import flow
from login_site.models import Client
from login_site.oauth import keys
from login_site.oauth import userinfo
from login_site.oauth.discovery import openid_configuration
from login_site.oauth.server import authorization_server
from login_site.oauth.server import revocation_response
from login_site.tenancy import current_tenant
from login_site.tenancy import issuer
from login_site.vault import keyring

bp = Blueprint("oauth", __name__)


@bp.post("/oauth/token")
def token():
    return authorization_server().create_token_response()


@bp.post("/oauth/revoke")
def revoke():
    return revocation_response()


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo_endpoint():
    claims = userinfo.claims_for(get_db(), current_tenant(), userinfo.bearer_token())
    response = jsonify(claims)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/.well-known/openid-configuration")
def discovery():
    response = jsonify(openid_configuration(issuer()))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/.well-known/jwks.json")
def jwks():
    db = get_db()
    keys.ensure_signing_key(db, current_tenant(), keyring())
    db.commit()
    response = jsonify(keys.jwks(db, current_tenant().id))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/v2/logout")
def logout():
    """End the session server-side, then go to an allowed ``returnTo`` only (compat §5)."""
    db = get_db()
    tenant = current_tenant()
    flow.end()
    event("logout", "success", client_id=request.args.get("client_id"))
    return_to = request.args.get("returnTo")
    client_id = request.args.get("client_id")
    allowed: list[str] = []
    if client_id:
        client = db.execute(
            select(Client).where(Client.tenant_id == tenant.id, Client.client_id == client_id)
        ).scalar_one_or_none()
        allowed = list(client.allowed_logout_urls or []) if client else []
        if client and not return_to and allowed:
            return_to = allowed[0]
    else:
        allowed = list(tenant.setting("allowed_logout_urls") or [])
    if return_to and return_to in allowed:
        return redirect(return_to, code=302)
    return render_template("login/logged_out.html", tenant=tenant, rejected=bool(return_to)), 200
