"""Exceptions raised by the KVS client.

Every exception derives from :class:`KvsError`, so ``except KvsError`` catches
anything the client raises on purpose. Server errors map by HTTP status::

    KvsError                 any other error answer (e.g. 500), and the base
    ├── InvalidValue         400: bad value, bad key, bad query parameter
    ├── Unauthorized         401: no token, or one the server does not know
    ├── Forbidden            403: a read-only token tried to write
    ├── Conflict             409: an increment would overflow i32
    ├── Compacted            410: a watch's revision is older than the
    │                        server's history
    ├── PreconditionFailed   412: a conditional write's condition does not
    │                        hold; nothing was changed
    ├── PayloadTooLarge      413: body over the server's size limit
    ├── Unavailable          503: not ready yet, or the write is not durable;
    │                        nothing was applied
    ├── OutcomeUnknown       504: the write may or may not have been applied
    ├── TooManyRedirects     307 or 308 more times in a row than the client
    │                        follows (a loop); nothing was applied
    └── KvsConnectionError   no answer at all (refused, reset, timed out, or
                             a server certificate that does not verify)

An absent key is not an error: getters return ``None`` instead. The client
never retries by itself: an :class:`Unavailable` may be retried as it is; an
:class:`OutcomeUnknown` write may have been applied, so read the key before
retrying one that is not idempotent (an increment).
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "KvsError",
    "InvalidValue",
    "Unauthorized",
    "Forbidden",
    "Conflict",
    "Compacted",
    "PreconditionFailed",
    "PayloadTooLarge",
    "Unavailable",
    "OutcomeUnknown",
    "TooManyRedirects",
    "KvsConnectionError",
]


class KvsError(Exception):
    """Base of every client error.

    Attributes:
        status: the HTTP status of the server's answer, or ``None`` when
            there was no answer (transport failure).
        detail: the server's one-sentence explanation (the ``detail`` of its
            ``application/problem+json`` body), or a description of the
            transport failure.
    """

    def __init__(self, detail: str, status: Optional[int] = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status

    def __str__(self) -> str:
        if self.status is None:
            return self.detail
        return f"{self.status}: {self.detail}"


class InvalidValue(KvsError):
    """400: the value, key or parameter was rejected; nothing was changed."""


class Unauthorized(KvsError):
    """401: the server wants a token (``token=``) and got none, or one it
    does not know."""


class Forbidden(KvsError):
    """403: the token is read-only and the operation writes; nothing was
    changed."""


class Conflict(KvsError):
    """409: the increment would overflow a 32-bit signed integer.

    The stored value is left unchanged.
    """


class PreconditionFailed(KvsError):
    """412: the write's condition (``condition=``) does not hold: the key is
    at another revision, exists when it must not, or is absent when it must
    exist. Nothing was changed.

    Attributes:
        current_revision: the key's revision now, or ``None`` when it is
            absent: read it again, decide, and write with that revision.
    """

    def __init__(self, detail: str, status: Optional[int] = 412, current_revision: Optional[int] = None) -> None:
        super().__init__(detail, status)
        self.current_revision = current_revision


class Compacted(KvsError):
    """410: a watch asked for changes after a revision that the server's
    history no longer holds. List the keys again (they reflect every
    change), then watch from the revision of that listing.

    Attributes:
        oldest: the oldest revision the server's history still holds.
    """

    def __init__(self, detail: str, status: Optional[int] = 410, oldest: int = 0) -> None:
        super().__init__(detail, status)
        self.oldest = oldest


class PayloadTooLarge(KvsError):
    """413: the request body is over the server's ``--max-body-bytes``."""


class Unavailable(KvsError):
    """503: the server is still replaying its log, or could not make a write
    durable, or it is a follower that has not yet reached the revision a
    read asked for (``read_your_writes=True``). Nothing was applied;
    retrying later is expected to succeed.

    Attributes:
        retry_after: seconds the server asked us to wait (its ``Retry-After``
            header), or ``None`` if it gave none.
    """

    def __init__(
        self,
        detail: str,
        status: Optional[int] = 503,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(detail, status)
        self.retry_after = retry_after


class OutcomeUnknown(KvsError):
    """504: the write may or may not have been applied.

    Its batch was sent to the transaction log, and the server could not learn
    in time whether it became durable; if it did, the server applies it once
    the log is back. Retrying a write that is not idempotent (an increment)
    may apply it twice: read the key first. A gateway's own 504 means the same
    and raises this too. Not an :class:`Unavailable`, so that code retrying
    those does not retry this.
    """

    def __init__(self, detail: str, status: Optional[int] = 504) -> None:
        super().__init__(detail, status)


class TooManyRedirects(KvsError):
    """Servers redirected the call (307 or 308, as a follower redirects a
    write to the primary) more than :data:`kvs_client.MAX_REDIRECTS` times
    in a row: a loop, such as two followers that each take the other for
    the primary. None of the servers that redirected a write applied it.

    Attributes:
        location: where the redirect that was not followed pointed.
    """

    def __init__(self, detail: str, status: Optional[int] = 307, location: str = "") -> None:
        super().__init__(detail, status)
        self.location = location


class KvsConnectionError(KvsError, ConnectionError):
    """The server could not be reached or did not answer in time, or the TLS
    handshake failed (its certificate is not from the trusted CA, see
    ``ca_file=``; the message then says ``CERTIFICATE_VERIFY_FAILED``).

    Also a builtin :class:`ConnectionError`, so generic network handling
    catches it too. ``status`` is always ``None``.
    """
