"""Rate limits per endpoint class (compat §0.7) and the shared counters behind them.

One limit per endpoint class, chosen by request path and method in a ``before_request``
hook, so routes written elsewhere (``/dbconnections/*``, ``/co/authenticate``...) are
limited without decorating them; a request of no class costs one dict lookup. Counting is
the ``limits`` library's fixed window (the storage, keys and windows flask-limiter used).
Counters live in Redis when ``LOGIN_SITE_REDIS_URL`` is set (while it is down, this
process's memory, with a warning); otherwise in the ``rate_counters`` table, so every
worker of the embedded default shares them. Responses of limited endpoints carry
``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (UNIX seconds); a 429 also carries
``Retry-After``. The 429 body is made by
:mod:`login_site.errors`.

The same storage holds named counters for other modules (suspicious-IP throttling in
:mod:`login_site.security.bruteforce`): :func:`counter_hit` and :func:`counter_test`.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from flask import Flask
from flask import Response
from flask import current_app
from flask import g
from flask import has_request_context
from flask import request
from limits import RateLimitItem
from limits import WindowStats
from limits import parse
from limits import parse_many
from limits.storage import MemoryStorage
from limits.storage import RedisStorage
from limits.storage import Storage
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import case
from sqlalchemy import create_engine
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import TooManyRequests as RateLimitExceeded

from login_site.db import utcnow
from login_site.errors import TooManyRequests
from login_site.events import event
from login_site.models import RateCounter
from login_site.security.secrets import sha256_hex

log = logging.getLogger("login_site.ratelimit")

COUNTERS = "login_site.rate_counters"
DATABASE_SCHEME = "login-site-db"
# A Redis URL is given to limits as "login-site+redis://...", for CountingRedisStorage.
REDIS_SCHEME_PREFIX = "login-site+"
REDIS_SCHEMES = ("redis", "rediss", "redis+unix")
REDIS_TIMEOUT_SECONDS = 1
# While Redis is unreachable, named counters use memory and try Redis again after this.
REDIS_RETRY_SECONDS = 30


# --- who is asking ---------------------------------------------------------------------------


def client_ip() -> str:
    """The client's address: ``request.remote_addr``, which ProxyFix rewrites only for the
    configured number of trusted proxies (``PROXY_FIX_X_FOR``); ``X-Forwarded-For`` from
    anyone else is ignored (checklist SE-10)."""
    return (request.remote_addr or "") if has_request_context() else ""


@lru_cache(maxsize=4096)  # pure, and parsing an address costs more than the lookup
def ip_key(ip: str) -> str:
    """The counting unit for an address: IPv4 as is, IPv6 by its /64 (one subscriber
    usually holds a whole /64, so single addresses would be free to rotate)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if address.version == 6:
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _tenant() -> str:
    tenant = g.get("tenant")
    return tenant.id if tenant is not None else "-"


def _body_field(name: str) -> str:
    """A field of a JSON or form body, or ""; never raises: a key function that fails would
    turn a rate-limited request into a 500."""
    try:
        if request.is_json:
            data = request.get_json(silent=True)
            value = data.get(name) if isinstance(data, dict) else None
        else:
            value = request.form.get(name)
    except Exception:  # any unreadable body counts as absent
        return ""
    return value.strip()[:320] if isinstance(value, str) else ""


def by_ip() -> str:
    return tenant_ip_key(_tenant(), client_ip())


def tenant_ip_key(tenant_id: str, ip: str) -> str:
    return f"{tenant_id}:{ip_key(ip)}"


def by_ip_and_client() -> str:
    from login_site.oauth.server import basic_client_id

    client_id = basic_client_id() or _body_field("client_id")
    return f"{by_ip()}:{sha256_hex(client_id)[:16]}"


def by_ip_and_email() -> str:
    """Auth0 limits password-reset requests per IP and email; the address is hashed."""
    return f"{by_ip()}:{sha256_hex(_body_field('email').lower())[:16]}"


def by_access_token() -> str:
    """Per access token (Auth0 limits /userinfo per user; a token stands for one user)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        token = _body_field("access_token")
    return token_key(_tenant(), token.strip()) if token else by_ip()


def token_key(tenant_id: str, token: str) -> str:
    return f"{tenant_id}:{sha256_hex(token)[:32]}"


# --- endpoint classes ------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointClass:
    name: str
    paths: tuple[str, ...]
    methods: tuple[str, ...]
    setting: str  # config key holding the limit string
    key: Callable[[], str]


ENDPOINT_CLASSES: tuple[EndpointClass, ...] = (
    EndpointClass("token", ("/oauth/token",), ("POST",), "RATE_LIMIT_TOKEN", by_ip_and_client),
    EndpointClass(
        "co_authenticate", ("/co/authenticate",), ("POST",), "RATE_LIMIT_CO_AUTHENTICATE", by_ip
    ),
    EndpointClass(
        "login", ("/login", "/usernamepassword/login"), ("POST",), "RATE_LIMIT_LOGIN", by_ip
    ),
    EndpointClass("signup", ("/dbconnections/signup",), ("POST",), "RATE_LIMIT_SIGNUP", by_ip),
    EndpointClass(
        "change_password",
        ("/dbconnections/change_password", "/forgot_password"),
        ("POST",),
        "RATE_LIMIT_CHANGE_PASSWORD",
        by_ip_and_email,
    ),
    EndpointClass(
        "passwordless_start",
        ("/passwordless/start",),
        ("POST",),
        "RATE_LIMIT_PASSWORDLESS_START",
        by_ip,
    ),
    EndpointClass(
        "userinfo", ("/userinfo",), ("GET", "POST"), "RATE_LIMIT_USERINFO", by_access_token
    ),
    EndpointClass("jwks", ("/.well-known/jwks.json",), ("GET",), "RATE_LIMIT_JWKS", by_ip),
)


CLASS_BY_NAME: dict[str, EndpointClass] = {cls.name: cls for cls in ENDPOINT_CLASSES}
_CLASS_BY_ROUTE: dict[tuple[str, str], EndpointClass] = {
    (path, method): cls for cls in ENDPOINT_CLASSES for path in cls.paths for method in cls.methods
}


# The Management API (checklist MA-15): every route under the prefix, per bearer token.
MANAGEMENT = EndpointClass(
    "management",
    ("/api/v2/",),
    ("GET", "POST", "PATCH", "PUT", "DELETE"),
    "RATE_LIMIT_MANAGEMENT",
    by_access_token,
)


def endpoint_class() -> EndpointClass | None:
    if request.path.startswith(MANAGEMENT.paths[0]) and request.path != "/api/v2/openapi.json":
        return MANAGEMENT
    return _CLASS_BY_ROUTE.get((request.path, request.method))


@lru_cache(maxsize=64)
def _limit_items(value: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(value)) if value else ()


@dataclass(frozen=True)
class Applied:
    """The limit shown in this request's headers: the breached one, else the first."""

    item: RateLimitItem
    stats: WindowStats
    breached: bool


def count(app: Flask, cls: EndpointClass, key: str) -> Applied | None:
    """Count one request of ``cls`` for ``key`` against each of its limits (stopping at the
    first one breached); None when the class has no limit.

    The count and the window come back from one storage round trip (Redis and database
    storages remember their own hit for the request, see :func:`_memo`)."""
    items = _limit_items(app.config.get(cls.setting) or "")
    if not items:
        return None
    counters: Counters = app.extensions[COUNTERS]
    args = (counters.prefix, key, cls.name)  # flask-limiter's key layout
    applied = None
    for item in items:
        allowed = counters.run("hit", item, args)
        stats = counters.run("get_window_stats", item, args)
        if applied is None or not allowed:
            applied = Applied(item, stats, breached=not allowed)
        if not allowed:
            break
    return applied


# Where an answer made in front of Flask leaves its count when it passes the request on.
COUNTED = "login_site.rate_limit_counted"


def check_request() -> None:
    """``before_request``: count the request against its class's limit (unless counted in
    front of Flask already); 429 past it."""
    cls = endpoint_class()
    if cls is None:
        return
    applied = request.environ.get(COUNTED) or count(
        current_app._get_current_object(), cls, cls.key()
    )
    if applied is None:
        return
    g.rate_limit = applied
    if applied.breached:
        event("rate_limit", "exceeded", endpoint_class=cls.name, path=request.path)
        raise RateLimitExceeded()


def count_outside_flask(app: Flask, class_name: str, key: str) -> Applied | None:
    """:func:`count` for an answer made in front of Flask (``oauth/fastpath.py``). None when
    limits are off."""
    if not app.config["RATE_LIMIT_ENABLED"]:
        return None
    scope = _OUTSIDE_MEMO.set({})
    try:
        return count(app, CLASS_BY_NAME[class_name], key)
    finally:
        _OUTSIDE_MEMO.reset(scope)


def header_items(applied: Applied) -> list[tuple[str, str]]:
    """``X-RateLimit-*`` of a counted request."""
    return [
        ("X-RateLimit-Limit", str(applied.item.amount)),
        ("X-RateLimit-Remaining", str(applied.stats.remaining)),
        ("X-RateLimit-Reset", str(int(applied.stats.reset_time))),
    ]


def limit_headers(response: Response) -> Response:
    """``X-RateLimit-*`` on every answer of a limited request, errors included, and
    ``Retry-After`` on the limiter's own 429 (a blocked login has no retry time)."""
    applied: Applied | None = g.get("rate_limit")
    if applied is None:
        return response
    for name, value in header_items(applied):
        response.headers[name] = value
    if applied.breached and response.status_code == 429:
        reset = applied.stats.reset_time
        response.headers["Retry-After"] = str(max(1, math.ceil(reset - time.time())))
    return response


# --- storage ---------------------------------------------------------------------------------


# The memo of a request answered in front of Flask (count_outside_flask).
_OUTSIDE_MEMO: ContextVar[dict[str, tuple[int, float]] | None] = ContextVar(
    "rate_counter_memo", default=None
)


def _memo() -> dict[str, tuple[int, float]]:
    """The count and expiry (UNIX seconds) this request's own hit returned, by storage key:
    :func:`count` reads both back for the X-RateLimit-* headers, which then need no second
    and third round trip to the storage."""
    if not has_request_context():
        memo = _OUTSIDE_MEMO.get()
        return memo if memo is not None else {}
    request_globals = g._get_current_object()  # one proxy lookup, not three
    memo = getattr(request_globals, "rate_counter_memo", None)
    if memo is None:
        memo = request_globals.rate_counter_memo = {}
    return memo


class CountingRedisStorage(RedisStorage):
    """limits' Redis storage whose hit returns the count and the window's end in one round
    trip (one Lua script: INCRBY, EXPIRE on the first hit, PTTL), remembered for the
    request's headers. Same keys and windows as limits' own."""

    STORAGE_SCHEME = [f"{REDIS_SCHEME_PREFIX}{scheme}" for scheme in REDIS_SCHEMES]
    SCRIPT_INCR_EXPIRE_TTL = """
local current = redis.call("incrby", KEYS[1], ARGV[2])
if tonumber(current) == tonumber(ARGV[2]) then
    redis.call("expire", KEYS[1], ARGV[1])
end
return {current, redis.call("pttl", KEYS[1])}
"""

    def __init__(self, uri: str, **options):
        super().__init__(uri.removeprefix(REDIS_SCHEME_PREFIX), **options)

    def initialize_storage(self, uri: str) -> None:
        super().initialize_storage(uri)
        self.lua_incr_expire_ttl = self.get_connection().register_script(
            self.SCRIPT_INCR_EXPIRE_TTL
        )
        self._own = threading.local()

    def _incr_expire_ttl(self, key: str, expiry: int, amount: int) -> list[int]:
        """The script, on a connection of this thread's own. Through the client, every
        command checks a connection out of redis-py's pool (polling it for stray data) and
        back in, and goes through the script and retry wrappers: as much CPU again as the
        command itself, on every limited request. A thread runs one request at a time, so a
        connection per thread (gunicorn's few threads per worker) is never shared. A
        connection found closed (Redis restarted, an idle timeout) is replaced once, as
        redis-py's client would; a second failure or a timeout reaches :class:`Counters`,
        which falls back to memory as for any Redis error."""
        redis = self.dependency
        connection = getattr(self._own, "connection", None)
        if connection is None:
            pool = self.get_connection().connection_pool
            connection = self._own.connection = pool.connection_class(**pool.connection_kwargs)
        try:
            return self._run_script(connection, key, expiry, amount)
        except redis.TimeoutError:
            connection.disconnect()  # its answer may still come: never read it later
            raise
        except redis.ConnectionError:
            connection.disconnect()  # found closed: once more, on a new connection
        try:
            return self._run_script(connection, key, expiry, amount)
        except (redis.ConnectionError, redis.TimeoutError):
            connection.disconnect()
            raise

    def _run_script(self, connection, key: str, expiry: int, amount: int) -> list[int]:
        script = self.lua_incr_expire_ttl
        try:
            connection.send_command("EVALSHA", script.sha, 1, key, expiry, amount)
            return connection.read_response()
        except self.dependency.exceptions.NoScriptError:  # Redis restarted or flushed
            connection.send_command("EVAL", script.script, 1, key, expiry, amount)
            return connection.read_response()

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        count, ttl_ms = self._incr_expire_ttl(self.prefixed_key(key), expiry, amount)
        now = time.time()
        _memo()[key] = (int(count), now + (ttl_ms / 1000 if ttl_ms >= 0 else expiry))
        return int(count)

    def get(self, key: str) -> int:
        memo = _memo().get(key)
        if memo is not None and memo[1] > time.time():
            return memo[0]
        return super().get(key)

    def get_expiry(self, key: str) -> float:
        memo = _memo().get(key)
        if memo is not None:
            return memo[1]
        return super().get_expiry(key)

    def clear(self, key: str) -> None:
        _memo().pop(key, None)
        super().clear(key)


# --- database storage ------------------------------------------------------------------------


def upsert(bind: Engine, model):
    """``INSERT ... ON CONFLICT`` for the engines we run on (SQLite and PostgreSQL)."""
    if bind.dialect.name == "postgresql":
        return postgresql_insert(model)
    if bind.dialect.name == "sqlite":
        return sqlite_insert(model)
    raise NotImplementedError(f"no upsert for {bind.dialect.name}")


class DatabaseStorage(Storage):
    """Fixed-window counters in ``rate_counters``: one atomic upsert per hit, shared by
    every process on the database. Expired rows are deleted now and then.

    limits registers storage classes by URI scheme when they are defined; this scheme is
    used only by :func:`init_app`, which passes the engine."""

    STORAGE_SCHEME = [DATABASE_SCHEME]
    PURGE_INTERVAL_SECONDS = 60
    MAX_KEY_LENGTH = 255

    def __init__(
        self,
        uri: str | None = None,
        wrap_exceptions: bool = False,
        engine: Engine | None = None,
        **options,
    ):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        if engine is None:
            raise ValueError("DatabaseStorage needs an engine")
        self.engine = engine
        self._next_purge = 0.0

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def _key(self, key: str) -> str:
        return key if len(key) <= self.MAX_KEY_LENGTH else "sha256:" + sha256_hex(key)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        key = self._key(key)
        now = utcnow()
        table = RateCounter.__table__
        stmt = upsert(self.engine, table).values(
            key=key, count=amount, expires_at=now + timedelta(seconds=expiry)
        )
        expired = table.c.expires_at <= now
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "count": case(
                    (expired, stmt.excluded.count), else_=table.c.count + stmt.excluded.count
                ),
                "expires_at": case((expired, stmt.excluded.expires_at), else_=table.c.expires_at),
            },
        ).returning(table.c.count, table.c.expires_at)
        with self.engine.begin() as conn:
            count, expires_at = conn.execute(stmt).one()
        _memo()[key] = (count, expires_at.timestamp())
        self._purge(now)
        return count

    def _purge(self, now) -> None:
        if time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + self.PURGE_INTERVAL_SECONDS
        with self.engine.begin() as conn:
            conn.execute(
                delete(RateCounter).where(RateCounter.expires_at < now - timedelta(seconds=60))
            )

    def get(self, key: str) -> int:
        key = self._key(key)
        memo = _memo().get(key)
        if memo is not None and memo[1] > time.time():
            return memo[0]
        with self.engine.connect() as conn:
            count = conn.execute(
                select(RateCounter.count).where(
                    RateCounter.key == key, RateCounter.expires_at > utcnow()
                )
            ).scalar()
        return int(count or 0)

    def get_expiry(self, key: str) -> float:
        key = self._key(key)
        memo = _memo().get(key)
        if memo is not None:
            return memo[1]
        with self.engine.connect() as conn:
            expires_at = conn.execute(
                select(RateCounter.expires_at).where(RateCounter.key == key)
            ).scalar()
        return expires_at.timestamp() if expires_at is not None else time.time()

    def check(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with self.engine.begin() as conn:
            return conn.execute(delete(RateCounter)).rowcount

    def clear(self, key: str) -> None:
        key = self._key(key)
        _memo().pop(key, None)
        with self.engine.begin() as conn:
            conn.execute(delete(RateCounter).where(RateCounter.key == key))


# --- named counters --------------------------------------------------------------------------


class Counters:
    """Fixed-window counters on the rate-limit storage: the endpoint limits and the named
    counters of other modules. While Redis is unreachable they use this process's memory
    (logged), and try Redis again after REDIS_RETRY_SECONDS."""

    def __init__(self, storage: Storage, prefix: str, fallback: bool):
        self.primary = FixedWindowRateLimiter(storage)
        self.prefix = prefix
        self.fallback = fallback
        self.memory: FixedWindowRateLimiter | None = None
        self.retry_at = 0.0

    def run(self, method: str, item: RateLimitItem, args: tuple[str, ...]):
        """``method`` of limits' FixedWindowRateLimiter on the storage in use."""
        if not self.fallback or time.monotonic() >= self.retry_at:
            try:
                return getattr(self.primary, method)(item, *args)
            except self.primary.storage.base_exceptions:
                if not self.fallback:
                    raise
                log.warning("rate-limit storage unreachable: counters fall back to memory")
                self.retry_at = time.monotonic() + REDIS_RETRY_SECONDS
        if self.memory is None:
            self.memory = FixedWindowRateLimiter(MemoryStorage())
        return getattr(self.memory, method)(item, *args)

    def _run(self, method: str, limit: str, identifiers: tuple[str, ...]):
        return self.run(method, parse(limit), (self.prefix, "counter", *identifiers))

    def hit(self, limit: str, *identifiers: str) -> bool:
        return self._run("hit", limit, identifiers)

    def test(self, limit: str, *identifiers: str) -> bool:
        return self._run("test", limit, identifiers)

    def reset_at(self, limit: str, *identifiers: str) -> float:
        """When the current window ends (UNIX seconds)."""
        return self._run("get_window_stats", limit, identifiers).reset_time


def counter_hit(limit: str, *identifiers: str) -> bool:
    """Count one event; False once ``limit`` (e.g. ``"100/hour"``) is exceeded."""
    return current_app.extensions[COUNTERS].hit(limit, *identifiers)


def counter_test(limit: str, *identifiers: str) -> bool:
    """True while another event fits in ``limit``; counts nothing."""
    return current_app.extensions[COUNTERS].test(limit, *identifiers)


def too_many_requests(limit: str, *identifiers: str) -> TooManyRequests:
    """The 429 for an exhausted counter, with ``Retry-After`` for when its window ends."""
    reset_at = current_app.extensions[COUNTERS].reset_at(limit, *identifiers)
    error = TooManyRequests()
    error.headers = {"Retry-After": str(max(1, math.ceil(reset_at - time.time())))}
    return error


# --- setup -----------------------------------------------------------------------------------


def _storage(app: Flask) -> tuple[str, dict, bool]:
    """(storage URI, options, in-memory fallback) for the configured store."""
    redis_url = app.config.get("REDIS_URL")
    if redis_url:
        options = {
            "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
            "socket_timeout": REDIS_TIMEOUT_SECONDS,
        }
        scheme = redis_url.partition("://")[0]
        if scheme in REDIS_SCHEMES:
            redis_url = REDIS_SCHEME_PREFIX + redis_url
        return redis_url, options, True
    # Its own Engine over the application's pool: counters commit on their own, apart
    # from the request's session.
    main = app.extensions["login_site.engine"]
    engine = create_engine(main.url, pool=main.pool)
    return f"{DATABASE_SCHEME}://", {"engine": engine}, False


def init_app(app: Flask) -> None:
    """After ``tenancy.init_app``: the limits are keyed by tenant."""
    uri, options, fallback = _storage(app)
    prefix = app.config["RATE_LIMIT_KEY_PREFIX"]
    app.extensions[COUNTERS] = Counters(storage_from_string(uri, **options), prefix, fallback)
    if app.config["RATE_LIMIT_ENABLED"]:
        app.before_request(check_request)
        app.after_request(limit_headers)
