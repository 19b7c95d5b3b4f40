"""OAuth/OIDC JSON endpoints: token, userinfo, discovery, JWKS, logout."""

from __future__ import annotations

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import jsonify
from flask import redirect
from flask import render_template
from flask import request
from flask_wtf.csrf import CSRFError
from flask_wtf.csrf import validate_csrf
from wtforms import ValidationError

from login_site.db import get_db
from login_site.events import event
from login_site.login import flow
from login_site.oauth import discovery as openid
from login_site.oauth import fastpath
from login_site.oauth import keys
from login_site.oauth import logout
from login_site.oauth import userinfo
from login_site.oauth.server import authorization_server
from login_site.oauth.server import revocation_response
from login_site.tenancy import current_tenant
from login_site.tenancy import issuer

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
    """Reached when :class:`~login_site.oauth.fastpath.FastPath` passes the request on."""
    response = Response(openid.document(issuer()), mimetype="application/json")
    response.headers["Cache-Control"] = openid.CACHE_CONTROL
    return response


@bp.get("/.well-known/jwks.json")
def jwks():
    """Read only: tenants get their first keys on import (``tenant_config.apply``). Reached
    when :class:`~login_site.oauth.fastpath.FastPath` passes the request on."""
    document = keys.jwks_document(current_app, get_db(), current_tenant())
    response = Response(document, mimetype="application/json")
    response.headers["Cache-Control"] = fastpath.JWKS_CACHE_CONTROL
    return response


@bp.get("/v2/logout")
def v2_logout():
    """End the session server-side, then go to an allowed ``returnTo`` only (compat §5)."""
    flow.end()
    event("logout", "success", client_id=request.args.get("client_id"))
    target = logout.v2_return_to(
        get_db(), current_tenant(), request.args.get("client_id"), request.args.get("returnTo")
    )
    if target:
        return redirect(target, code=302)
    return _logged_out(rejected=bool(request.args.get("returnTo")))


@bp.route("/oidc/logout", methods=["GET", "POST"])
def oidc_logout():
    """RP-initiated logout; without a hint that matches the session, confirm first."""
    args = request.values
    confirmed = request.method == "POST" and request.form.get("confirm") == "yes"
    if confirmed:  # the confirmation form is ours: CSRF applies (the RP's own POST has none)
        try:
            validate_csrf(request.form.get("csrf_token"))
        except ValidationError as exc:
            raise CSRFError(str(exc)) from exc
    decision = logout.rp_initiated(
        get_db(), current_tenant(), issuer(), args, flow.current_login_session()
    )
    if not decision.hint_matches_session and not confirmed:
        return render_template(
            "login/logout_confirm.html",
            tenant=current_tenant(),
            fields={k: v for k, v in args.items() if k != "confirm"},
        )
    flow.end()
    event("logout", "success", client_id=args.get("client_id"))
    if decision.redirect and decision.hint_matches_session:
        return redirect(decision.redirect, code=302)
    return _logged_out(rejected=False)


def _logged_out(rejected: bool):
    return render_template("login/logged_out.html", tenant=current_tenant(), rejected=rejected)
