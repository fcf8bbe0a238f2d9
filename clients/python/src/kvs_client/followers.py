"""Followers: the redirect of a write to the primary, and reading your own
writes, for both transports.

A follower answers every write ``307 Temporary Redirect`` to the primary.
httpx's own redirect handling stays off: it drops ``Authorization`` on a
redirect to another host, and a follower and its primary are different
hosts of one service. The clients follow 307 and 308 themselves, the two
that keep the method and the body, with :func:`next_request`; a 301, 302 or
303 would turn a write into a GET, and is an error answer instead.
"""

from __future__ import annotations

import threading
from typing import Optional

import httpx

from .errors import TooManyRedirects
from .protocol import REVISION

MAX_REDIRECTS = 5
"""How many redirects one call follows before it raises
:class:`TooManyRedirects`: a follower to the primary is one; a follower that
still points to a primary that has just lost its lease, and that primary to
the new one, is two."""

MIN_REVISION = "KVS-Min-Revision"
"""The header a read names the revision it must reflect with."""

_REDIRECTS = (307, 308)


def next_request(request: httpx.Request, response: httpx.Response, hops: int) -> Optional[httpx.Request]:
    """The request to send after ``response`` to ``request``, the
    ``hops``-th redirect so far: ``None`` when the answer is not a redirect
    to follow.

    The token goes on from a server that had it to the one it redirects to,
    but never from ``https`` down to plain ``http``, where anyone on the way
    could read it: a server that holds the token could use it anywhere
    itself, so letting it name where the request goes next gives it
    nothing more.
    """
    if response.status_code not in _REDIRECTS or "Location" not in response.headers:
        return None
    url = request.url.join(response.headers["Location"])
    if url.scheme not in ("http", "https"):
        return None
    if hops >= MAX_REDIRECTS:
        raise TooManyRedirects(
            f"gave up after {hops} redirects; the last pointed to {url}",
            response.status_code,
            location=str(url),
        )
    headers = request.headers.copy()
    del headers["Host"]  # the new URL's
    if request.url.scheme == "https" and url.scheme == "http":
        headers.pop("Authorization", None)
    return httpx.Request(request.method, url, headers=headers, content=request.content, extensions=request.extensions)


class Session:
    """Read-your-writes: the highest ``KVS-Revision`` the client's own
    writes were answered with, sent as ``KVS-Min-Revision`` on its reads.
    Off (``enabled=False``), it does nothing."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._written = 0
        """The highest revision a write was answered with; 0 before the first."""
        self._lock = threading.Lock()

    def before(self, request: httpx.Request, probe: bool) -> None:
        """Adds ``KVS-Min-Revision`` to a read, once a write was answered."""
        if self.enabled and not probe and request.method in ("GET", "HEAD") and self._written:
            request.headers[MIN_REVISION] = str(self._written)

    def after(self, request: httpx.Request, response: httpx.Response) -> None:
        """Keeps the revision of a write's successful answer, if it is the
        highest yet."""
        if not self.enabled or request.method in ("GET", "HEAD") or not response.is_success:
            return
        try:
            revision = int(response.headers[REVISION])
        except (KeyError, ValueError):
            return
        with self._lock:
            self._written = max(self._written, revision)
