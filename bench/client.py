"""A small HTTP/1.1 client on asyncio streams, and a browser on top of it.

Written for the round-trip rows: the load generator gets one core, and a general-purpose
client (httpx, requests) spends more CPU per request than the peer spends answering it,
which would measure the client. This one keeps connections alive when the server allows
it, keeps cookies by name (one host), and reads the hosted page's form.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from dataclasses import field
from html.parser import HTMLParser
from urllib.parse import urlencode
from urllib.parse import urljoin
from urllib.parse import urlsplit


class HTTPError(Exception):
    pass


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]


class Connection:
    """One keep-alive connection to ``host:port``; reopened when the server closes it."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> Response:
        reused = self.writer is not None
        try:
            return await self._exchange(method, target, headers, body)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self.close()
            # A kept-alive connection the server closed while idle: nothing was processed.
            if reused and isinstance(exc, asyncio.IncompleteReadError) and not exc.partial:
                return await self._exchange(method, target, headers, body)
            raise HTTPError(str(exc)) from exc

    async def _exchange(self, method, target, headers, body) -> Response:
        if self.writer is None:
            await self._open()
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *raw = head[:-4].decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        parsed = []
        for line in raw:
            key, _, value = line.partition(":")
            parsed.append((key.strip().lower(), value.strip()))
        response = Response(status, parsed, b"")
        length = response.header("content-length")
        if (response.header("transfer-encoding") or "").lower() == "chunked":
            response.body = await self._chunked()
        elif length is not None:
            response.body = await self.reader.readexactly(int(length))
        elif status not in (204, 304) and method != "HEAD":
            response.body = await self.reader.read()
            self.close()
        if (response.header("connection") or "").lower() == "close":
            self.close()
        return response

    async def _chunked(self) -> bytes:
        parts = []
        while True:
            size = int((await self.reader.readline()).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


class FormParser(HTMLParser):
    """Forms on a page: action, method and their named inputs."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append(
                {"action": a.get("action") or "", "method": (a.get("method") or "get").lower()}
            )
            self.forms[-1]["fields"] = {}
        elif tag in ("input", "button") and self.forms and a.get("name"):
            if tag == "button" and (a.get("type") or "submit") != "submit":
                return
            self.forms[-1]["fields"].setdefault(a["name"], a.get("value") or "")


def password_form(html: str) -> dict | None:
    """The page's form with a password field, else its only POST form (a consent page)."""
    parser = FormParser()
    parser.feed(html)
    posts = [f for f in parser.forms if f["method"] == "post"]
    for form in posts:
        if "password" in form["fields"]:
            return form
    return posts[0] if len(posts) == 1 else None


@dataclass
class Browser:
    """A cookie jar and a connection: one user agent against one server."""

    base_url: str
    cookies: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        parts = urlsplit(self.base_url)
        self.conn = Connection(parts.hostname, parts.port)

    def close(self) -> None:
        self.conn.close()

    def _store_cookies(self, response: Response) -> None:
        for line in response.all("set-cookie"):
            pair, _, attrs = line.partition(";")
            name, _, value = pair.strip().partition("=")
            lowered = attrs.lower()
            if "max-age=0" in lowered or "expires=thu, 01 jan 1970" in lowered or not value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    async def request(
        self,
        method: str,
        url: str,
        *,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        parts = urlsplit(urljoin(self.base_url, url))
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        send = dict(headers or {})
        if self.cookies:
            send["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = b""
        if form is not None:
            body = urlencode(form).encode()
            send["Content-Type"] = "application/x-www-form-urlencoded"
        response = await self.conn.request(method, target, send, body)
        self._store_cookies(response)
        return response
