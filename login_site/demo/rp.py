"""A demo relying party: a separate, ordinary web application that logs in through login_site.

It is a real OAuth client over HTTP (authlib's Flask client): discovery, authorization code
with PKCE S256, the secret sent by ``client_secret_post``, and the ID token checked against the
JWKS (signature, ``iss``, ``aud``, ``nonce``, expiry) before anything is shown. It is not part of
the login_site application and keeps its own cookie.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any
from urllib.parse import urlencode

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask
from flask import redirect
from flask import render_template_string
from flask import session
from flask import url_for

CLIENT_ID = "demo-web-app"
SCOPE = "openid profile email"
# Session keys of what the callback learned; nothing else about the user is kept.
TOKENS_KEY = "tokens"


def create_rp(issuer: str, client_secret: str, rp_base: str) -> Flask:
    """The demo application, talking to the authorization server at ``issuer``.

    ``rp_base`` is this application's own origin (``http://localhost:8765``); its
    ``/callback`` must be registered on the ``demo-web-app`` client.
    """
    # authlib refuses plain-http endpoints unless this is set. The demo runs both servers on
    # localhost without TLS, so it is set here, for the demo only; never in login_site itself.
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
    issuer = issuer.rstrip("/") + "/"
    rp_base = rp_base.rstrip("/")
    app = Flask(__name__)
    app.config.update(
        # A new key per start: a restart only logs the demo user out of the demo app.
        SECRET_KEY=secrets.token_urlsafe(32),
        SESSION_COOKIE_NAME="demo_rp_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    oauth = OAuth(app)
    provider = oauth.register(
        name="login_site",
        client_id=CLIENT_ID,
        client_secret=client_secret,
        server_metadata_url=f"{issuer}.well-known/openid-configuration",
        client_kwargs={
            "scope": SCOPE,
            "token_endpoint_auth_method": "client_secret_post",
            "code_challenge_method": "S256",
        },
    )
    redirect_uri = f"{rp_base}/callback"
    logout_url = f"{issuer}v2/logout?" + urlencode(
        {"client_id": CLIENT_ID, "returnTo": f"{rp_base}/"}
    )

    @app.get("/")
    def home():
        tokens = session.get(TOKENS_KEY)
        return render_template_string(
            PAGE,
            issuer=issuer,
            tokens=tokens,
            claims=_pretty(tokens["claims"]) if tokens else None,
            userinfo=_pretty(tokens["userinfo"]) if tokens else None,
        )

    @app.get("/login")
    def login():
        return provider.authorize_redirect(redirect_uri)

    @app.get("/callback")
    def callback():
        try:
            # Exchanges the code (with the PKCE verifier) and validates the ID token.
            token = provider.authorize_access_token()
            userinfo = dict(provider.userinfo(token=token))
        except OAuthError as exc:
            return _failed(f"{exc.error}: {exc.description or ''}")
        except requests.RequestException as exc:
            return _failed(f"the authorization server did not answer as expected ({exc})")
        session.clear()
        session[TOKENS_KEY] = {
            "id_token": token["id_token"],
            "access_token": token["access_token"],
            "expires_in": token.get("expires_in"),
            "claims": dict(token["userinfo"]),
            "userinfo": userinfo,
        }
        return redirect(url_for("home"))

    def _failed(message: str):
        return render_template_string(PAGE, issuer=issuer, error=message), 400

    @app.get("/logout")
    def logout():
        # Forget the tokens here, then end the login_site session too (Auth0's /v2/logout).
        session.clear()
        return redirect(logout_url)

    return app


def _pretty(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo app · login_site</title>
<link rel="icon" href="data:,">
<style>
  :root { --ink: #0f172a; --muted: #64748b; --line: #e2e8f0; --accent: #4f46e5; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
         color: var(--ink); background: #f8fafc; }
  header { background: #fff; border-bottom: 1px solid var(--line); }
  .bar, main { max-width: 880px; margin: 0 auto; padding: 16px 24px; }
  .bar { display: flex; align-items: center; justify-content: space-between; }
  .brand { font-weight: 700; }
  .brand small { color: var(--muted); font-weight: 400; margin-left: 8px; }
  .card { background: #fff; border: 1px solid var(--line); border-radius: 12px;
          padding: 24px; margin: 24px 0; }
  h1 { font-size: 1.5rem; margin: 0 0 8px; }
  h2 { font-size: 1rem; margin: 0 0 12px; }
  p { margin: 0 0 16px; color: var(--muted); }
  .button { display: inline-block; padding: 10px 20px; border-radius: 8px; border: 0;
            background: var(--accent); color: #fff; font-weight: 600; text-decoration: none; }
  .button:hover { filter: brightness(1.1); }
  .link { color: var(--accent); font-weight: 600; text-decoration: none; }
  pre { margin: 0; padding: 16px; background: #0f172a; color: #e2e8f0; border-radius: 8px;
        overflow-x: auto; font-size: 13px; line-height: 1.45; }
  .token { white-space: pre-wrap; word-break: break-all; }
  .alert { border-color: #fecaca; background: #fef2f2; color: #991b1b; }
  code { font-size: 0.9em; }
</style>
</head>
<body>
<header><div class="bar">
  <span class="brand">Demo Web App<small>a relying party of {{ issuer }}</small></span>
  {% if tokens %}<a class="link" href="{{ url_for('logout') }}">Log out</a>{% endif %}
</div></header>
<main>
{% if error %}
  <section class="card alert">
    <h1>Login failed</h1>
    <p>{{ error }}</p>
    <a class="button" href="{{ url_for('home') }}">Back</a>
  </section>
{% elif tokens %}
  <section class="card">
    <h1>Hello, {{ tokens.claims.get("name") or tokens.claims.get("email") }}</h1>
    <p>Signed in as <strong>{{ tokens.claims.get("email") }}</strong>. The ID token was
       verified against the provider's JWKS (signature, issuer, audience and nonce).</p>
  </section>
  <section class="card">
    <h2>ID token claims</h2>
    <pre id="id-token-claims">{{ claims }}</pre>
  </section>
  <section class="card">
    <h2>Userinfo response</h2>
    <pre id="userinfo">{{ userinfo }}</pre>
  </section>
  <section class="card">
    <h2>Access token
      {%- if tokens.expires_in %} (expires in {{ tokens.expires_in }} s){% endif %}</h2>
    <pre class="token" id="access-token">{{ tokens.access_token }}</pre>
  </section>
  <section class="card">
    <h2>ID token</h2>
    <pre class="token" id="id-token">{{ tokens.id_token }}</pre>
  </section>
{% else %}
  <section class="card">
    <h1>Welcome to the demo app</h1>
    <p>This application does not know who you are yet. Log in with login_site, the
       authorization server at <code>{{ issuer }}</code>.</p>
    <a class="button" href="{{ url_for('login') }}">Log in</a>
  </section>
{% endif %}
</main>
</body>
</html>
"""
