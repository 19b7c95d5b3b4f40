"""Fixtures for the browser tests beyond tests/e2e/browser.py (which tests/conftest.py
registers for the whole run): the loopback upstream identity providers."""

from tests.fixtures.upstream import fresh_upstream  # noqa: F401 - fixture
from tests.fixtures.upstream import upstream  # noqa: F401 - fixture
