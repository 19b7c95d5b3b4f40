"""Auth0's password policy levels."""

import pytest

from login_site.passwords import policy_errors


def codes(level, password, **options):
    return [r.code for r in policy_errors({"passwordPolicy": level, **options}, password)]


@pytest.mark.parametrize(
    "level,password,failing",
    [
        ("none", "x", []),
        ("none", "", ["lengthAtLeast"]),
        ("low", "abcde", ["lengthAtLeast"]),
        ("low", "abcdef", []),
        ("fair", "abcdefgh", ["containsAtLeast"]),
        ("fair", "Abcdefg1", []),
        ("fair", "Abcdefg!", ["containsAtLeast"]),
        ("good", "abcdefg1!", []),
        ("good", "abcdefgh1", ["containsAtLeast"]),
        ("excellent", "Abcdefgh1!", []),
        ("excellent", "Abcdefghi1", []),
        ("excellent", "Aaaabcdef1", ["identicalChars"]),
        ("excellent", "Abcdef1!", ["lengthAtLeast"]),
    ],
)
def test_policy_levels(level, password, failing):
    assert codes(level, password) == failing


def test_min_length_overrides_the_level():
    assert codes("low", "abcdefghij", password_complexity_options={"min_length": 12}) == [
        "lengthAtLeast"
    ]
