"""Dashboard: Import/Export of the selected tenant as a tenant configuration file
(``shared/compat/tenant-config.md``), through :mod:`login_site.tenant_config`.

Export is ``login-site export``: secrets become ``##…##`` placeholders. Import takes a file,
shows what it would create, change and delete (a dry run of the real import, rolled back),
and applies it only on a confirming POST, in one transaction. Between the two, the file
travels encrypted with the keyring in the confirm form (size-capped, bound to the admin and
the tenant, expiring), not in process memory. If the tenant changed meanwhile, the confirm
shows the new preview instead of applying.

A placeholder left as exported keeps the value it stands for; the dashboard reads no
environment variables, so any other ``##NAME##`` is an error. Users listed without a
password (as exported) are kept as they are.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from flask import Response
from flask import current_app
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_babel import gettext as _
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from login_site import accounts
from login_site import tenant_config
from login_site.dashboard.auth import acting
from login_site.dashboard.auth import is_admin_tenant
from login_site.dashboard.auth import require_admin
from login_site.dashboard.views import bp
from login_site.dashboard.views import record
from login_site.i18n import N_
from login_site.models import Tenant
from login_site.tenant_config import ConfigError
from login_site.vault import Keyring
from login_site.vault import keyring

MAX_IMPORT_BYTES = 192 * 1024
# Compressed, base64, encrypted, base64: at most 4/3 * 4/3 of the file (YAML compresses well),
# under the 500 000 bytes Flask allows a form field.
MAX_DRAFT_CHARS = 480_000
DRAFT_TTL_SECONDS = 1800
MAX_SHOWN_CHARS = 160
HIDDEN_VALUE = "••••••"

# Sections of the file, how an object in each is named, and the preview's heading.
SECTIONS: tuple[tuple[str, Callable[[dict], str] | None, str], ...] = (
    ("tenant", None, N_("Tenant")),
    ("clients", lambda o: str(o.get("name")), N_("Applications")),
    ("resourceServers", lambda o: str(o.get("identifier")), N_("APIs")),
    ("clientGrants", lambda o: f"{o.get('client_id')} → {o.get('audience')}", N_("Client grants")),
    ("databases", lambda o: str(o.get("name")), N_("Database connections")),
    ("connections", lambda o: str(o.get("name")), N_("Other connections")),
    ("users", lambda o: f"{o.get('email')} ({o.get('connection')})", N_("Users")),
)
Path = tuple[str, ...]


# --- the preview ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: str
    after: str


@dataclass(frozen=True)
class ObjectChange:
    section: str
    key: str
    kind: str  # created | changed | deleted
    fields: tuple[FieldChange, ...] = ()


@dataclass(frozen=True)
class Preview:
    """What an import does to the tenant. ``digest`` names exactly this outcome."""

    changes: tuple[ObjectChange, ...]
    notes: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()  # users listed without a password: left as they are
    digest: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    def sections(self) -> list[tuple[str, list[ObjectChange]]]:
        """(heading, changes) per section with changes, in file order."""
        out = []
        for section, _name_of, title in SECTIONS:
            items = [c for c in self.changes if c.section == section]
            if items:
                out.append((title, items))
        return out

    @property
    def changed(self) -> bool:
        return bool(self.changes)


class StalePreview(Exception):
    """The tenant changed between preview and confirm: nothing applied; here is the new one."""

    def __init__(self, preview: Preview):
        super().__init__("stale preview")
        self.preview = preview


def _objects(doc: dict[str, Any]) -> dict[tuple[str, str], dict]:
    """``(section, name) -> object`` for every object of an export-shaped document."""
    out: dict[tuple[str, str], dict] = {}
    for section, name_of, _title in SECTIONS:
        if name_of is None:
            out[(section, section)] = doc.get(section) or {}
            continue
        for item in doc.get(section) or []:
            if isinstance(item, dict):
                out[(section, name_of(item))] = item
    return out


def _placeholders(value: Any, path: Path = ()) -> dict[Path, str]:
    """Paths inside one object whose value is an export placeholder ``##NAME##``."""
    if isinstance(value, dict):
        found: dict[Path, str] = {}
        for key, inner in value.items():
            found.update(_placeholders(inner, (*path, str(key))))
        return found
    if isinstance(value, str) and tenant_config.HASH_KEYWORD.fullmatch(value):
        return {path: value}
    return {}


def _at(obj: Any, path: Path) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _put(obj: dict, path: Path, value: Any) -> None:
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"


def _field_changes(before: Any, after: Any, secret: set[Path], path: Path = ()) -> list:
    if isinstance(before, dict) and isinstance(after, dict) and path not in secret:
        out = []
        for key in sorted(set(before) | set(after), key=str):
            out += _field_changes(before.get(key), after.get(key), secret, (*path, str(key)))
        return out
    if before == after:
        return []
    if path in secret:
        return [FieldChange(".".join(path), HIDDEN_VALUE, _("changed"))]
    missing = _("(none)")
    return [
        FieldChange(
            ".".join(path),
            missing if before is None else _shown(before),
            missing if after is None else _shown(after),
        )
    ]


def diff(
    before: dict, after: dict, secret_paths: dict[tuple[str, str], set[Path]]
) -> list[ObjectChange]:
    """Created, changed and deleted objects between two full exports; secret values are
    compared but never shown."""
    old, new = _objects(before), _objects(after)
    changes = []
    for section, _name_of, _title in SECTIONS:
        keys = [k for k in old if k[0] == section] + [
            k for k in new if k[0] == section and k not in old
        ]
        for key in keys:
            if key not in new:
                changes.append(ObjectChange(section, key[1], "deleted"))
            elif key not in old:
                changes.append(ObjectChange(section, key[1], "created"))
            else:
                fields = _field_changes(old[key], new[key], secret_paths.get(key, set()))
                if fields:
                    changes.append(ObjectChange(section, key[1], "changed", tuple(fields)))
    return changes


# --- reading the file -----------------------------------------------------------------------


def read_upload(data: bytes) -> str:
    if len(data) > MAX_IMPORT_BYTES:
        raise ConfigError(_("The file is larger than %(kb)d KB.", kb=MAX_IMPORT_BYTES // 1024))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(_("The file is not UTF-8 text.")) from exc
    if not text.strip():
        raise ConfigError(_("Choose a file, or paste its content."))
    return text


def _document(
    text: str, tenant: Tenant, plain: dict, full: dict
) -> tuple[dict[str, Any], list[str]]:
    """The validated document to import into ``tenant``, and the users kept as they are.
    Placeholders exported for this tenant's secrets get those secrets back."""
    literal = {name: f"##{name}##" for name in tenant_config.HASH_KEYWORD.findall(text)}
    raw = tenant_config.parse(text, literal)
    named = (raw.get("tenant") or {}).get("name") if isinstance(raw.get("tenant"), dict) else None
    if named != tenant.name:
        raise ConfigError(
            _(
                "This file describes tenant %(named)s, and you are working on %(tenant)s. "
                "Switch tenant, or change tenant.name in the file.",
                named=repr(named),
                tenant=tenant.name,
            )
        )
    current = _objects(full)
    for key, slots in ((k, _placeholders(v)) for k, v in _objects(plain).items()):
        wanted = _objects(raw).get(key)
        for path, placeholder in slots.items():
            if wanted is not None and _at(wanted, path) == placeholder:
                _put(wanted, path, _at(current[key], path))
    kept = []
    if isinstance(raw.get("users"), list):
        existing = {
            (str(u.get("connection")), accounts.normalise_email(str(u.get("email"))))
            for u in full.get("users") or []
        }
        listed = []
        for user in raw["users"]:
            if (
                isinstance(user, dict)
                and "password" not in user
                and isinstance(user.get("email"), str)
                and (str(user.get("connection")), accounts.normalise_email(user["email"]))
                in existing
            ):
                kept.append(f"{user['email']} ({user.get('connection')})")
            else:
                listed.append(user)
        raw["users"] = listed
    leftover = tenant_config.HASH_KEYWORD.search(json.dumps(raw, default=str))
    if leftover:
        raise ConfigError(
            _(
                "##%(name)s## has no value. Write the value itself in the file: the dashboard "
                "reads no keywords or environment variables, and keeps only the placeholders "
                "it exported for this tenant's own secrets.",
                name=leftover.group(1),
            )
        )
    return tenant_config.validate(raw), kept


def _outcome(db: Session, ring: Keyring, tenant_id: str, text: str, allow_delete: bool) -> Preview:
    """Import into the caller's transaction and describe what changed (not committed)."""
    tenant = db.get(Tenant, tenant_id)
    if tenant is None:
        raise ConfigError(_("The tenant no longer exists."))
    if is_admin_tenant(tenant):
        raise ConfigError(
            _("The admin tenant is not imported from the dashboard (use login-site import).")
        )
    plain = tenant_config.export_dict(db, ring, tenant)
    full = tenant_config.export_dict(db, ring, tenant, export_secrets=True)
    doc, kept = _document(text, tenant, plain, full)
    report = tenant_config.apply(db, ring, doc, allow_delete=allow_delete)
    db.flush()
    db.expire_all()
    tenant = db.get(Tenant, tenant_id)
    plain_after = tenant_config.export_dict(db, ring, tenant)
    full_after = tenant_config.export_dict(db, ring, tenant, export_secrets=True)
    secret_paths: dict[tuple[str, str], set[Path]] = {}
    for document in (plain, plain_after):
        for key, obj in _objects(document).items():
            secret_paths.setdefault(key, set()).update(_placeholders(obj))
    changes = diff(full, full_after, secret_paths)
    # Passwords are not exported: a seed user whose password changed shows here.
    shown = {(c.section, c.key) for c in changes}
    for label in report.updated:
        key = label.removeprefix("user ")
        if label.startswith("user ") and ("users", key) not in shown:
            changes.append(
                ObjectChange(
                    "users", key, "changed", (FieldChange("password", HIDDEN_VALUE, _("changed")),)
                )
            )
    counts = {
        kind: sum(c.kind == kind for c in changes) for kind in ("created", "changed", "deleted")
    }
    summary = json.dumps(
        [[asdict(c) for c in changes], report.notes, kept], sort_keys=True, default=str
    )
    return Preview(
        changes=tuple(changes),
        notes=tuple(report.notes),
        kept=tuple(kept),
        digest=hashlib.sha256(summary.encode()).hexdigest(),
        counts=counts,
    )


IMPORT_FAILED = N_("The file could not be imported (%(reason)s). Nothing was changed.")


def _readable(exc: Exception) -> ConfigError:
    if isinstance(exc, ConfigError):
        return exc
    return ConfigError(_(IMPORT_FAILED, reason=type(exc).__name__))


def preview(
    session: Session, ring: Keyring, tenant_id: str, text: str, allow_delete: bool
) -> Preview:
    """A dry run: the real import in ``session``, rolled back. :class:`ConfigError` with a
    readable message for any problem in the file."""
    try:
        return _outcome(session, ring, tenant_id, text, allow_delete)
    except (ValueError, TypeError, KeyError, AttributeError, SQLAlchemyError) as exc:
        raise _readable(exc) from exc
    finally:
        session.rollback()


def apply_import(
    session: Session, ring: Keyring, tenant_id: str, text: str, allow_delete: bool, digest: str
) -> Preview:
    """The import, committed in one transaction, if it still does what the preview with
    ``digest`` showed; else :class:`StalePreview` and nothing written."""
    try:
        outcome = _outcome(session, ring, tenant_id, text, allow_delete)
        if outcome.digest != digest:
            session.rollback()
            raise StalePreview(outcome)
        session.commit()
        return outcome
    except (ValueError, TypeError, KeyError, AttributeError, SQLAlchemyError) as exc:
        session.rollback()
        raise _readable(exc) from exc


# --- the draft between preview and confirm --------------------------------------------------


@dataclass(frozen=True)
class Draft:
    tenant_id: str
    actor: str
    text: str
    allow_delete: bool
    digest: str
    created: int


def seal(ring: Keyring, draft: Draft) -> str:
    packed = zlib.compress(json.dumps(asdict(draft)).encode())
    return ring.encrypt(base64.urlsafe_b64encode(packed).decode("ascii"))


def unseal(
    ring: Keyring, token: str | None, tenant_id: str, actor: str, now: float | None = None
) -> Draft | None:
    """The draft if it is ours, for this admin and tenant, and recent; else ``None``."""
    if not token or len(token) > MAX_DRAFT_CHARS:
        return None
    try:
        packed = base64.urlsafe_b64decode(ring.decrypt(token).encode("ascii"))
        draft = Draft(**json.loads(zlib.decompress(packed, bufsize=MAX_IMPORT_BYTES)))
    except (ValueError, TypeError, zlib.error):
        return None
    age = (now or time.time()) - draft.created
    if draft.tenant_id != tenant_id or draft.actor != actor or not 0 <= age <= DRAFT_TTL_SECONDS:
        return None
    return draft


# --- views ----------------------------------------------------------------------------------


def _new_session() -> Session:
    """A session of its own: the dry run is rolled back without touching the request's."""
    return current_app.extensions["login_site.sessionmaker"]()


def _page(status: int = 200, **context):
    return render_template("dashboard/transfer/index.html", **context), status


@bp.get("/export")
@require_admin
def export():
    return _page()


@bp.get("/export/download")
@require_admin
def export_download():
    tenant = acting().tenant
    text = tenant_config.export_yaml(current_app._get_current_object(), tenant.name)
    record("dashboard.tenant_exported", target=f"tenant:{tenant.name}")
    return Response(
        text,
        mimetype="application/yaml",
        headers={
            "Content-Disposition": f'attachment; filename="{tenant.name}.yaml"',
            "Cache-Control": "no-store",
        },
    )


def _uploaded_text() -> str:
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        return read_upload(upload.stream.read(MAX_IMPORT_BYTES + 1))
    return read_upload(request.form.get("yaml", "").encode("utf-8"))


@bp.post("/import")
@require_admin
def import_preview():
    who = acting()
    allow_delete = request.form.get("allow_delete") == "on"
    session = _new_session()
    try:
        text = _uploaded_text()
        outcome = preview(session, keyring(), who.tenant.id, text, allow_delete)
    except ConfigError as exc:
        pasted = request.form.get("yaml", "")[:MAX_IMPORT_BYTES]
        return _page(400, error=str(exc), allow_delete=allow_delete, pasted=pasted)
    finally:
        session.close()
    return _preview_page(who, text, allow_delete, outcome)


def _preview_page(who, text: str, allow_delete: bool, outcome: Preview, status: int = 200):
    draft = Draft(
        tenant_id=who.tenant.id,
        actor=who.actor,
        text=text,
        allow_delete=allow_delete,
        digest=outcome.digest,
        created=int(time.time()),
    )
    body = render_template(
        "dashboard/transfer/preview.html",
        preview=outcome,
        allow_delete=allow_delete,
        draft=seal(keyring(), draft),
        stale=status == 409,
    )
    return body, status, {"Cache-Control": "no-store"}


@bp.post("/import/confirm")
@require_admin
def import_confirm():
    who = acting()
    draft = unseal(keyring(), request.form.get("draft"), who.tenant.id, who.actor)
    if draft is None:
        return _page(
            400,
            error=_(
                "This preview has expired or belongs to another tenant. Upload the file again."
            ),
        )
    session = _new_session()
    try:
        outcome = apply_import(
            session, keyring(), who.tenant.id, draft.text, draft.allow_delete, draft.digest
        )
    except StalePreview as stale:
        return _preview_page(who, draft.text, draft.allow_delete, stale.preview, 409)
    except ConfigError as exc:
        return _page(400, error=str(exc), allow_delete=draft.allow_delete)
    finally:
        session.close()
    record(
        "dashboard.tenant_imported",
        target=f"tenant:{who.tenant.name}",
        allow_delete=draft.allow_delete,
        **outcome.counts,
    )
    flash(
        _(
            "Imported: %(created)d created, %(changed)d changed, %(deleted)d deleted.",
            **outcome.counts,
        )
    )
    return redirect(url_for("dashboard.export"), code=303)
