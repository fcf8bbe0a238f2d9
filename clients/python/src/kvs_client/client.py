"""The synchronous :class:`Client` and asynchronous :class:`AsyncClient`.

Both are thin transports around :mod:`kvs_client.protocol`: each operation is
listed once, in :class:`_Operations`, as an :class:`_Op` descriptor. Read
through a ``Client`` it is a plain method; read through an ``AsyncClient`` it
is a coroutine method. Either way it builds the protocol's request, sends it
with httpx, and parses the answer with the protocol's parser.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import ssl
import sys
import time
from types import TracebackType
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Coroutine,
    Dict,
    Generic,
    Iterator,
    Mapping,
    Optional,
    Type,
    TypeVar,
    Union,
    overload,
)

import httpx

from . import protocol
from ._version import __version__
from .errors import KvsConnectionError, KvsError, OutcomeUnknown, TooManyRedirects, Unavailable
from .followers import Session, next_request
from .protocol import BASE_PATH, REVISION, Event, Operation, ValueType

if sys.version_info >= (3, 10):
    from typing import ParamSpec
else:  # pragma: no cover
    from typing_extensions import ParamSpec

__all__ = ["Client", "AsyncClient", "DEFAULT_URL", "DEFAULT_TIMEOUT", "WATCH_IDLE_TIMEOUT"]

DEFAULT_URL = "http://127.0.0.1:8080"
"""Where a KVS server listens by default (without the base path)."""

DEFAULT_TIMEOUT = 5.0
"""Seconds to wait for connecting, sending, or each read."""

WATCH_IDLE_TIMEOUT = 60.0
"""Seconds a watch waits for anything from the server, a heartbeat
included (one every 15 seconds by default), before it takes the connection
for dead and resumes on a new one."""

_FIRST_BACKOFF = 0.1
"""Seconds before a watch's first reconnection; doubled after each failed
attempt in a row, up to :data:`_MAX_BACKOFF`."""
_MAX_BACKOFF = 5.0

P = ParamSpec("P")
T = TypeVar("T")


class _Op(Generic[P, T]):
    """One protocol operation, exposed as a method of both clients."""

    def __init__(self, build: Callable[P, Operation[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__
        self.__name__ = build.__name__
        self.__wrapped__ = build
        # What help() and inspect should show: the protocol function's
        # parameters, returning the parsed result rather than the Operation.
        signature = inspect.signature(build)
        returns = signature.return_annotation
        if isinstance(returns, str) and returns.startswith("Operation[") and returns.endswith("]"):
            returns = returns[len("Operation[") : -1]
        self.signature = signature.replace(return_annotation=returns)
        self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        self.__signature__ = self.signature.replace(parameters=[self_parameter, *self.signature.parameters.values()])

    def __call__(self, client: Any, *args: Any, **kwargs: Any) -> Any:
        """Call through the class, as ``Client.int_get(client, key)``."""
        return client._bind(self.build)(*args, **kwargs)

    @overload
    def __get__(self, obj: None, owner: Optional[type] = None) -> _Op[P, T]: ...

    @overload
    def __get__(self, obj: Client, owner: Optional[type] = None) -> Callable[P, T]: ...

    @overload
    def __get__(self, obj: AsyncClient, owner: Optional[type] = None) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, obj: Any, owner: Optional[type] = None) -> Any:
        if obj is None:
            return self
        method = obj._bind(self.build)
        functools.update_wrapper(method, self.build)
        method.__signature__ = self.signature
        return method


class _Operations:
    """Every operation, listed once; documented in :mod:`kvs_client.protocol`."""

    int_put = _Op(protocol.int_put)
    int_get = _Op(protocol.int_get)
    int_delete = _Op(protocol.int_delete)
    int_incr = _Op(protocol.int_incr)

    uint_put = _Op(protocol.uint_put)
    uint_get = _Op(protocol.uint_get)
    uint_delete = _Op(protocol.uint_delete)

    float_put = _Op(protocol.float_put)
    float_get = _Op(protocol.float_get)
    float_delete = _Op(protocol.float_delete)

    str_put = _Op(protocol.str_put)
    str_get = _Op(protocol.str_get)
    str_delete = _Op(protocol.str_delete)

    map_put = _Op(protocol.map_put)
    map_get = _Op(protocol.map_get)
    map_delete = _Op(protocol.map_delete)
    map_field_get = _Op(protocol.map_field_get)
    map_field_put = _Op(protocol.map_field_put)
    map_field_delete = _Op(protocol.map_field_delete)

    set_put = _Op(protocol.set_put)
    set_get = _Op(protocol.set_get)
    set_delete = _Op(protocol.set_delete)
    set_contains = _Op(protocol.set_contains)
    set_add = _Op(protocol.set_add)
    set_remove = _Op(protocol.set_remove)

    map_field_put_if = _Op(protocol.map_field_put_if)
    map_field_delete_if = _Op(protocol.map_field_delete_if)
    set_add_if = _Op(protocol.set_add_if)
    set_remove_if = _Op(protocol.set_remove_if)

    get_revised = _Op(protocol.get_revised)
    put = _Op(protocol.put)
    delete_if = _Op(protocol.delete_if)
    keys_page = _Op(protocol.keys_page)
    keys = _Op(protocol.keys)
    delete = _Op(protocol.delete)
    delete_everywhere = _Op(protocol.delete_everywhere)
    txn = _Op(protocol.txn)

    echo = _Op(protocol.echo)
    hello = _Op(protocol.hello)
    fibo = _Op(protocol.fibo)
    healthz = _Op(protocol.healthz)
    readyz = _Op(protocol.readyz)


_TOKEN = re.compile(r"[\x21-\x7e]+")
"""What a token may be: printable ASCII without spaces (so that it fits in
a header)."""


def _bearer(token: str) -> str:
    """The ``Authorization`` value; the error does not quote the token."""
    if not isinstance(token, str):
        raise TypeError(f"token must be a str, not {type(token).__name__}")
    if not _TOKEN.fullmatch(token):
        raise ValueError("the token must be non-empty printable ASCII without spaces")
    return f"Bearer {token}"


def _httpx_options(
    base_url: str,
    timeout: Optional[float],
    headers: Optional[Mapping[str, str]],
    token: Optional[str],
    ca_file: Optional[Union[str, os.PathLike[str]]],
) -> Dict[str, Any]:
    all_headers = httpx.Headers({"User-Agent": f"kvs-client-python/{__version__}"})
    all_headers.update(headers or {})
    if token is not None:
        all_headers["Authorization"] = _bearer(token)
    options: Dict[str, Any] = {
        "base_url": base_url.rstrip("/") + BASE_PATH,
        "timeout": timeout,
        "headers": all_headers,
    }
    if ca_file is not None:
        options["verify"] = ssl.create_default_context(cafile=os.fspath(ca_file))
    return options


def _send_options(request: protocol.Request) -> Dict[str, Any]:
    """What ``build_request`` takes for ``request``."""
    return {
        "method": request.method,
        "url": request.path,
        "content": request.content,
        "params": dict(request.params) or None,
        "headers": dict(request.headers) or None,
    }


def _connection_error(exc: httpx.TransportError, base_url: httpx.URL) -> KvsConnectionError:
    reason = str(exc) or type(exc).__name__
    return KvsConnectionError(f"cannot reach KVS at {base_url}: {reason}")


def _retried(error: KvsError) -> bool:
    """Whether a watch tries to reconnect after ``error``: the server is
    away (unreachable, restarting, full of watchers), not refusing."""
    return isinstance(error, (KvsConnectionError, Unavailable, OutcomeUnknown)) or error.status == 502


def _backoff(failures: int) -> float:
    return float(min(_FIRST_BACKOFF * 2 ** min(failures - 1, 16), _MAX_BACKOFF))


class Client(_Operations):
    """A blocking KVS client.

    >>> with Client("http://127.0.0.1:8080") as kvs:  # doctest: +SKIP
    ...     kvs.int_put("counter", 5)
    ...     kvs.int_get("counter")
    5

    ``base_url`` is the server's address without the base path
    (``/kvs/v1-0-0`` is appended). ``timeout`` is in seconds (``None`` for
    none); ``headers`` are sent with every request.

    ``token`` is sent as ``Authorization: Bearer <token>`` with every request
    (replacing one in ``headers``), for a server started with
    ``--auth-tokens``: without it such a server raises :class:`Unauthorized`
    for everything but ``healthz``, and a read-only token raises
    :class:`Forbidden` for writes. ``ca_file`` is a PEM file of the CA that
    an ``https`` server's certificate must come from (the ``ca.crt`` of
    ``kvs-certs``); without it, the public CAs that httpx trusts (certifi)
    are used. A CA file that cannot be read or holds no certificate raises
    :class:`OSError` (:class:`ssl.SSLError` for the latter) here; a token
    that cannot be a header value raises :class:`ValueError`.

    >>> Client("https://kvs.internal:8080", token="s3cret", ca_file="certs/ca.crt")  # doctest: +SKIP

    A follower (a kvs-server started with ``--role follower``) answers every
    write ``307 Temporary Redirect`` to the primary; the client sends the
    write there again, with its method, body and headers, up to
    :data:`~kvs_client.MAX_REDIRECTS` times in a row
    (:class:`TooManyRedirects` past that). It follows 307 and 308 only.
    The token goes along, since a follower and its primary are hosts of
    one service: from a server that had it to the one it redirects to, but
    never from ``https`` down to plain ``http``.

    ``read_your_writes=True`` is for a client that reads from a follower,
    which is a moment behind the primary: the client keeps the highest
    ``KVS-Revision`` its own writes were answered with, and sends it as
    ``KVS-Min-Revision`` on every read (not ``healthz``, ``readyz``). A
    follower that has not applied that revision yet waits briefly, then
    answers 503 with ``Retry-After``: :class:`Unavailable` with
    ``retry_after``. Off by default.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        headers: Optional[Mapping[str, str]] = None,
        token: Optional[str] = None,
        ca_file: Optional[Union[str, os.PathLike[str]]] = None,
        read_your_writes: bool = False,
    ) -> None:
        self._http = httpx.Client(**_httpx_options(base_url, timeout, headers, token, ca_file))
        self._session = Session(read_your_writes)

    @property
    def base_url(self) -> str:
        """The server's URL including the base path."""
        return str(self._http.base_url)

    def _bind(self, build: Callable[P, Operation[T]]) -> Callable[P, T]:
        def method(*args: P.args, **kwargs: P.kwargs) -> T:
            return self._execute(build(*args, **kwargs))

        return method

    def _execute(self, op: Operation[T]) -> T:
        try:
            response = self._send(op.request)
        except httpx.TransportError as exc:
            raise _connection_error(exc, self._http.base_url) from exc
        return op.parse(response)

    def _send(
        self, request: protocol.Request, *, stream: bool = False, timeout: Any = httpx.USE_CLIENT_DEFAULT
    ) -> httpx.Response:
        """Sends ``request``, following redirects and keeping
        read-your-writes (see :mod:`kvs_client.followers`)."""
        outgoing = self._http.build_request(**_send_options(request), timeout=timeout)
        self._session.before(outgoing, request.probe)
        hops = 0
        while True:
            response = self._http.send(outgoing, stream=stream)
            try:
                following = next_request(outgoing, response, hops)
            except TooManyRedirects:
                response.close()
                raise
            if following is None:
                break
            response.close()
            outgoing, hops = following, hops + 1
        self._session.after(outgoing, response)
        return response

    def iter_keys(
        self,
        type: ValueType,
        prefix: Optional[str] = None,
        after: Optional[str] = None,
        *,
        page_size: Optional[int] = None,
    ) -> Iterator[str]:
        """Every key of ``type`` that starts with ``prefix`` (and sorts
        after ``after``), sorted, read page by page (``page_size`` keys
        each, default the server's) until the server says the page is the
        last. Pages are read at different revisions: a key written or
        deleted meanwhile may or may not be listed."""
        while True:
            page = self.keys_page(type, prefix=prefix, after=after, limit=page_size)
            yield from page.keys
            if page.last:
                return
            after = page.next_after

    def watch(
        self,
        type: Optional[ValueType] = None,
        prefix: Optional[str] = None,
        since: Optional[int] = None,
        *,
        idle_timeout: float = WATCH_IDLE_TIMEOUT,
    ) -> Iterator[Event]:
        """The changes to keys of ``type`` (default: every type) that start
        with ``prefix``, after revision ``since`` (default: from now on): one
        :class:`Event` per revision, in revision order, each once durable.

        It resumes by itself: when the connection drops, or stays silent
        for ``idle_timeout`` seconds, it reconnects (after 0.1 s, then twice
        as long after each failed attempt, up to 5 s) with
        ``Last-Event-ID`` set to the last revision it gave, so that no event
        is missed and none comes twice. It keeps trying while the server is
        away (unreachable, or answering 503 while it restarts). It raises
        what the first connection meets, a refusal (401, 403, 404 for an
        unknown type), and :class:`Compacted` when the revision to resume
        from is older than the server's history; an event it cannot read
        (of a kind it does not know, say) raises :class:`KvsError`.

        Nothing is sent until the iterator is first advanced: a watch from
        now on starts from the store's revision at that moment, and if it
        drops before its first event, resumes from the revision its first
        answer reflected. Closing the iterator closes the connection.

        >>> for event in kvs.watch("int", prefix="user_"):  # doctest: +SKIP
        ...     print(event.revision, event.changes)
        """
        last, start = since, None
        connected, failures = False, 0
        timeout = httpx.Timeout(self._http.timeout.connect, read=idle_timeout)
        while True:
            if failures:
                time.sleep(_backoff(failures))
            request = protocol.watch_request(type, prefix, last if last is not None else start)
            try:
                response = self._send(request, stream=True, timeout=timeout)
                try:
                    if not response.is_success:
                        response.read()
                        raise protocol.error_for(response)
                    connected = True
                    if last is None and start is None and REVISION in response.headers:
                        start = int(response.headers[REVISION])
                    for sse in protocol.sse_events(response.iter_lines()):
                        if sse.event == "error":  # the server gave up on this stream: resume
                            break
                        event = protocol.parse_event(sse)
                        if last is not None and event.revision <= last:
                            continue
                        last, failures = event.revision, 0
                        yield event
                finally:
                    response.close()
            except httpx.TransportError as exc:
                if not connected:
                    raise _connection_error(exc, self._http.base_url) from exc
            except KvsError as error:
                if not connected or not _retried(error):
                    raise
            failures += 1

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"


class AsyncClient(_Operations):
    """An asyncio KVS client: the same operations as :class:`Client`, as
    coroutines.

    >>> async with AsyncClient() as kvs:  # doctest: +SKIP
    ...     await kvs.int_incr("counter")
    1

    It takes the same arguments as :class:`Client`, and follows redirects
    and reads its own writes as it does.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        headers: Optional[Mapping[str, str]] = None,
        token: Optional[str] = None,
        ca_file: Optional[Union[str, os.PathLike[str]]] = None,
        read_your_writes: bool = False,
    ) -> None:
        self._http = httpx.AsyncClient(**_httpx_options(base_url, timeout, headers, token, ca_file))
        self._session = Session(read_your_writes)

    @property
    def base_url(self) -> str:
        """The server's URL including the base path."""
        return str(self._http.base_url)

    def _bind(self, build: Callable[P, Operation[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        async def method(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self._execute(build(*args, **kwargs))

        return method

    async def _execute(self, op: Operation[T]) -> T:
        try:
            response = await self._send(op.request)
        except httpx.TransportError as exc:
            raise _connection_error(exc, self._http.base_url) from exc
        return op.parse(response)

    async def _send(self, request: protocol.Request) -> httpx.Response:
        """Sends ``request`` as :meth:`Client._send` does."""
        outgoing = self._http.build_request(**_send_options(request))
        self._session.before(outgoing, request.probe)
        hops = 0
        while True:
            response = await self._http.send(outgoing)
            following = next_request(outgoing, response, hops)
            if following is None:
                break
            outgoing, hops = following, hops + 1
        self._session.after(outgoing, response)
        return response

    async def iter_keys(
        self,
        type: ValueType,
        prefix: Optional[str] = None,
        after: Optional[str] = None,
        *,
        page_size: Optional[int] = None,
    ) -> AsyncIterator[str]:
        """Every key of ``type`` that starts with ``prefix`` (and sorts
        after ``after``), as :meth:`Client.iter_keys`."""
        while True:
            page = await self.keys_page(type, prefix=prefix, after=after, limit=page_size)
            for key in page.keys:
                yield key
            if page.last:
                return
            after = page.next_after

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({self.base_url!r})"
