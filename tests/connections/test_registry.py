"""Every registered strategy satisfies the connection contract (STYLE §2)."""

import pytest

from login_site import accounts
from login_site.connections.base import KNOWN_STRATEGIES
from login_site.connections.base import Strategy
from login_site.connections.base import get_strategy
from login_site.connections.base import implemented
from login_site.connections.base import setup_strategies


def test_registered_strategies_satisfy_the_protocol():
    setup_strategies()
    assert set(implemented()) == {
        "auth0",
        "email",
        "sms",
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
        "oidc",
    }
    for name in implemented():
        strategy = get_strategy(name)
        assert isinstance(strategy, Strategy)
        assert strategy.name == name and name in KNOWN_STRATEGIES


def test_strategies_without_code_are_not_available():
    setup_strategies()
    assert get_strategy("samlp") is None


@pytest.mark.parametrize(
    "value,ok",
    [
        ("a@example.test", True),
        ("a@localhost", True),
        ("a b@localhost", False),
        ("a@b", False),
        ("@example.test", False),
        ("a@@example.test", False),
        ("a@example.test" + "x" * 320, False),
    ],
)
def test_email_syntax(value, ok):
    assert accounts.valid_email(value) is ok


def test_email_keys_fold_case_but_not_lookalikes():
    assert accounts.normalise_email(" Alice@Example.TEST ") == "alice@example.test"
    assert accounts.normalise_email("al\u0131ce@example.test") != "alice@example.test"
    assert accounts.normalise_email("\u017fam@example.test") != "sam@example.test"
