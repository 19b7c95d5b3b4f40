"""Engine, a SQLAlchemy session per request, and the declarative base."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from datetime import datetime

from flask import Flask
from flask import current_app
from flask import g
from sqlalchemy import DateTime
from sqlalchemy import MetaData
from sqlalchemy import create_engine
from sqlalchemy import event
from sqlalchemy import exc
from sqlalchemy import types
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(types.TypeDecorator):
    """Stores UTC, always returns aware datetimes (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # As many connections as PostgreSQL's pool: a threaded server's parallel requests
        # (20 sign-ups at once in the race tests) must not queue for a connection.
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=10,
            max_overflow=20,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # Recycling retires connections before proxies drop idle ones.
    engine = create_engine(url, pool_recycle=1800, pool_size=10, max_overflow=20)
    _ping_idle_connections(engine)
    if engine.dialect.name == "postgresql":
        _begin_before_first_write(engine)
    return engine


# --- round trips (docs/architecture.md, Performance) ------------------------------------------

# A pooled connection idle for longer than this is pinged before use. SQLAlchemy's pre-ping
# would cost a round trip on every checkout; a connection in steady use needs none, and a
# database restart is noticed by the first failing statement, which invalidates the pool.
PING_AFTER_IDLE_SECONDS = 2.0
_CHECKED_IN_AT = "login_site.checked_in_at"


def _ping_idle_connections(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn, record) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn, record, _proxy) -> None:
        idle_since = record.info.get(_CHECKED_IN_AT)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as error:
            if not engine.dialect.is_disconnect(error, dbapi_conn, None):
                raise
            # The pool discards the connection and checks out a new one.
            raise exc.DisconnectionError("connection lost while idle") from error


# PostgreSQL: a session's connection runs in autocommit mode until the first statement that
# writes or locks, which turns autocommit off so that psycopg sends BEGIN just before it.
# A request that only reads then costs neither BEGIN nor ROLLBACK, and one that writes sends
# BEGIN right before its first write: under READ COMMITTED every statement takes its own
# snapshot anyway, and this is how pysqlite runs the SQLite default too. Only sessions
# (``after_begin``) switch a connection to this mode; it ends when the connection is returned.
_LAZY_BEGIN = "login_site.lazy_begin"
_LOCKING_READ = re.compile(r"\bFOR\s+(UPDATE|SHARE|NO\s+KEY\s+UPDATE|KEY\s+SHARE)\b", re.I)


def reads_only(statement: str) -> bool:
    """A plain SELECT: no DML, no CTE that could hide one, no row locks."""
    return statement.lstrip()[:6].upper() == "SELECT" and not _LOCKING_READ.search(statement)


def _begin_before_first_write(engine: Engine) -> None:
    @event.listens_for(engine, "before_cursor_execute")
    def _begin_if_writing(conn, _cursor, statement, _params, _context, _executemany) -> None:
        record = conn.connection._connection_record
        if record is not None and record.info.get(_LAZY_BEGIN) and not reads_only(statement):
            record.info[_LAZY_BEGIN] = False
            conn.connection.dbapi_connection.autocommit = False

    @event.listens_for(engine, "checkin")
    def _transactional_again(dbapi_conn, record) -> None:
        if record.info.pop(_LAZY_BEGIN, False) and not dbapi_conn.closed:
            dbapi_conn.autocommit = False


def _lazy_begin(_session: Session, transaction, connection) -> None:
    """``after_begin`` of every request session on PostgreSQL: nothing sent yet."""
    if transaction.nested or connection.dialect.name != "postgresql":
        return
    dbapi_conn = connection.connection.dbapi_connection
    record = connection.connection._connection_record
    if record is None or dbapi_conn.autocommit or dbapi_conn.info.transaction_status != 0:
        return  # 0: psycopg's TransactionStatus.IDLE, no transaction open
    dbapi_conn.autocommit = True
    record.info[_LAZY_BEGIN] = True


def returns_updated_rows(db: Session) -> bool:
    """``UPDATE ... RETURNING`` works here (PostgreSQL; SQLite 3.35 and later)."""
    return bool(db.get_bind().dialect.update_returning)


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["login_site.engine"] = engine
    maker = sessionmaker(engine, expire_on_commit=False)
    event.listen(maker, "after_begin", _lazy_begin)
    app.extensions["login_site.sessionmaker"] = maker
    app.teardown_appcontext(_close_session)


def core(db: Session) -> Connection:
    """The session's connection, for prebuilt Core statements on the hot paths (codes,
    tokens): pending ORM changes are flushed first, as ``db.execute`` would, and the statement
    then skips the ORM's execution layer (about 100 µs each). Not for the tables whose
    changes the caches watch (tenants, clients, APIs, grants): their listeners are ORM
    events."""
    db.flush()
    return db.connection()


def get_db() -> Session:
    """The request's session; committed explicitly by the code that writes."""
    if "db" not in g:
        g.db = current_app.extensions["login_site.sessionmaker"]()
    return g.db


def _close_session(_exc: BaseException | None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


@contextmanager
def session_scope(app: Flask) -> Iterator[Session]:
    """A session outside a request (CLI, tests): commit on success, roll back on error."""
    session = app.extensions["login_site.sessionmaker"]()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
