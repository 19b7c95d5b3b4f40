"""Data layer on SQLite and PostgreSQL: migrations match the models, secrets at rest."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from login_site import migrate
from login_site.db import Base
from login_site.models import Client
from login_site.models import SigningKey
from login_site.models import Tenant
from tests.conftest import WEB_SECRET


def test_migrations_head_matches_the_models(backend, app):
    engine = app.extensions["login_site.engine"]
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_downgrade_and_upgrade_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url)
    migrate.downgrade(url, "base")
    engine = sa.create_engine(url)
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(url)
    assert "users" in sa.inspect(engine).get_table_names()
    engine.dispose()


def test_client_secret_is_encrypted_at_rest(backend, app, db):
    raw = db.execute(sa.select(Client.client_secret_enc).where(Client.client_id == "web")).scalar()
    assert raw and WEB_SECRET not in raw
    with app.app_context():
        from login_site.vault import keyring

        assert keyring().decrypt(raw) == WEB_SECRET


def test_signing_keys_are_encrypted_at_rest(backend, db):
    key = db.scalars(sa.select(SigningKey)).first()
    assert "PRIVATE KEY" not in key.private_pem_enc
    assert set(key.public_jwk) == {"kty", "n", "e"}


def test_tenant_rows_are_isolated_by_tenant_id(backend, db):
    tenants = {t.name: t.id for t in db.scalars(sa.select(Tenant))}
    t1_clients = db.scalars(sa.select(Client.client_id).where(Client.tenant_id == tenants["t1"]))
    assert "t2web" not in set(t1_clients)


def test_keyring_rotation_keeps_old_values_readable():
    from cryptography.fernet import Fernet

    from login_site.vault import Keyring

    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = Keyring([old_key]).encrypt("s3cret")
    ring = Keyring([new_key, old_key])
    assert ring.decrypt(token) == "s3cret"
    rotated = ring.rotate(token)
    assert Keyring([new_key]).decrypt(rotated) == "s3cret"
