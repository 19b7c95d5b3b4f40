"""What both sides serve: read once from ``bench/tenant.yaml``.

login_site imports the file itself; the peer gets the same clients, user and API as JSON
(:func:`peer_config`), and the load generators get a :class:`Side` per server.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from login_site.config import DEFAULTS

BENCH_DIR = Path(__file__).absolute().parent
TENANT_FILE = BENCH_DIR / "tenant.yaml"
WEB_CLIENT = "bench-web"
M2M_CLIENT = "bench-m2m"
PEER_USER_ID = "auth0|bench-user"
ROUND_TRIP_SCOPE = "openid profile email"


def tenant() -> dict[str, Any]:
    # The only keyword is the host list; any value parses.
    text = TENANT_FILE.read_text().replace("@@BENCH_HOSTS@@", "[]")
    return yaml.safe_load(text)


def _client(doc: dict, name: str) -> dict[str, Any]:
    return next(c for c in doc["clients"] if c["name"] == name)


def argon2_parameters() -> dict[str, int]:
    """login_site's configured argon2id parameters (its defaults: the bench sets none)."""
    return {
        "memory_cost_kib": DEFAULTS["ARGON2_MEMORY_COST_KIB"],
        "time_cost": DEFAULTS["ARGON2_TIME_COST"],
        "parallelism": DEFAULTS["ARGON2_PARALLELISM"],
    }


@dataclass(frozen=True)
class Side:
    """One server as the load generators see it."""

    name: str
    base_url: str  # http://127.0.0.1:PORT
    client_id: str
    client_secret: str
    redirect_uri: str
    m2m_id: str
    m2m_secret: str
    audience: str
    audience_param: str  # "audience" (Auth0) or "resource" (RFC 8707)
    m2m_scope: str
    username: str
    password: str
    # oidc-provider keeps offline_access only with prompt=consent (OIDC Core §11).
    offline_prompt: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Side:
        return cls(**json.loads(text))


def side(name: str, port: int) -> Side:
    doc = tenant()
    web, m2m = _client(doc, WEB_CLIENT), _client(doc, M2M_CLIENT)
    api = doc["resourceServers"][0]
    grant = next(g for g in doc["clientGrants"] if g["client_id"] == M2M_CLIENT)
    user = doc["users"][0]
    peer = name == "peer"
    return Side(
        name=name,
        base_url=f"http://127.0.0.1:{port}",
        client_id=web["client_id"],
        client_secret=web["client_secret"],
        redirect_uri=web["callbacks"][0],
        m2m_id=m2m["client_id"],
        m2m_secret=m2m["client_secret"],
        audience=api["identifier"],
        audience_param="resource" if peer else "audience",
        m2m_scope=" ".join(grant["scope"]),
        username=user["email"],
        password=user["password"],
        offline_prompt="consent" if peer else None,
    )


def peer_config(port: int, cookie_key: str) -> dict[str, Any]:
    doc = tenant()
    web, m2m = _client(doc, WEB_CLIENT), _client(doc, M2M_CLIENT)
    api = doc["resourceServers"][0]
    user = doc["users"][0]
    return {
        "port": port,
        "cookie_key": cookie_key,
        "argon2": argon2_parameters(),
        "clients": [
            {
                "client_id": web["client_id"],
                "client_secret": web["client_secret"],
                "grant_types": web["grant_types"],
                "redirect_uris": web["callbacks"],
            },
            {
                "client_id": m2m["client_id"],
                "client_secret": m2m["client_secret"],
                "grant_types": m2m["grant_types"],
                "redirect_uris": [],
            },
        ],
        "api": {
            "identifier": api["identifier"],
            "scopes": [s["value"] for s in api["scopes"]],
            "token_lifetime": api.get("token_lifetime", 86400),
        },
        "user": {
            "user_id": PEER_USER_ID,
            "email": user["email"],
            "password": user["password"],
            "name": user.get("name"),
            "given_name": user.get("given_name"),
            "family_name": user.get("family_name"),
        },
    }
