"""'Use my own database': logins checked against a real second database (a SQLite file
or a PostgreSQL schema) holding legacy users, through the hosted login page."""

from __future__ import annotations

import json
import logging

import bcrypt
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.exc import DBAPIError

from login_site import accounts
from login_site import passwords
from login_site import tenant_config
from login_site.connections import custom_database
from login_site.models import Connection
from login_site.models import DatabaseCredential
from login_site.models import Identity
from login_site.models import Tenant
from login_site.models import User
from tests.conftest import PG_ADMIN_URL
from tests.conftest import query_of
from tests.conftest import start_login
from tests.conftest import submit_login
from tests.fixtures import legacy_users
from tests.fixtures.legacy_users import COLUMNS
from tests.fixtures.legacy_users import FORMATS
from tests.fixtures.legacy_users import TABLE
from tests.fixtures.legacy_users import USERS

HOST = "legacy.test"
CONNECTION = "legacy-db"
GENERIC_FAILURE = "Wrong email or password."

TENANT_YAML = """
tenant:
  name: legacy
  hosts: ["legacy.test"]
clients:
  - name: legacy-web
    client_id: legacy-web
    client_secret: "legacy-web-secret-0123456789abcdefghij"
    callbacks: ["https://app.test/cb"]
    grant_types: [authorization_code]
databases:
  - name: legacy-db
    enabled_clients: [legacy-web]
    options: @@OPTIONS@@
"""

# The example of docs/: lazy migration from a SQLite file.
DOCS_EXAMPLE = """
tenant:
  name: legacy
  hosts: ["legacy.test"]
clients:
  - name: legacy-web
    client_id: legacy-web
    client_secret: "legacy-web-secret-0123456789abcdefghij"
    callbacks: ["https://app.test/cb"]
    grant_types: [authorization_code]
databases:
  - name: legacy-db
    enabled_clients: [legacy-web]
    options:
      enabledDatabaseCustomization: true
      import_mode: true              # copy users on their first login (lazy migration)
      custom_database:
        url: "##LEGACY_DB_URL##"    # a SQLAlchemy URL; its password stays out of logs
        table: legacy_users
        columns:
          id: uid
          email: mail
          username: login
          password_hash: pw
          email_verified: verified
          name: full_name
          given_name: first_name
          family_name: last_name
        hash_scheme: auto            # bcrypt | argon2 | pbkdf2-sha256 | auto
"""


def options(legacy, *, import_mode: bool = True, **custom) -> dict:
    settings = {"url": legacy.url, "table": TABLE, "columns": COLUMNS, "hash_scheme": "auto"}
    if legacy.schema:
        settings["schema"] = legacy.schema
    settings.update(custom)
    return {
        "enabledDatabaseCustomization": True,
        "import_mode": import_mode,
        "custom_database": settings,
    }


def configure(app, opts: dict) -> None:
    tenant_config.import_text(app, TENANT_YAML, keywords={"OPTIONS": opts})


class Legacy:
    def __init__(self, url, engine, schema):
        self.url, self.engine, self.schema = url, engine, schema

    def delete(self, uid: int) -> None:
        legacy_users.run(self.engine, self.schema, lambda t: t.delete().where(t.c.uid == uid))

    def update(self, uid: int, **values) -> None:
        legacy_users.run(
            self.engine, self.schema, lambda t: t.update().where(t.c.uid == uid).values(**values)
        )

    def count(self) -> int:
        table = sa.table(TABLE, sa.column("uid"), schema=self.schema)
        with self.engine.connect() as conn:
            return conn.scalar(sa.select(sa.func.count()).select_from(table))


@pytest.fixture(params=["sqlite", "postgresql"])
def legacy(request, tmp_path):
    if request.param == "sqlite":
        source = legacy_users.sqlite_legacy(tmp_path)
    else:
        source = legacy_users.postgres_legacy(PG_ADMIN_URL)
    with source as (url, engine, schema):
        yield Legacy(url, engine, schema)


@pytest.fixture
def sqlite_legacy(tmp_path):
    with legacy_users.sqlite_legacy(tmp_path) as (url, engine, schema):
        yield Legacy(url, engine, schema)


@pytest.fixture
def legacy_app(app, legacy):
    configure(app, options(legacy))
    yield app
    custom_database.dispose_engines(app)


@pytest.fixture
def sqlite_app(app, sqlite_legacy):
    configure(app, options(sqlite_legacy))
    yield app
    custom_database.dispose_engines(app)


def login(app, identifier: str, password: str):
    """One hosted login from a fresh browser (no SSO session)."""
    browser = app.test_client()
    page, state = start_login(browser, HOST, client_id="legacy-web")
    return submit_login(
        browser, page, state, identifier, password, host=HOST, connection=CONNECTION
    )


def assert_logged_in(response) -> None:
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    assert "code" in query_of(response.headers["Location"])


def assert_generic_failure(response) -> None:
    assert response.status_code == 400
    assert GENERIC_FAILURE in response.get_data(as_text=True)
    assert "Location" not in response.headers


def local(app, email: str):
    """(credential, identity, user) of the legacy connection for ``email``, or ``None``."""
    with app.extensions["login_site.sessionmaker"]() as session:
        row = session.execute(
            sa.select(DatabaseCredential, Identity, User)
            .join(Identity, Identity.id == DatabaseCredential.identity_id)
            .join(User, User.id == Identity.user_pk)
            .join(Connection, Connection.id == DatabaseCredential.connection_id)
            .where(
                Connection.name == CONNECTION,
                DatabaseCredential.email_key == accounts.normalise_email(email),
            )
        ).one_or_none()
        return tuple(row) if row else None


def legacy_users_here(app) -> int:
    with app.extensions["login_site.sessionmaker"]() as session:
        return session.scalar(
            sa.select(sa.func.count())
            .select_from(User)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(Tenant.name == "legacy")
        )


def password_matches(app, stored: str, password: str) -> bool:
    with app.app_context():
        return passwords.verify_password(stored, password)


# --- lazy migration ---------------------------------------------------------------------------


@pytest.mark.parametrize("username", sorted(FORMATS))
def test_first_login_imports_the_user_with_an_argon2id_rehash(legacy_app, legacy, username):
    user = USERS[username]
    assert local(legacy_app, user.email) is None

    assert_logged_in(login(legacy_app, user.email, user.password))

    credential, identity, imported = local(legacy_app, user.email)
    assert credential.password_hash.startswith("$argon2id$")
    assert credential.password_hash != user.hash
    assert password_matches(legacy_app, credential.password_hash, user.password)
    assert identity.profile_data == {"legacy_id": str(user.uid), "custom_database": "imported"}
    assert imported.email == user.email.lower()
    assert imported.email_verified is user.verified
    assert imported.username == user.username

    # The external row is gone: the second login can only have used our copy.
    legacy.delete(user.uid)
    assert_logged_in(login(legacy_app, user.email, user.password))
    assert legacy_users_here(legacy_app) == 1


def test_profile_fields_are_copied_on_import(sqlite_app):
    user = USERS["bcrypt_user"]
    assert_logged_in(login(sqlite_app, user.email, user.password))
    _, _, imported = local(sqlite_app, user.email)
    assert (imported.name, imported.given_name, imported.family_name) == (
        "Bea Crypt",
        "Bea",
        "Crypt",
    )
    assert imported.user_id.startswith("auth0|")


def test_imported_user_logs_in_while_the_external_database_is_unreachable(
    legacy_app, legacy, tmp_path
):
    user = USERS["argon2id_user"]
    assert_logged_in(login(legacy_app, user.email, user.password))
    missing = tmp_path / "gone" / "legacy.db"
    configure(legacy_app, options(legacy, url=f"sqlite:///{missing}"))

    assert_logged_in(login(legacy_app, user.email, user.password))
    assert_generic_failure(login(legacy_app, user.email, "not-the-password"))
    assert not missing.exists()


def test_login_by_username_imports_the_user(sqlite_app):
    user = USERS["werkzeug_user"]
    assert_logged_in(login(sqlite_app, user.username, user.password))
    assert local(sqlite_app, user.email) is not None
    assert_logged_in(login(sqlite_app, user.username, user.password))
    assert legacy_users_here(sqlite_app) == 1


def test_email_matching_ignores_case(sqlite_app):
    mixed = USERS["mixed_user"]
    assert_logged_in(login(sqlite_app, "mixed.case@legacy.test", mixed.password))
    assert local(sqlite_app, mixed.email) is not None
    bea = USERS["bcrypt_user"]
    assert_logged_in(login(sqlite_app, bea.email.upper(), bea.password))


# --- safe rejections ------------------------------------------------------------------------


def test_wrong_password_fails_generically_and_imports_nothing(legacy_app):
    user = USERS["bcrypt_user"]
    assert_generic_failure(login(legacy_app, user.email, "Bcrypt-pass-2"))
    assert_generic_failure(login(legacy_app, user.username, ""))
    assert local(legacy_app, user.email) is None
    assert legacy_users_here(legacy_app) == 0


def test_unknown_user_fails_generically(legacy_app):
    assert_generic_failure(login(legacy_app, "nobody@legacy.test", "Whatever-pass-1"))
    assert_generic_failure(login(legacy_app, "nobody", "Whatever-pass-1"))
    assert legacy_users_here(legacy_app) == 0


@pytest.mark.parametrize(
    "identifier",
    [
        "' OR '1'='1",
        "x@legacy.test' OR '1'='1' --",
        "bcrypt@legacy.test' --",
        "%@legacy.test",
        "bcrypt_user'; DROP TABLE legacy_users; --",
        'bcrypt_user" OR ""="',
    ],
)
def test_sql_injection_in_the_identifier_matches_nobody(legacy_app, legacy, identifier):
    assert_generic_failure(login(legacy_app, identifier, USERS["bcrypt_user"].password))
    assert legacy_users_here(legacy_app) == 0
    assert legacy.count() == len(USERS)


def test_unknown_hash_format_fails_without_error(sqlite_app):
    user = USERS["md5_user"]
    assert_generic_failure(login(sqlite_app, user.email, user.password))
    assert local(sqlite_app, user.email) is None


def test_configured_hash_scheme_refuses_other_formats(app, sqlite_legacy):
    configure(app, options(sqlite_legacy, hash_scheme="bcrypt"))
    try:
        argon = USERS["argon2id_user"]
        assert_generic_failure(login(app, argon.email, argon.password))
        assert local(app, argon.email) is None
        bea = USERS["bcrypt_user"]
        assert_logged_in(login(app, bea.email, bea.password))
    finally:
        custom_database.dispose_engines(app)


def test_unreachable_external_database_fails_generically_and_logs_no_secret(app, tmp_path, caplog):
    user = USERS["bcrypt_user"]
    caplog.set_level(logging.INFO)
    missing = tmp_path / "missing.db"
    for url in (
        "postgresql://legacy:S3cret-legacy-pw@127.0.0.1:1/legacy",
        f"sqlite:///{missing}",
    ):
        custom = {"url": url, "table": TABLE, "columns": COLUMNS}
        configure(app, {"enabledDatabaseCustomization": True, "custom_database": custom})
        assert_generic_failure(login(app, user.email, user.password))
    custom_database.dispose_engines(app)
    assert not missing.exists()
    assert "S3cret-legacy-pw" not in caplog.text
    errors = [
        json.loads(r.getMessage())
        for r in caplog.records
        if r.name == "login_site.events" and '"custom_database"' in r.getMessage()
    ]
    assert [e["outcome"] for e in errors] == ["error", "error"]
    assert legacy_users_here(app) == 0


def test_an_email_reassigned_externally_never_opens_the_other_account(app, sqlite_legacy):
    configure(app, options(sqlite_legacy, import_mode=False))
    try:
        bea, other = USERS["bcrypt_user"], USERS["php_user"]
        assert_logged_in(login(app, bea.email, bea.password))
        # In the external database, Bea's address now belongs to another user.
        sqlite_legacy.update(bea.uid, mail="bea-moved@legacy.test")
        sqlite_legacy.update(other.uid, mail=bea.email)
        assert_generic_failure(login(app, bea.email, other.password))
        assert_generic_failure(login(app, bea.email, bea.password))
    finally:
        custom_database.dispose_engines(app)


def test_the_external_database_is_opened_read_only(legacy_app, legacy):
    with legacy_app.app_context():
        with legacy_app.extensions["login_site.sessionmaker"]() as session:
            conn = session.execute(
                sa.select(Connection).where(Connection.name == CONNECTION)
            ).scalar_one()
            engine = custom_database.engine_for(conn)
        table = sa.table(TABLE, sa.column("uid"), schema=legacy.schema)
        with pytest.raises(DBAPIError), engine.begin() as external:
            external.execute(table.delete())
    assert legacy.count() == len(USERS)


def test_knows_tells_whether_the_external_database_holds_an_address(sqlite_app):
    with sqlite_app.app_context(), sqlite_app.extensions["login_site.sessionmaker"]() as session:
        conn = session.execute(
            sa.select(Connection).where(Connection.name == CONNECTION)
        ).scalar_one()
        assert custom_database.knows(conn, "BCRYPT@legacy.test")
        assert custom_database.knows(conn, "argon2i_user")
        assert not custom_database.knows(conn, "nobody@legacy.test")
        assert not custom_database.knows(conn, "' OR '1'='1")


# --- without import ---------------------------------------------------------------------------


def test_without_import_mode_nothing_is_copied_and_every_login_asks_the_external_database(
    app, legacy
):
    configure(app, options(legacy, import_mode=False))
    try:
        user = USERS["bcrypt_user"]
        assert_logged_in(login(app, user.email, user.password))
        credential, identity, kept = local(app, user.email)
        assert not password_matches(app, credential.password_hash, user.password)
        assert credential.password_hash != user.hash
        assert identity.profile_data == {"legacy_id": str(user.uid), "custom_database": "live"}
        assert kept.name == "Bea Crypt"

        # A password changed in the external database is the one that works.
        new_hash = bcrypt.hashpw(b"Changed-pass-1", bcrypt.gensalt(rounds=4)).decode()
        legacy.update(user.uid, pw=new_hash, full_name="Bea Changed")
        assert_generic_failure(login(app, user.email, user.password))
        assert_logged_in(login(app, user.email, "Changed-pass-1"))
        assert local(app, user.email)[2].name == "Bea Changed"
        assert legacy_users_here(app) == 1

        # Gone from the external database: gone for us.
        legacy.delete(user.uid)
        assert_generic_failure(login(app, user.email, "Changed-pass-1"))
    finally:
        custom_database.dispose_engines(app)


def test_turning_import_on_migrates_users_kept_without_import(app, sqlite_legacy):
    try:
        configure(app, options(sqlite_legacy, import_mode=False))
        user = USERS["passlib_user"]
        assert_logged_in(login(app, user.email, user.password))
        configure(app, options(sqlite_legacy, import_mode=True))
        assert_logged_in(login(app, user.email, user.password))
        credential, identity, _ = local(app, user.email)
        assert password_matches(app, credential.password_hash, user.password)
        assert identity.profile_data["custom_database"] == "imported"
        sqlite_legacy.delete(user.uid)
        assert_logged_in(login(app, user.email, user.password))
        assert legacy_users_here(app) == 1
    finally:
        custom_database.dispose_engines(app)


def test_the_documented_yaml_example_imports_and_logs_in(app, sqlite_legacy):
    tenant_config.import_text(app, DOCS_EXAMPLE, keywords={"LEGACY_DB_URL": sqlite_legacy.url})
    try:
        user = USERS["argon2i_user"]
        assert_logged_in(login(app, user.email, user.password))
        assert local(app, user.email) is not None
    finally:
        custom_database.dispose_engines(app)


# --- options --------------------------------------------------------------------------------

_VALID = {
    "url": "sqlite:///legacy.db",
    "table": "legacy_users",
    "columns": {"id": "uid", "email": "mail", "password_hash": "pw"},
}


def _custom(**changes) -> dict:
    settings = {**_VALID, **changes}
    return {
        "enabledDatabaseCustomization": True,
        "custom_database": {k: v for k, v in settings.items() if v is not None},
    }


@pytest.mark.parametrize(
    "opts,key",
    [
        (_custom(table="users; DROP TABLE users"), "options.custom_database.table"),
        (_custom(table=None), "options.custom_database.table"),
        (_custom(table='legacy"users'), "options.custom_database.table"),
        (_custom(schema="public.other"), "options.custom_database.schema"),
        (
            _custom(columns={"id": "uid", "email": "mail--", "password_hash": "pw"}),
            "options.custom_database.columns.email",
        ),
        (
            _custom(columns={"id": "uid", "email": "mail"}),
            "options.custom_database.columns.password_hash",
        ),
        (
            _custom(columns={**_VALID["columns"], "passwd": "pw"}),
            "options.custom_database.columns.passwd",
        ),
        (_custom(columns="uid,mail,pw"), "options.custom_database.columns"),
        (_custom(hash_scheme="md5"), "options.custom_database.hash_scheme"),
        (_custom(url="not a url"), "options.custom_database.url"),
        (_custom(url=None), "options.custom_database.url"),
        (_custom(url="sqlite://"), "options.custom_database.url"),
        (_custom(query="SELECT 1"), "options.custom_database.query"),
        ({"enabledDatabaseCustomization": True}, "options.custom_database"),
        ({**_custom(), "import_mode": "yes"}, "options.import_mode"),
    ],
)
def test_invalid_options_are_rejected_naming_the_key(app, opts, key):
    with pytest.raises(tenant_config.ConfigError) as failure:
        configure(app, opts)
    message = str(failure.value)
    assert message.startswith(f"databases[0].{key}") and message[len(key) + 13] in ": "
    assert legacy_users_here(app) == 0
    with app.extensions["login_site.sessionmaker"]() as session:
        assert session.scalar(sa.select(Tenant).where(Tenant.name == "legacy")) is None


@pytest.mark.parametrize(
    "url",
    [
        "nosuchdb://admin:S3cret-pw@db.internal/users",
        "mysql+nosuchdriver://admin:S3cret-pw@db.internal/users",
        "oracle+oracledb://admin:S3cret-pw@db.internal/users",  # driver not installed
    ],
)
def test_an_invalid_url_is_described_without_its_password(app, url):
    with pytest.raises(tenant_config.ConfigError) as failure:
        configure(app, _custom(url=url))
    assert str(failure.value).startswith("databases[0].options.custom_database.url: ")
    assert "S3cret-pw" not in str(failure.value)


# --- legacy hash formats --------------------------------------------------------------------


@pytest.mark.parametrize("username", sorted(FORMATS))
def test_every_supported_legacy_format_verifies(username):
    user = USERS[username]
    assert custom_database.scheme_of(user.hash) == FORMATS[username]
    assert custom_database.verify_hash("auto", user.hash, user.password)
    assert custom_database.verify_hash(FORMATS[username], user.hash, user.password)
    assert not custom_database.verify_hash("auto", user.hash, user.password + "x")
    others = {"bcrypt", "argon2", "pbkdf2-sha256"} - {FORMATS[username]}
    for scheme in others:
        assert not custom_database.verify_hash(scheme, user.hash, user.password)


_BCRYPT = USERS["bcrypt_user"].hash
_ARGON2 = USERS["argon2id_user"].hash


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "5f4dcc3b5aa765d61d8327deb882cf99",
        "$2b$04$short",
        "$2b$xx$" + _BCRYPT[7:],
        "$2b$20$" + _BCRYPT[7:],  # a cost that would stall a worker
        _ARGON2.replace("m=8192", "m=4194304"),
        _ARGON2.replace("$argon2id$", "$argon2d$"),
        "$argon2id$v=19$m=8192,t=1,p=1$garbage",
        "pbkdf2:sha256:abc$salt$00",
        "pbkdf2:sha256:0$salt$00",
        "pbkdf2:sha256:999999999$salt$00",
        "pbkdf2:sha256$salt$00",
        "$pbkdf2-sha256$1212$!!!$???",
        "$pbkdf2-sha256$1212$4vjV83LKPjQzk31VI4E0Vw$c2hvcnQ",
        "$pbkdf2-sha256$$4vjV83LKPjQzk31VI4E0Vw$hsYF68OiOUPdDZ1Fg.fJPeq1h/gXXY7acBp9/6c.tmQ",
    ],
)
def test_malformed_or_unknown_hashes_never_verify(stored):
    for password in ("password", "Bcrypt-pass-1", "Argon-id-pass", ""):
        assert custom_database.verify_hash("auto", stored, password) is False


def test_bcrypt_checks_the_72_bytes_a_legacy_system_hashed():
    long_password = "Long-" + "x" * 95
    stored = bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    assert custom_database.verify_hash("bcrypt", stored, long_password)


def test_argon2_hashes_of_our_own_format_verify_as_legacy():
    stored = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("Ours-1")
    assert custom_database.verify_hash("argon2", stored, "Ours-1")
