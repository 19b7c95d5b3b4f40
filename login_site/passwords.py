"""argon2id hashing and Auth0's password policy levels."""

from __future__ import annotations

import re
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError
from argon2.exceptions import VerifyMismatchError
from flask import current_app

from login_site.i18n import N_

# Verified as typed, never truncated; this bound only keeps hashing cheap to refuse.
MAX_PASSWORD_BYTES = 1024

POLICY_LEVELS = ("none", "low", "fair", "good", "excellent")

# Auth0's levels: minimum length and how many character classes must appear.
_LEVEL_RULES = {
    "none": {"min_length": 1, "classes": 0, "of": 0},
    "low": {"min_length": 6, "classes": 0, "of": 0},
    "fair": {"min_length": 8, "classes": 3, "of": 3},  # lower, upper and digits
    "good": {"min_length": 8, "classes": 3, "of": 4},  # 3 of lower, upper, digits, special
    "excellent": {"min_length": 10, "classes": 3, "of": 4},  # ... and no 3 identical in a row
}


def hasher() -> PasswordHasher:
    app = current_app
    ph = app.extensions.get("login_site.hasher")
    if ph is None:
        ph = PasswordHasher(
            time_cost=app.config["ARGON2_TIME_COST"],
            memory_cost=app.config["ARGON2_MEMORY_COST_KIB"],
            parallelism=app.config["ARGON2_PARALLELISM"],
        )
        app.extensions["login_site.hasher"] = ph
    return ph


def hash_password(password: str) -> str:
    return hasher().hash(password)


def too_long(password: str) -> bool:
    return len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant work whether or not a hash exists (no timing oracle for unknown users)."""
    ph = hasher()
    target = stored_hash or _dummy_hash()
    try:
        ok = ph.verify(target, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return ok and stored_hash is not None


def needs_rehash(stored_hash: str) -> bool:
    return hasher().check_needs_rehash(stored_hash)


def _dummy_hash() -> str:
    app = current_app
    dummy = app.extensions.get("login_site.dummy_hash")
    if dummy is None:
        dummy = hasher().hash("login_site: not a password")
        app.extensions["login_site.dummy_hash"] = dummy
    return dummy


@dataclass(frozen=True)
class Rule:
    code: str  # Auth0's rule code, e.g. "lengthAtLeast"
    message: str
    format: tuple = ()
    verified: bool = False


def policy_rules(options: dict, password: str) -> list[Rule]:
    """Auth0's rule list for the connection's policy, each marked verified or not."""
    level = options.get("passwordPolicy") or "none"
    if level not in _LEVEL_RULES:
        level = "none"
    spec = _LEVEL_RULES[level]
    min_length = (options.get("password_complexity_options") or {}).get("min_length") or spec[
        "min_length"
    ]
    min_length = max(int(min_length), 1)
    rules = [
        Rule(
            "lengthAtLeast",
            N_("At least %d characters in length"),
            (min_length,),
            len(password) >= min_length,
        )
    ]
    classes = {
        "lowerCase": bool(re.search(r"[a-z]", password)),
        "upperCase": bool(re.search(r"[A-Z]", password)),
        "numbers": bool(re.search(r"[0-9]", password)),
        "specialCharacters": bool(re.search(r"[^A-Za-z0-9]", password)),
    }
    if spec["of"] == 3:
        ok = classes["lowerCase"] and classes["upperCase"] and classes["numbers"]
        rules.append(
            Rule(
                "containsAtLeast",
                N_("Contain at least %d of the following %d types of characters:"),
                (3, 3),
                ok,
            )
        )
    elif spec["of"] == 4:
        ok = sum(classes.values()) >= 3
        rules.append(
            Rule(
                "containsAtLeast",
                N_("Contain at least %d of the following %d types of characters:"),
                (3, 4),
                ok,
            )
        )
    if level == "excellent":
        rules.append(
            Rule(
                "identicalChars",
                N_('No more than %d identical characters in a row (e.g., "%s" not allowed)'),
                (2, "aaa"),
                not re.search(r"(.)\1\1", password),
            )
        )
    return rules


def policy_errors(options: dict, password: str) -> list[Rule]:
    return [r for r in policy_rules(options, password) if not r.verified]


def describe(rule: Rule) -> str:
    """Readable text of a rule ("At least 8 characters in length")."""
    return rule.message % rule.format if rule.format else rule.message
