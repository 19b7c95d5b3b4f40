"""Benchmarks: login_site against panva's oidc-provider on loopback (issue 10)."""
