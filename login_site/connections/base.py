"""The connection contract (STYLE §2) and the one registry from strategy name to code.

Every login path ends in the same :class:`Profile`. Strategies that are not
implemented yet are still valid connection strategies (they can be stored and
imported) but have no code here, so the login page never shows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import ClassVar
from typing import Protocol
from typing import runtime_checkable

from login_site.models import Connection
from login_site.models import Identity
from login_site.models import LoginTransaction
from login_site.models import User

# Auth0 strategy names by kind (management-api.md). Kind drives the login page layout.
DATABASE_STRATEGIES = ("auth0",)
PASSWORDLESS_STRATEGIES = ("email", "sms")
SOCIAL_STRATEGIES = (
    "google-oauth2",
    "github",
    "windowslive",
    "facebook",
    "linkedin",
    "apple",
    "slack",
    "box",
    "amazon",
    "bitbucket",
    "twitter",
    "oauth2",
)
ENTERPRISE_STRATEGIES = ("oidc", "samlp", "ad", "waad", "google-apps", "adfs", "okta")
KNOWN_STRATEGIES = (
    DATABASE_STRATEGIES + PASSWORDLESS_STRATEGIES + SOCIAL_STRATEGIES + ENTERPRISE_STRATEGIES
)


def kind_of(strategy: str) -> str:
    if strategy in DATABASE_STRATEGIES:
        return "database"
    if strategy in PASSWORDLESS_STRATEGIES:
        return "passwordless"
    if strategy in SOCIAL_STRATEGIES:
        return "social"
    return "enterprise"


class LoginFailed(Exception):
    """Any doubt about a login attempt. The message shown is always the generic one."""

    def __init__(self, reason: str = "invalid_user_password"):
        super().__init__(reason)
        self.reason = reason


class InvalidOptions(ValueError):
    """Connection options rejected by the strategy; the message names the key."""


@dataclass(frozen=True)
class Button:
    label: str
    kind: str  # "redirect" | "password_form" | "code_form"
    icon: str | None = None


@dataclass
class Profile:
    """What a strategy learned about a user, normalised (Auth0's profile fields)."""

    user_id: str  # upstream id, without the provider prefix
    email: str | None = None
    email_verified: bool = False
    username: str | None = None
    name: str | None = None
    nickname: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    picture: str | None = None
    phone_number: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    # Upstream tokens go to the vault, never to clients.
    upstream_tokens: dict[str, Any] = field(default_factory=dict)
    # The local user, when the strategy found it itself (database connections): the login
    # view then needs no lookup by identity.
    local_user: User | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Step:
    """What ``begin`` asks the login layer to do next."""

    kind: str  # "redirect" | "form" | "render"
    url: str | None = None
    template: str | None = None
    context: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Strategy(Protocol):
    name: ClassVar[str]

    def validate_options(self, options: Mapping[str, Any]) -> dict[str, Any]: ...

    def button(self, conn: Connection) -> Button: ...

    def begin(self, conn: Connection, tx: LoginTransaction) -> Step: ...

    def complete(
        self, conn: Connection, tx: LoginTransaction, data: Mapping[str, str]
    ) -> Profile: ...

    def profile(self, conn: Connection, raw: Mapping[str, Any]) -> Profile: ...

    def refresh(self, conn: Connection, identity: Identity) -> Profile | None: ...


_REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> None:
    _REGISTRY[strategy.name] = strategy


def get_strategy(name: str) -> Strategy | None:
    """The implementation of a strategy, or ``None`` when it is not available yet."""
    return _REGISTRY.get(name)


def implemented() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def setup_strategies() -> None:
    """Explicit registration (nothing registers itself on import)."""
    from login_site.connections.database import DatabaseStrategy
    from login_site.connections.passwordless import STRATEGIES as PASSWORDLESS
    from login_site.connections.social import STRATEGIES as OAUTH2

    register(DatabaseStrategy())
    for strategy in PASSWORDLESS.values():
        register(strategy)
    for strategy in OAUTH2.values():
        register(strategy)
