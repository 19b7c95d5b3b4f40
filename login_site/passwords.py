"""argon2id hashing and Auth0's password policy levels."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

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


# --- dictionary, personal information and history (Auth0's extra policy options) ----------

COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent / "data" / "common-passwords.txt"
PERSONAL_MIN_LENGTH = 3  # shorter fragments (initials, "jo") would reject too much


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text().splitlines()
    return frozenset(line.strip().lower() for line in lines if line and not line.startswith("#"))


@dataclass(frozen=True)
class Violation:
    """A policy failure beyond the strength rules, with Auth0's error name."""

    name: str  # PasswordDictionaryError | PasswordNoUserInfoError | PasswordHistoryError
    message: str


def _enabled(options: dict, key: str) -> dict | None:
    value = options.get(key)
    if isinstance(value, dict) and value.get("enable"):
        return value
    return None


def dictionary_violation(options: dict, password: str) -> Violation | None:
    conf = _enabled(options, "password_dictionary")
    if conf is None:
        return None
    lowered = password.lower()
    custom = {str(w).lower() for w in conf.get("dictionary") or []}
    if lowered in common_passwords() or lowered in custom:
        return Violation("PasswordDictionaryError", N_("Password is too common"))
    return None


def personal_info_violation(options: dict, password: str, personal: list[str]) -> Violation | None:
    """The password contains the email's local part, the username, a name or the tenant's."""
    if _enabled(options, "password_no_personal_info") is None:
        return None
    lowered = password.lower()
    fragments = set()
    for value in personal:
        if not value:
            continue
        value = value.lower()
        fragments.add(value.split("@", 1)[0])
        fragments.update(re.split(r"[\s._+-]+", value.split("@", 1)[0]))
    if any(len(f) >= PERSONAL_MIN_LENGTH and f in lowered for f in fragments):
        return Violation("PasswordNoUserInfoError", N_("Password contains user information"))
    return None


def history_size(options: dict) -> int:
    conf = _enabled(options, "password_history")
    return min(int(conf.get("size") or 5), 24) if conf else 0


def reused(password: str, previous_hashes: list[str]) -> bool:
    """True when the password matches one of the remembered hashes (argon2 each)."""
    return any(verify_password(h, password) for h in previous_hashes)
