"""Calls to upstream identity providers (token, userinfo, JWKS, discovery endpoints).

Every call is bounded (checklist UP-06, SC-13…SC-16): a connect timeout, a read timeout that is
also the deadline for the whole body (a provider trickling bytes cannot hold a worker), a size
cap, no redirects followed, TLS verified. URLs come from administrators only; even so, schemes
other than https (http for loopback only) and link-local, multicast or unspecified addresses
are refused (UP-08), at configuration time and again at call time after DNS resolution.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import current_app


class UpstreamError(Exception):
    """The provider could not be reached or answered nonsense. ``unavailable`` tells a
    timeout or refused connection (retry later) from a bad answer."""

    def __init__(self, message: str, *, unavailable: bool = False):
        super().__init__(message)
        self.unavailable = unavailable


class UnsafeURL(ValueError):
    """A URL we refuse to call; the message says why (shown to administrators)."""


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise UpstreamError("the provider answered with something other than JSON") from exc


def _refused_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved


def _loopback_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, allowed_hosts: list[str] | tuple[str, ...] = ()) -> str:
    """``url`` if we may call it; :class:`UnsafeURL` otherwise."""
    if not isinstance(url, str) or len(url) > 2048:
        raise UnsafeURL("must be an https URL")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host or parts.username or parts.password:
        raise UnsafeURL("must be an https URL without credentials")
    if parts.scheme == "http" and not _loopback_host(host):
        raise UnsafeURL("must use https (http is accepted for loopback hosts only)")
    if parts.fragment:
        raise UnsafeURL("must not contain a fragment")
    if host in allowed_hosts:
        return url
    try:
        if _refused_address(host):
            raise UnsafeURL("points to a link-local, multicast or unspecified address")
    except ValueError:
        pass  # a name: checked again after resolution, at call time
    if host in ("metadata.google.internal", "metadata"):
        raise UnsafeURL("points to a cloud metadata service")
    return url


def _resolved_safely(url: str, allowed_hosts: list[str]) -> None:
    host = (urlsplit(url).hostname or "").lower()
    if host in allowed_hosts:
        return
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise UpstreamError(f"cannot resolve {host}", unavailable=True) from exc
    if any(_refused_address(info[4][0]) for info in infos):
        raise UpstreamError(f"{host} resolves to a refused address")


def call(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> Answer:
    """One bounded request. Redirects come back as answers (never followed)."""
    config = current_app.config
    allowed = list(config["UPSTREAM_ALLOWED_HOSTS"])
    try:
        check_url(url, allowed)
    except UnsafeURL as exc:
        raise UpstreamError(f"refused URL: {exc}") from exc
    _resolved_safely(url, allowed)
    read_timeout = float(config["UPSTREAM_READ_TIMEOUT_SECONDS"])
    limit = int(config["UPSTREAM_MAX_RESPONSE_BYTES"])
    deadline = time.monotonic() + float(config["UPSTREAM_CONNECT_TIMEOUT_SECONDS"]) + read_timeout
    try:
        with requests.request(
            method,
            url,
            headers={"User-Agent": "login_site", **(headers or {})},
            data=data,
            params=params,
            auth=auth,
            timeout=(float(config["UPSTREAM_CONNECT_TIMEOUT_SECONDS"]), read_timeout),
            allow_redirects=False,
            stream=True,
        ) as response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise UpstreamError("the provider's answer is too large")
            body = bytearray()
            for chunk in response.iter_content(65536):
                body.extend(chunk)
                if len(body) > limit:
                    raise UpstreamError("the provider's answer is too large")
                if time.monotonic() > deadline:
                    raise UpstreamError("the provider is too slow", unavailable=True)
            return Answer(
                status=response.status_code,
                content_type=response.headers.get("Content-Type", "").split(";")[0].strip(),
                body=bytes(body),
            )
    except requests.Timeout as exc:
        raise UpstreamError("the provider did not answer in time", unavailable=True) from exc
    except requests.ConnectionError as exc:
        raise UpstreamError("the provider could not be reached", unavailable=True) from exc
    except requests.RequestException as exc:
        raise UpstreamError("the request to the provider failed") from exc
