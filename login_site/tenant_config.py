"""Configuration as code: ``login-site import`` / ``export`` (``shared/compat/tenant-config.md``).

Import validates the whole file first (schema, references, seed passwords), then
upserts in one transaction: all or nothing, and importing the same file twice
changes nothing.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import yaml
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from login_site import accounts
from login_site import passwords
from login_site.connections.base import KNOWN_STRATEGIES
from login_site.connections.base import InvalidOptions
from login_site.connections.base import get_strategy
from login_site.db import session_scope
from login_site.models import Client
from login_site.models import ClientGrant
from login_site.models import Connection
from login_site.models import ConnectionClient
from login_site.models import DatabaseCredential
from login_site.models import Identity
from login_site.models import ResourceServer
from login_site.models import Tenant
from login_site.models import TenantHost
from login_site.models import User
from login_site.models.client import APP_TYPES
from login_site.models.client import AUTH_METHODS
from login_site.models.ids import new_secret
from login_site.oauth import keys
from login_site.tenancy import normalise_host
from login_site.urls import origin_problem
from login_site.urls import redirect_uri_problem
from login_site.vault import Keyring
from login_site.vault import reveal_options
from login_site.vault import seal_options

KEYWORD_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
HASH_KEYWORD = re.compile(r"##([A-Z][A-Z0-9_]*)##")
AT_KEYWORD = re.compile(r"""(["']?)@@([A-Z][A-Z0-9_]*)@@\1""")
TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
HOST = re.compile(r"^[a-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9a-f:]+\](:[0-9]{1,5})?$")
MIN_CLIENT_SECRET_LENGTH = 32

SERVER_ONLY_SETTINGS = ("admin",)
TENANT_KEYS = {
    "name",
    "friendly_name",
    "support_email",
    "allowed_logout_urls",
    "default_directory",
    "default_audience",
    "session_lifetime",
    "idle_session_lifetime",
    "enabled_locales",
    "hosts",
    "signing_keys",
    "picture_url",
    "branding",
    "support_url",
}
GRANT_TYPES = {
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "password",
    "implicit",
    "http://auth0.com/oauth/grant-type/password-realm",
    "http://auth0.com/oauth/grant-type/passwordless/otp",
    "http://auth0.com/oauth/grant-type/mfa-oob",
    "http://auth0.com/oauth/grant-type/mfa-otp",
    "http://auth0.com/oauth/grant-type/mfa-recovery-code",
    "urn:ietf:params:oauth:grant-type:device_code",
    "urn:auth0:params:oauth:grant-type:token-exchange:federated-connection-access-token",
}
CLIENT_LIST_FIELDS = (
    "callbacks",
    "allowed_logout_urls",
    "web_origins",
    "allowed_origins",
    "grant_types",
)
CLIENT_COLUMNS = (
    "description",
    "app_type",
    "token_endpoint_auth_method",
    "is_first_party",
    *CLIENT_LIST_FIELDS,
)
CLIENT_IGNORED = {"name", "client_id", "client_secret"}
USER_FIELDS = (
    "email_verified",
    "phone_number",
    "given_name",
    "family_name",
    "name",
    "nickname",
    "picture",
    "user_metadata",
    "app_metadata",
    "blocked",
)
# Option names whose values are secrets: exported as placeholders.
SECRET_OPTIONS = (
    "client_secret",
    "twilio_token",
    "bind_password",
    "signing_key",
    "api_key",
    "secret",
)


class ConfigError(ValueError):
    """An invalid file; the message names the key."""


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False

    def lines(self) -> list[str]:
        out = [f"created {x}" for x in self.created]
        out += [f"updated {x}" for x in self.updated]
        out += [f"deleted {x}" for x in self.deleted]
        out += self.notes
        summary = (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged, {len(self.deleted)} deleted"
        )
        out.append(("dry run: " if self.dry_run else "") + summary)
        return out

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


# --- keywords and parsing ------------------------------------------------------------------


def replace_keywords(text: str, mapping: dict[str, Any]) -> str:
    """Deploy CLI keywords: ``##NAME##`` literally, ``@@NAME@@`` as JSON."""

    def _hash(match: re.Match) -> str:
        name = match.group(1)
        if name not in mapping:
            raise ConfigError(
                f"keyword ##{name}## has no value (set the environment variable "
                f"{name} or pass --keywords)"
            )
        return str(mapping[name])

    def _at(match: re.Match) -> str:
        name = match.group(2)
        if name not in mapping:
            return match.group(0)
        return json.dumps(mapping[name])

    text = AT_KEYWORD.sub(_at, text)
    return HASH_KEYWORD.sub(_hash, text)


def keyword_values(keywords_file: Path | None, environ: dict[str, str] | None = None) -> dict:
    mapping: dict[str, Any] = {}
    if keywords_file is not None:
        try:
            data = json.loads(Path(keywords_file).read_text())
        except ValueError as exc:
            raise ConfigError(f"--keywords: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError("--keywords: must be a JSON object")
        mapping.update(data)
    env = os.environ if environ is None else environ
    mapping.update({k: v for k, v in env.items() if KEYWORD_NAME.match(k)})  # environment wins
    return mapping


def parse(text: str, mapping: dict[str, Any]) -> dict[str, Any]:
    try:
        data = yaml.safe_load(replace_keywords(text, mapping))
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError("the file must be a mapping with a 'tenant' key")
    return data


# --- validation ---------------------------------------------------------------------------


def _list(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a list")
    return value


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a mapping")
    return value


def _str_list(value: Any, where: str) -> list[str]:
    items = _list(value, where)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise ConfigError(f"{where}[{i}]: must be a string")
    return items


def _named(items: list, section: str, key: str = "name") -> dict[str, dict]:
    out: dict[str, dict] = {}
    for i, item in enumerate(items):
        where = f"{section}[{i}]"
        item = _mapping(item, where)
        name = item.get(key)
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}.{key}: required")
        if name in out:
            raise ConfigError(f"{where}.{key}: duplicate {key} {name!r}")
        out[name] = item
    return out


def validate(data: dict[str, Any]) -> dict[str, Any]:
    """Check the whole document; return it normalised (no database access)."""
    unknown = set(data) - {
        "tenant",
        "clients",
        "databases",
        "connections",
        "resourceServers",
        "clientGrants",
        "users",
    }
    if unknown:
        raise ConfigError(f"{sorted(unknown)[0]}: unknown top-level key")
    tenant = _mapping(data.get("tenant"), "tenant")
    name = tenant.get("name")
    if not isinstance(name, str) or not TENANT_NAME.match(name):
        raise ConfigError("tenant.name: required, lower-case letters, digits and dashes")
    for key in tenant:
        if key not in TENANT_KEYS:
            raise ConfigError(f"tenant.{key}: unknown key")
    hosts = [normalise_host(h) for h in _str_list(tenant.get("hosts"), "tenant.hosts")]
    for i, host in enumerate(hosts):
        if not HOST.match(host):
            raise ConfigError(f"tenant.hosts[{i}]: not a host[:port] value")
    for i, url in enumerate(
        _str_list(tenant.get("allowed_logout_urls"), "tenant.allowed_logout_urls")
    ):
        if problem := redirect_uri_problem(url):
            raise ConfigError(f"tenant.allowed_logout_urls[{i}]: {problem}")
    signing = _mapping(tenant.get("signing_keys"), "tenant.signing_keys")
    if signing.get("alg", "RS256") != "RS256":
        raise ConfigError("tenant.signing_keys.alg: only RS256 is supported")
    if int(signing.get("key_size", 2048)) < 2048:
        raise ConfigError("tenant.signing_keys.key_size: at least 2048")
    for key in ("session_lifetime", "idle_session_lifetime"):
        if key in tenant and (not isinstance(tenant[key], int | float) or tenant[key] <= 0):
            raise ConfigError(f"tenant.{key}: must be a positive number of hours")

    clients = _named(_list(data.get("clients"), "clients"), "clients")
    for index, client in enumerate(clients.values()):
        _validate_client(client, index)

    connections: dict[str, dict] = {}
    for section, implied in (("databases", "auth0"), ("connections", None)):
        for index, (cname, conn) in enumerate(
            _named(_list(data.get(section), section), section).items()
        ):
            where = f"{section}[{index}]"
            if cname in connections:
                raise ConfigError(f"{where}.name: duplicate connection name {cname!r}")
            strategy = implied or conn.get("strategy")
            if implied and conn.get("strategy", implied) != implied:
                raise ConfigError(f"{where}.strategy: databases use the auth0 strategy")
            if strategy not in KNOWN_STRATEGIES:
                raise ConfigError(f"{where}.strategy: unknown strategy {strategy!r}")
            options = _mapping(conn.get("options"), f"{where}.options")
            implementation = get_strategy(strategy)
            if implementation is not None:
                try:
                    options = implementation.validate_options(options)
                except InvalidOptions as exc:
                    raise ConfigError(f"{where}.{exc}") from exc
            enabled = _str_list(conn.get("enabled_clients"), f"{where}.enabled_clients")
            for i, client_name in enumerate(enabled):
                if client_name not in clients:
                    raise ConfigError(
                        f"{where}.enabled_clients[{i}]: unknown client {client_name!r}"
                    )
            connections[cname] = {
                "name": cname,
                "strategy": strategy,
                "options": options,
                "enabled_clients": enabled,
                "display_name": conn.get("display_name"),
            }

    apis = _named(
        _list(data.get("resourceServers"), "resourceServers"), "resourceServers", key="identifier"
    )
    for i, (_identifier, api) in enumerate(apis.items()):
        scopes = _list(api.get("scopes"), f"resourceServers[{i}].scopes")
        for j, scope in enumerate(scopes):
            if not isinstance(scope, dict) or not isinstance(scope.get("value"), str):
                raise ConfigError(f"resourceServers[{i}].scopes[{j}]: needs a 'value'")
        if "token_lifetime" in api and not isinstance(api["token_lifetime"], int):
            raise ConfigError(f"resourceServers[{i}].token_lifetime: must be seconds")

    grants: dict[tuple[str, str], dict] = {}
    for i, grant in enumerate(_list(data.get("clientGrants"), "clientGrants")):
        grant = _mapping(grant, f"clientGrants[{i}]")
        client_name, audience = grant.get("client_id"), grant.get("audience")
        if client_name not in clients:
            raise ConfigError(f"clientGrants[{i}].client_id: unknown client {client_name!r}")
        if audience not in apis:
            raise ConfigError(f"clientGrants[{i}].audience: unknown API {audience!r}")
        scope = _str_list(grant.get("scope"), f"clientGrants[{i}].scope")
        allowed = {s["value"] for s in apis[audience].get("scopes") or []}
        for j, value in enumerate(scope):
            if value not in allowed:
                raise ConfigError(
                    f"clientGrants[{i}].scope[{j}]: {value!r} is not a scope of the API"
                )
        if (client_name, audience) in grants:
            raise ConfigError(f"clientGrants[{i}]: duplicate grant")
        grants[(client_name, audience)] = {"scope": scope}

    users = []
    for i, user in enumerate(_list(data.get("users"), "users")):
        users.append(_validate_user(user, i, connections))

    default_directory = tenant.get("default_directory")
    if default_directory and default_directory not in connections:
        raise ConfigError(f"tenant.default_directory: unknown connection {default_directory!r}")
    return {
        "tenant": tenant,
        "hosts": hosts,
        "clients": clients,
        "connections": connections,
        "apis": apis,
        "grants": grants,
        "users": users,
    }


def _validate_client(client: dict, index: int) -> None:
    where = f"clients[{index}]"
    app_type = client.get("app_type", "regular_web")
    if app_type not in APP_TYPES:
        raise ConfigError(f"{where}.app_type: one of {', '.join(APP_TYPES)}")
    method = client.get("token_endpoint_auth_method")
    if method is not None and method not in AUTH_METHODS:
        raise ConfigError(f"{where}.token_endpoint_auth_method: one of {', '.join(AUTH_METHODS)}")
    for key in CLIENT_LIST_FIELDS:
        _str_list(client.get(key), f"{where}.{key}")
    for i, url in enumerate(client.get("callbacks") or []):
        if problem := redirect_uri_problem(url, app_type=app_type):
            raise ConfigError(f"{where}.callbacks[{i}]: {problem}")
    for i, url in enumerate(client.get("allowed_logout_urls") or []):
        if problem := redirect_uri_problem(url, app_type=app_type):
            raise ConfigError(f"{where}.allowed_logout_urls[{i}]: {problem}")
    for key in ("web_origins", "allowed_origins"):
        for i, origin in enumerate(client.get(key) or []):
            if problem := origin_problem(origin):
                raise ConfigError(f"{where}.{key}[{i}]: {problem}")
    for i, grant in enumerate(client.get("grant_types") or []):
        if grant not in GRANT_TYPES:
            raise ConfigError(f"{where}.grant_types[{i}]: unknown grant type {grant!r}")
    client_id = client.get("client_id")
    if client_id is not None and (
        not isinstance(client_id, str) or not re.match(r"^[A-Za-z0-9._-]{3,128}$", client_id)
    ):
        raise ConfigError(f"{where}.client_id: 3-128 letters, digits, '.', '_' or '-'")
    secret = client.get("client_secret")
    if secret is not None:
        if _auth_method(client) == "none":
            raise ConfigError(f"{where}.client_secret: public clients have no secret")
        if not isinstance(secret, str) or len(secret) < MIN_CLIENT_SECRET_LENGTH:
            raise ConfigError(
                f"{where}.client_secret: at least {MIN_CLIENT_SECRET_LENGTH} characters"
            )
    if "is_first_party" in client and not isinstance(client["is_first_party"], bool):
        raise ConfigError(f"{where}.is_first_party: true or false")


def _auth_method(client: dict) -> str:
    if client.get("token_endpoint_auth_method"):
        return client["token_endpoint_auth_method"]
    return "none" if client.get("app_type") in ("spa", "native") else "client_secret_post"


def _validate_user(user: Any, index: int, connections: dict[str, dict]) -> dict:
    where = f"users[{index}]"
    user = _mapping(user, where)
    conn = connections.get(user.get("connection"))
    if conn is None:
        raise ConfigError(f"{where}.connection: unknown connection {user.get('connection')!r}")
    if conn["strategy"] != "auth0":
        raise ConfigError(f"{where}.connection: seed users need a database connection")
    email = user.get("email")
    if not isinstance(email, str) or not accounts.valid_email(email):
        raise ConfigError(f"{where}.email: a valid email address is required")
    username = user.get("username")
    if conn["options"].get("requires_username"):
        if not isinstance(username, str) or not accounts.valid_username(username, conn["options"]):
            raise ConfigError(f"{where}.username: required by the connection")
    elif username is not None:
        raise ConfigError(f"{where}.username: the connection does not use usernames")
    password = user.get("password")
    if not isinstance(password, str) or not password:
        raise ConfigError(f"{where}.password: required")
    failed = passwords.policy_errors(conn["options"], password)
    if failed or passwords.too_long(password):
        reasons = "; ".join(passwords.describe(r) for r in failed) or "too long"
        raise ConfigError(f"{where}.password: does not meet the connection's policy ({reasons})")
    for key in user:
        if key not in (*USER_FIELDS, "email", "username", "password", "connection"):
            raise ConfigError(f"{where}.{key}: unknown key")
    for key in ("user_metadata", "app_metadata"):
        _mapping(user.get(key), f"{where}.{key}")
    return user


# --- applying -----------------------------------------------------------------------------


def _set(obj: Any, attr: str, value: Any) -> bool:
    if getattr(obj, attr) != value:
        setattr(obj, attr, value)
        return True
    return False


def _track(report: Report, label: str, created: bool, changed: bool) -> None:
    if created:
        report.created.append(label)
    elif changed:
        report.updated.append(label)
    else:
        report.unchanged.append(label)


def apply(
    db: Session,
    ring: Keyring,
    doc: dict[str, Any],
    *,
    allow_delete: bool = False,
    report: Report | None = None,
) -> Report:
    """Upsert a validated document. The caller owns the transaction."""
    report = report or Report()
    spec = doc["tenant"]
    tenant = db.execute(select(Tenant).where(Tenant.name == spec["name"])).scalar_one_or_none()
    created = tenant is None
    if created:
        tenant = Tenant(name=spec["name"], settings={})
        db.add(tenant)
        db.flush()
    settings = {k: v for k, v in spec.items() if k not in ("name", "friendly_name", "hosts")}
    # Not part of configuration files: set by `login-site admin create` only, and kept.
    for key in SERVER_ONLY_SETTINGS:
        if key in (tenant.settings or {}):
            settings[key] = tenant.settings[key]
    changed = _set(tenant, "friendly_name", spec.get("friendly_name") or spec["name"])
    changed |= _set(tenant, "settings", settings)
    changed |= _apply_hosts(db, tenant, doc["hosts"])
    _track(report, f"tenant {tenant.name}", created, changed)

    clients = _apply_clients(db, ring, tenant, doc["clients"], report, allow_delete)
    _apply_apis(db, tenant, doc["apis"], report, allow_delete)
    _apply_grants(db, tenant, clients, doc["grants"], report, allow_delete)
    connections = _apply_connections(
        db, ring, tenant, clients, doc["connections"], report, allow_delete
    )
    _apply_users(db, tenant, connections, doc["users"], report)
    made = keys.ensure_signing_keys(db, tenant, ring)
    report.created.extend(f"{key.state} signing key for {tenant.name}" for key in made)
    db.flush()
    return report


def _apply_hosts(db: Session, tenant: Tenant, hosts: list[str]) -> bool:
    changed = False
    for host in hosts:
        row = db.get(TenantHost, host)
        if row is not None and row.tenant_id != tenant.id:
            raise ConfigError(f"tenant.hosts: {host} already belongs to another tenant")
        if row is None:
            db.add(TenantHost(host=host, tenant_id=tenant.id))
            changed = True
    for row in list(tenant.hosts):
        if row.host not in hosts:
            db.delete(row)
            changed = True
    return changed


def _apply_clients(db, ring, tenant, specs, report, allow_delete) -> dict[str, Client]:
    existing = {
        c.name: c for c in db.execute(select(Client).where(Client.tenant_id == tenant.id)).scalars()
    }
    result = {}
    for name, spec in specs.items():
        client = existing.get(name)
        created = client is None
        method = _auth_method(spec)
        if created:
            client_id = spec.get("client_id") or new_secret(24)
            taken = db.execute(
                select(Client).where(Client.tenant_id == tenant.id, Client.client_id == client_id)
            ).scalar_one_or_none()
            if taken is not None:
                raise ConfigError(f"clients: client_id {client_id} is already used by {taken.name}")
            client = Client(tenant_id=tenant.id, client_id=client_id, name=name, extra={})
            db.add(client)
        elif spec.get("client_id") and spec["client_id"] != client.client_id:
            raise ConfigError(
                f"clients: {name} already has client_id {client.client_id}; "
                "a client_id cannot change"
            )
        changed = False
        values = {
            "description": spec.get("description", ""),
            "app_type": spec.get("app_type", "regular_web"),
            "token_endpoint_auth_method": method,
            "is_first_party": spec.get("is_first_party", True),
            **{k: list(spec.get(k) or []) for k in CLIENT_LIST_FIELDS},
        }
        for key, value in values.items():
            changed |= _set(client, key, value)
        changed |= _set(
            client,
            "extra",
            {k: v for k, v in spec.items() if k not in CLIENT_IGNORED and k not in CLIENT_COLUMNS},
        )
        secret = spec.get("client_secret")
        if method == "none":
            changed |= _set(client, "client_secret_enc", None)
        elif secret is not None:
            current = ring.decrypt(client.client_secret_enc) if client.client_secret_enc else None
            if current != secret:
                client.client_secret_enc = ring.encrypt(secret)
                changed = True
        elif client.client_secret_enc is None:
            client.client_secret_enc = ring.encrypt(new_secret(48))
            changed = True
        db.flush()
        _track(report, f"client {name}", created, changed and not created)
        result[name] = client
    for name, client in existing.items():
        if name not in specs and allow_delete:
            db.delete(client)
            report.deleted.append(f"client {name}")
        elif name not in specs:
            result[name] = client
    return result


def _apply_apis(db, tenant, specs, report, allow_delete) -> None:
    existing = {
        a.identifier: a
        for a in db.execute(
            select(ResourceServer).where(ResourceServer.tenant_id == tenant.id)
        ).scalars()
    }
    for identifier, spec in specs.items():
        api = existing.get(identifier)
        created = api is None
        if created:
            api = ResourceServer(tenant_id=tenant.id, identifier=identifier, name=identifier)
            db.add(api)
        changed = False
        for key, value in {
            "name": spec.get("name") or identifier,
            "scopes": [
                {"value": s["value"], "description": s.get("description", "")}
                for s in spec.get("scopes") or []
            ],
            "token_lifetime": spec.get("token_lifetime", 86400),
            "allow_offline_access": bool(spec.get("allow_offline_access", False)),
            "skip_consent_for_verifiable_first_party_clients": bool(
                spec.get("skip_consent_for_verifiable_first_party_clients", True)
            ),
            "signing_alg": spec.get("signing_alg", "RS256"),
            "token_dialect": spec.get("token_dialect", "access_token"),
        }.items():
            changed |= _set(api, key, value)
        _track(report, f"resource server {identifier}", created, changed and not created)
    if allow_delete:
        for identifier, api in existing.items():
            if identifier not in specs:
                db.delete(api)
                report.deleted.append(f"resource server {identifier}")


def _apply_grants(db, tenant, clients, specs, report, allow_delete) -> None:
    existing = {
        (g.client_pk, g.audience): g
        for g in db.execute(select(ClientGrant).where(ClientGrant.tenant_id == tenant.id)).scalars()
    }
    wanted = set()
    for (client_name, audience), spec in specs.items():
        client = clients[client_name]
        wanted.add((client.id, audience))
        grant = existing.get((client.id, audience))
        created = grant is None
        if created:
            grant = ClientGrant(tenant_id=tenant.id, client_pk=client.id, audience=audience)
            db.add(grant)
        changed = _set(grant, "scope", list(spec["scope"]))
        _track(
            report, f"client grant {client_name} -> {audience}", created, changed and not created
        )
    if allow_delete:
        for key, grant in existing.items():
            if key not in wanted:
                db.delete(grant)
                report.deleted.append(f"client grant {grant.audience}")


def _apply_connections(
    db, ring, tenant, clients, specs, report, allow_delete
) -> dict[str, Connection]:
    existing = {
        c.name: c
        for c in db.execute(select(Connection).where(Connection.tenant_id == tenant.id)).scalars()
    }
    result = {}
    for name, spec in specs.items():
        conn = existing.get(name)
        created = conn is None
        if created:
            conn = Connection(tenant_id=tenant.id, name=name, strategy=spec["strategy"], options={})
            db.add(conn)
            db.flush()
        elif conn.strategy != spec["strategy"]:
            raise ConfigError(
                f"connections: {name} exists with strategy {conn.strategy}; "
                "a strategy cannot change"
            )
        changed = _set(conn, "options", seal_options(spec["options"], conn.options, ring))
        changed |= _set(conn, "display_name", spec.get("display_name"))
        wanted = {clients[n].id for n in spec["enabled_clients"]}
        if wanted != conn.enabled_client_ids:
            conn.enabled = [
                ConnectionClient(connection_id=conn.id, client_pk=pk) for pk in sorted(wanted)
            ]
            changed = True
        _track(report, f"connection {name}", created, changed and not created)
        if get_strategy(spec["strategy"]) is None:
            report.notes.append(
                f"connection {name}: strategy {spec['strategy']} is stored but "
                "not available yet (not shown on login pages)"
            )
        result[name] = conn
    for name, conn in existing.items():
        if name not in specs and allow_delete:
            db.delete(conn)
            report.deleted.append(f"connection {name}")
    db.flush()
    return result


def _apply_users(db, tenant, connections, specs, report) -> None:
    for spec in specs:
        conn = connections[spec["connection"]]
        credential = accounts.find_credential(db, conn, spec["email"])
        label = f"user {spec['email']} ({conn.name})"
        if credential is None:
            data = accounts.SignupData(
                email=spec["email"],
                username=spec.get("username"),
                password_hash=passwords.hash_password(spec["password"]),
                **{
                    k: spec[k]
                    for k in USER_FIELDS
                    if k in spec and k in accounts.SignupData.__dataclass_fields__
                },
            )
            user = accounts.create_database_user(db, tenant, conn, data)
            if spec.get("phone_number"):
                user.phone_number = spec["phone_number"]
            report.created.append(label)
            continue
        user = credential.identity.user
        changed = False
        for key in USER_FIELDS:
            if key in spec:
                changed |= _set(user, key, spec[key])
        if not passwords.verify_password(credential.password_hash, spec["password"]):
            credential.password_hash = passwords.hash_password(spec["password"])
            changed = True
        _track(report, label, False, changed)


def import_file(
    app: Flask,
    path: Path,
    *,
    keywords_file: Path | None = None,
    allow_delete: bool = False,
    dry_run: bool = False,
    environ: dict[str, str] | None = None,
) -> Report:
    text = Path(path).read_text()
    return import_text(
        app,
        text,
        keywords=keyword_values(keywords_file, environ),
        allow_delete=allow_delete,
        dry_run=dry_run,
    )


def import_text(
    app: Flask,
    text: str,
    *,
    keywords: dict[str, Any] | None = None,
    allow_delete: bool = False,
    dry_run: bool = False,
) -> Report:
    """Validate, then apply in one transaction (rolled back on any error or dry run)."""
    from login_site.vault import keyring

    doc = validate(parse(text, keywords or {}))
    report = Report(dry_run=dry_run)
    with app.app_context():
        ring = keyring()
        session = app.extensions["login_site.sessionmaker"]()
        try:
            apply(session, ring, doc, allow_delete=allow_delete, report=report)
            if dry_run:
                session.rollback()
            else:
                session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
    return report


# --- export -------------------------------------------------------------------------------


def _placeholder(*parts: str) -> str:
    name = "_".join(re.sub(r"[^A-Za-z0-9]+", "_", p).strip("_").upper() for p in parts)
    return f"##{name}##"


def export_dict(
    db: Session,
    ring: Keyring,
    tenant: Tenant,
    *,
    export_secrets: bool = False,
    export_ids: bool = False,
) -> dict[str, Any]:
    clients = list(
        db.execute(
            select(Client).where(Client.tenant_id == tenant.id).order_by(Client.name)
        ).scalars()
    )
    by_pk = {c.id: c for c in clients}
    out: dict[str, Any] = {
        "tenant": {
            "name": tenant.name,
            "friendly_name": tenant.friendly_name,
            "hosts": sorted(h.host for h in tenant.hosts),
            **{k: v for k, v in (tenant.settings or {}).items() if k not in SERVER_ONLY_SETTINGS},
        }
    }
    out["clients"] = []
    for client in clients:
        item: dict[str, Any] = {"name": client.name, "app_type": client.app_type}
        if export_ids:
            item["client_id"] = client.client_id
        if client.client_secret_enc:
            item["client_secret"] = (
                ring.decrypt(client.client_secret_enc)
                if export_secrets
                else _placeholder(client.name, "client_secret")
            )
        item["token_endpoint_auth_method"] = client.token_endpoint_auth_method
        item["is_first_party"] = client.is_first_party
        if client.description:
            item["description"] = client.description
        for key in CLIENT_LIST_FIELDS:
            if getattr(client, key):
                item[key] = list(getattr(client, key))
        item.update(client.extra or {})
        out["clients"].append(item)
    conns = list(
        db.execute(
            select(Connection).where(Connection.tenant_id == tenant.id).order_by(Connection.name)
        ).scalars()
    )
    out["databases"], out["connections"] = [], []
    for conn in conns:
        options = reveal_options(conn.options or {})
        if not export_secrets:
            for key in SECRET_OPTIONS:
                if options.get(key):
                    options[key] = _placeholder(conn.name, key)
            if isinstance(options.get("custom_database"), dict) and options["custom_database"].get(
                "url"
            ):  # the external database URL carries its password
                options["custom_database"] = {
                    **options["custom_database"],
                    "url": _placeholder(conn.name, "custom_database_url"),
                }
        item = {"name": conn.name}
        if conn.strategy != "auth0":
            item["strategy"] = conn.strategy
        if conn.display_name:
            item["display_name"] = conn.display_name
        item["enabled_clients"] = sorted(
            by_pk[pk].name for pk in conn.enabled_client_ids if pk in by_pk
        )
        item["options"] = options
        (out["databases"] if conn.strategy == "auth0" else out["connections"]).append(item)
    out["resourceServers"] = [
        {
            "name": api.name,
            "identifier": api.identifier,
            "scopes": api.scopes,
            "token_lifetime": api.token_lifetime,
            "allow_offline_access": api.allow_offline_access,
            "signing_alg": api.signing_alg,
        }
        for api in db.execute(
            select(ResourceServer)
            .where(ResourceServer.tenant_id == tenant.id)
            .order_by(ResourceServer.identifier)
        ).scalars()
    ]
    out["clientGrants"] = [
        {"client_id": by_pk[g.client_pk].name, "audience": g.audience, "scope": g.scope}
        for g in db.execute(
            select(ClientGrant)
            .where(ClientGrant.tenant_id == tenant.id)
            .order_by(ClientGrant.audience)
        ).scalars()
        if g.client_pk in by_pk
    ]
    conn_names = {c.id: c.name for c in conns}
    users = []
    rows = db.execute(
        select(DatabaseCredential, User)
        .join(Identity, Identity.id == DatabaseCredential.identity_id)
        .join(User, User.id == Identity.user_pk)
        .where(User.tenant_id == tenant.id)
        .order_by(User.email)
    ).all()
    for credential, user in rows:
        item = {"email": user.email, "connection": conn_names[credential.connection_id]}
        if user.username:
            item["username"] = user.username
        for key in USER_FIELDS:
            value = getattr(user, key)
            if value not in (None, {}, False) or key == "email_verified":
                item[key] = value
        users.append(item)
    out["users"] = users
    return out


def export_yaml(
    app: Flask, tenant_name: str | None, *, export_secrets: bool = False, export_ids: bool = False
) -> str:
    from login_site.vault import keyring

    with app.app_context(), session_scope(app) as db:
        if tenant_name:
            tenant = db.execute(
                select(Tenant).where(Tenant.name == tenant_name)
            ).scalar_one_or_none()
            if tenant is None:
                raise ConfigError(f"no tenant named {tenant_name}")
        else:
            tenants = list(db.execute(select(Tenant)).scalars())
            if len(tenants) != 1:
                raise ConfigError("several tenants: choose one with --tenant")
            tenant = tenants[0]
        data = export_dict(
            db, keyring(), tenant, export_secrets=export_secrets, export_ids=export_ids
        )
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
