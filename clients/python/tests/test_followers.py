"""Followers: the clients and the command line against a real kvs-server
behind a stand-in follower, a small HTTP server that answers every request
``307 Temporary Redirect`` to it (or, behind, answers reads 503) and
records what it was sent.

Every test taking ``connect`` runs with :class:`Client` and with
:class:`AsyncClient`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional

import pytest

from conftest import AsyncAsSync
from kvs_client import MAX_REDIRECTS, Client, KvsError, Precondition, TooManyRedirects, TxnOp, Unavailable, cli

if TYPE_CHECKING:
    from conftest import SecureServer


@dataclass
class Seen:
    method: str
    path: str
    headers: Dict[str, str]


@dataclass
class Follower:
    """A running stand-in follower."""

    url: str
    primary: str
    status: int = 307
    """What it answers writes (and, unless behind, reads) with."""
    behind: bool = False
    """Whether it answers reads 503, as a follower behind their revision."""
    seen: List[Seen] = field(default_factory=list)

    def last_min_revision(self) -> Optional[str]:
        return self.seen[-1].headers.get("kvs-min-revision")


def _handler(follower: Follower) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            follower.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
            if follower.behind and self.command == "GET":
                body = json.dumps({"type": "about:blank", "status": 503, "detail": "behind"}).encode()
                self.send_response(503)
                self.send_header("Retry-After", "1")
                self.send_header("Content-Type", "application/problem+json")
            else:
                body = b""
                self.send_response(follower.status)
                self.send_header("Location", follower.primary + self.path)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_DELETE = answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def follower() -> Iterator[Callable[..., Follower]]:
    """Starts stand-in followers of a primary's URL (``None``: of itself, a
    loop); they are stopped afterwards."""
    servers: List[ThreadingHTTPServer] = []

    def start(primary: Optional[str], **options: Any) -> Follower:
        made = Follower("", "", **options)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(made))
        made.url = f"http://127.0.0.1:{server.server_address[1]}"
        made.primary = (primary or made.url).rstrip("/")
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return made

    try:
        yield start
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture(params=["sync", "async"])
def connect(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Makes clients of a URL with options: :class:`Client`, then
    :class:`AsyncClient` behind a sync facade. They are closed afterwards."""
    opened: List[Any] = []

    def make(url: str, **options: Any) -> Any:
        made: Any = Client(url, **options) if request.param == "sync" else AsyncAsSync(url, **options)
        opened.append(made)
        return made

    try:
        yield make
    finally:
        for made in opened:
            made.close()


def test_writes_sent_to_a_follower_land_on_the_primary_with_their_bodies(
    connect: Callable[..., Any], follower: Callable[..., Follower], client: Client, base_url: str, key: str
) -> None:
    f = follower(base_url)
    kvs = connect(f.url)
    kvs.int_put(key, 5)
    assert kvs.int_incr(key, by=3) == 8
    kvs.map_field_put(key, "f", "v")
    assert kvs.set_add(key, "a") is True
    kvs.str_put(key, "x")
    assert kvs.str_delete(key) is True
    outcome = kvs.txn(success=[TxnOp.put("uint", key, 7)])
    assert outcome.succeeded
    revision = kvs.put("float", key, 1.5, ttl=60)
    assert kvs.int_get(key) == 8  # reads are redirected too

    assert client.int_get(key) == 8
    assert client.map_field_get(key, "f") == "v"
    assert client.set_contains(key, "a") is True
    assert client.str_get(key) is None
    assert client.uint_get(key) == 7
    read = client.get_revised("float", key)
    assert (read.revision, read.expires_at is not None) == (revision, True)
    assert [s.method for s in f.seen] == ["PUT", "POST", "PUT", "PUT", "PUT", "DELETE", "POST", "PUT", "GET"]
    assert f.seen[-2].path.endswith(f"/float/{key}?ttl=60")


def test_a_redirected_write_keeps_its_condition(
    connect: Callable[..., Any], follower: Callable[..., Follower], client: Client, base_url: str, key: str
) -> None:
    kvs = connect(follower(base_url).url)
    revision = kvs.put("int", key, 1, condition=Precondition.ABSENT)
    with pytest.raises(KvsError) as raised:
        kvs.put("int", key, 2, condition=Precondition.revision(revision + 100))
    assert raised.value.status == 412
    assert client.int_get(key) == 1


def test_the_token_goes_with_a_redirect_to_the_primary_on_another_host(
    connect: Callable[..., Any], follower: Callable[..., Follower], secure_server: SecureServer, key: str
) -> None:
    f = follower(secure_server.url)
    kvs = connect(f.url, token=secure_server.rw_token, ca_file=secure_server.ca_file)
    kvs.int_put(key, 7)
    with Client(secure_server.url, token=secure_server.ro_token, ca_file=secure_server.ca_file) as reader:
        assert reader.int_get(key) == 7
    assert f.seen[0].headers["authorization"] == f"Bearer {secure_server.rw_token}"


def test_a_redirect_loop_ends_with_too_many_redirects(
    connect: Callable[..., Any], follower: Callable[..., Follower], key: str
) -> None:
    f = follower(None)
    with pytest.raises(TooManyRedirects) as raised:
        connect(f.url).int_put(key, 1)
    assert raised.value.location == f"{f.url}/kvs/v1-0-0/int/{key}"
    assert "redirects" in str(raised.value)
    assert len(f.seen) == MAX_REDIRECTS + 1


@pytest.mark.parametrize("status", [301, 302, 303])
def test_a_redirect_that_would_turn_a_write_into_a_get_is_not_followed(
    status: int, connect: Callable[..., Any], follower: Callable[..., Follower], client: Client, base_url: str, key: str
) -> None:
    with pytest.raises(KvsError) as raised:
        connect(follower(base_url, status=status).url).int_put(key, 1)
    assert raised.value.status == status
    assert client.int_get(key) is None


def test_with_read_your_writes_reads_name_the_revision_of_the_last_write(
    connect: Callable[..., Any], follower: Callable[..., Follower], client: Client, base_url: str, key: str
) -> None:
    f = follower(base_url)
    kvs = connect(f.url, read_your_writes=True)
    assert kvs.int_get(key) is None
    assert f.last_min_revision() is None, "no write yet"

    first = kvs.put("int", key, 1)
    assert kvs.int_get(key) == 1
    assert f.last_min_revision() == str(first)

    client.int_put(key + "_other", 1)  # someone else's write moves the store on, not this mark
    assert kvs.keys("int", prefix=key) == [key, key + "_other"]
    assert f.last_min_revision() == str(first)

    second = kvs.put("int", key, 2, condition=Precondition.revision(first))
    assert second > first
    assert kvs.int_get(key) == 2
    assert f.last_min_revision() == str(second)

    assert kvs.healthz() is True  # a probe asks whether it serves, at any revision
    assert f.last_min_revision() is None

    plain = connect(f.url)  # off by default
    plain.int_put(key, 3)
    assert plain.int_get(key) == 3
    assert f.last_min_revision() is None


def test_a_follower_behind_the_revision_of_a_read_is_unavailable_with_its_wait(
    connect: Callable[..., Any], follower: Callable[..., Follower], base_url: str, key: str
) -> None:
    f = follower(base_url, behind=True)
    kvs = connect(f.url, read_your_writes=True)
    revision = kvs.put("int", key, 1)
    with pytest.raises(Unavailable) as raised:
        kvs.int_get(key)
    assert raised.value.retry_after == 1
    assert f.last_min_revision() == str(revision)


def test_the_command_line_writes_through_a_follower(
    follower: Callable[..., Follower], client: Client, base_url: str, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    f = follower(base_url)
    assert cli.main(["--url", f.url, "int", "put", key, "4"]) == 0
    assert client.int_get(key) == 4
    assert cli.main(["--url", follower(None).url, "int", "put", key, "5"]) != 0
    assert "redirects" in capsys.readouterr().err
