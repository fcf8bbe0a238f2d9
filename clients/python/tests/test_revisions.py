"""Revisions, conditional writes, paging, expiry, transactions and watch,
against a real kvs-server; and the watch's reconnection against scripted
servers that drop it on purpose.

Tests taking ``kvs`` run with :class:`Client` and :class:`AsyncClient`.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, List, Tuple

import pytest

from kvs_client import (
    AsyncClient,
    Change,
    Client,
    Compacted,
    Compare,
    Conflict,
    Forbidden,
    Precondition,
    PreconditionFailed,
    Revised,
    TxnOp,
    protocol,
)

# ---------------------------------------------------------------- revisions


def test_a_read_with_its_revision_moves_on_with_each_write(kvs: Any, key: str) -> None:
    assert kvs.get_revised("int", key) is None
    first = kvs.put("int", key, 1, condition=Precondition.ABSENT)
    assert kvs.get_revised("int", key) == Revised(1, first, created=first)
    kvs.int_put(key + "_other", 0)
    second = kvs.put("int", key, 2, condition=Precondition.revision(first))
    assert second > first + 1
    assert kvs.get_revised("int", key) == Revised(2, second, created=first)
    assert kvs.int_delete(key)
    third = kvs.put("int", key, 3)
    assert kvs.get_revised("int", key) == Revised(3, third, created=third)
    kvs.map_put(key, {"a": "b"})
    found = kvs.get_revised("map", key)
    assert found.value == {"a": "b"} and found.revision > second


def test_a_stale_revision_raises_precondition_failed_with_the_current_one(kvs: Any, key: str) -> None:
    old = kvs.put("str", key, "a")
    now = kvs.put("str", key, "b", condition=Precondition.revision(old))
    with pytest.raises(PreconditionFailed) as error:
        kvs.put("str", key, "c", condition=Precondition.revision(old))
    assert error.value.status == 412
    assert error.value.current_revision == now
    assert str(now) in error.value.detail
    assert kvs.str_get(key) == "b"

    with pytest.raises(PreconditionFailed) as error:
        kvs.delete_if("str", key, Precondition.revision(old))
    assert error.value.current_revision == now
    deleted = kvs.delete_if("str", key, Precondition.revision(now))
    assert deleted.changed and deleted.key_revision is None and deleted.revision > now
    assert kvs.str_get(key) is None


def test_create_only_and_must_exist(kvs: Any, key: str) -> None:
    with pytest.raises(PreconditionFailed) as error:
        kvs.put("int", key, 1, condition=Precondition.PRESENT)
    assert error.value.current_revision is None
    created = kvs.put("int", key, 1, condition=Precondition.ABSENT)
    with pytest.raises(PreconditionFailed) as error:
        kvs.put("int", key, 2, condition=Precondition.ABSENT)
    assert error.value.current_revision == created
    assert kvs.int_get(key) == 1


def test_fields_and_members_are_written_on_a_condition_on_their_key(kvs: Any, key: str) -> None:
    made = kvs.map_field_put_if(key, "f", "1", Precondition.ABSENT)
    assert made.changed and made.key_revision == made.revision
    with pytest.raises(PreconditionFailed):
        kvs.map_field_put_if(key, "g", "2", Precondition.ABSENT)
    assert kvs.map_field_delete_if(key, "f", Precondition.revision(made.revision)).changed
    assert kvs.map_get(key) == {}

    added = kvs.set_add_if(key, "x", Precondition.ABSENT)
    again = kvs.set_add_if(key, "x", Precondition.revision(added.revision))
    assert added.changed and not again.changed and again.key_revision == added.revision
    with pytest.raises(PreconditionFailed):
        kvs.set_remove_if(key, "x", Precondition.revision(added.revision - 1))
    assert kvs.set_remove_if(key, "x", Precondition.PRESENT).changed


def test_a_transactions_put_with_a_ttl_expires(kvs: Any, key: str) -> None:
    outcome = kvs.txn(success=[TxnOp.put("int", key, 1, ttl=3600)])
    found = kvs.get_revised("int", key)
    assert found.revision == outcome.revision and found.expires_at is not None


@pytest.mark.parametrize("ttl", [0, -1, 1.5, True])
def test_a_ttl_that_is_not_a_positive_whole_number_is_refused_before_sending(ttl: Any) -> None:
    with pytest.raises(ValueError):
        protocol.put("int", "k", 1, ttl=ttl)
    with pytest.raises(ValueError):
        protocol.int_put("k", 1, ttl=ttl)


def test_a_key_stored_with_a_ttl_says_when_it_expires_until_a_put_makes_it_permanent(kvs: Any, key: str) -> None:
    before = datetime.now(timezone.utc)
    revision = kvs.put("str", key, "x", ttl=3600)
    found = kvs.get_revised("str", key)
    assert found.revision == revision
    assert before + timedelta(seconds=3599) <= found.expires_at <= datetime.now(timezone.utc) + timedelta(seconds=3601)
    kvs.str_put(key, "y")
    assert kvs.get_revised("str", key).expires_at is None
    kvs.int_put(key, 5, ttl=60)
    assert kvs.get_revised("int", key).expires_at is not None


def test_the_servers_expiry_time_parses_as_utc() -> None:
    assert protocol.parse_time("2026-12-01T15:04:05.123Z") == datetime(
        2026, 12, 1, 15, 4, 5, 123000, tzinfo=timezone.utc
    )
    with pytest.raises(ValueError):
        protocol.parse_time("2026-12-01T15:04:05")


# ---------------------------------------------------------------- paging


def test_pages_say_whether_another_follows_and_where(kvs: Any, key: str) -> None:
    for suffix in "abcde":
        kvs.int_put(f"{key}_{suffix}", 0)
    first = kvs.keys_page("int", prefix=key, limit=2)
    assert (first.keys, first.last, first.next_after) == ([f"{key}_a", f"{key}_b"], False, f"{key}_b")
    rest = kvs.keys_page("int", prefix=key, after=first.next_after, limit=3)
    assert (rest.keys, rest.last, rest.next_after) == ([f"{key}_c", f"{key}_d", f"{key}_e"], True, None)


def test_iter_keys_reads_every_page_past_the_servers_default(client: Client, base_url: str, key: str) -> None:
    want = [f"{key}_{i:05}" for i in range(1203)]

    async def put_all() -> None:
        async with AsyncClient(base_url) as kvs:
            limit = asyncio.Semaphore(16)

            async def put(k: str) -> None:
                async with limit:
                    await kvs.uint_put(k, 1)

            await asyncio.gather(*(put(k) for k in want))

    asyncio.run(put_all())
    assert list(client.iter_keys("uint", prefix=key)) == want
    assert list(client.iter_keys("uint", prefix=key, after=want[1100])) == want[1101:]


@pytest.mark.asyncio
async def test_the_async_client_iterates_every_key_too(base_url: str, key: str) -> None:
    async with AsyncClient(base_url) as kvs:
        for i in range(5):
            await kvs.str_put(f"{key}_{i}", "x")
        assert [k async for k in kvs.iter_keys("str", prefix=key)] == [f"{key}_{i}" for i in range(5)]


# ---------------------------------------------------------------- transactions


def test_transaction_bodies_are_the_servers_json() -> None:
    op = protocol.txn(
        compare=[Compare.revision("int", "a", 12), Compare.absent("str", "b"), Compare.value("set", "c", {"y", "x"})],
        success=[TxnOp.put("float", "a", 0.5, ttl=9), TxnOp.incr("n", -2), TxnOp.delete_field("m", "f")],
        failure=[TxnOp.get("int", "a")],
    )
    assert op.request.method == "POST" and op.request.path == "/txn"
    assert protocol.json.loads(op.request.content) == {
        "compare": [
            {"type": "int", "key": "a", "revision": 12},
            {"type": "str", "key": "b", "absent": True},
            {"type": "set", "key": "c", "value": ["x", "y"]},
        ],
        "success": [
            {"op": "put", "type": "float", "key": "a", "value": 0.5, "ttl": 9},
            {"op": "incr", "key": "n", "by": -2},
            {"op": "delete_field", "key": "m", "field": "f"},
        ],
        "failure": [{"op": "get", "type": "int", "key": "a"}],
    }
    with pytest.raises(ValueError):
        TxnOp.put("float", "a", float("nan"))
    with pytest.raises(ValueError):
        TxnOp.from_json({"op": "explode", "key": "a"})


def test_a_transaction_runs_its_success_branch_at_one_revision(kvs: Any, key: str) -> None:
    a = kvs.put("int", key, 12)
    kvs.map_put(key, {"x": "1"})
    outcome = kvs.txn(
        compare=[Compare.revision("int", key, a), Compare.absent("str", key), Compare.value("int", key, 12)],
        success=[
            TxnOp.put("int", key, 13),
            TxnOp.delete("map", key),
            TxnOp.get("int", key),
            TxnOp.incr(key + "_c", 2),
            TxnOp.add_member(key, "x"),
            TxnOp.get("str", key),
        ],
        failure=[TxnOp.get("int", key)],
    )
    rev = outcome.revision
    assert outcome.succeeded
    assert outcome.results == [rev, True, Revised(13, rev), 2, True, None]
    assert kvs.get_revised("set", key).revision == rev


def test_a_failed_compare_runs_the_failure_branch_and_a_failed_op_changes_nothing(kvs: Any, key: str) -> None:
    kvs.int_put(key, 1)
    outcome = kvs.txn(
        compare=[Compare.absent("int", key)], success=[TxnOp.put("int", key, 2)], failure=[TxnOp.get("int", key)]
    )
    assert not outcome.succeeded and outcome.results[0].value == 1
    kvs.int_put(key + "_top", 2**31 - 1)
    with pytest.raises(Conflict):
        kvs.txn(success=[TxnOp.put("int", key, 3), TxnOp.incr(key + "_top", 1)])
    assert kvs.int_get(key) == 1


# ---------------------------------------------------------------- watch: parsing


def test_sse_lines_make_events_as_the_standard_says() -> None:
    lines = [
        ": heartbeat",
        "",
        "id: 5",
        "event: put",
        "data: {",
        "data: }",
        "",
        "retry: 10",
        "",
        "event: x",
        "data:y",
        "",
    ]
    assert list(protocol.sse_events(lines)) == [
        protocol.SseEvent("5", "put", "{\n}"),
        protocol.SseEvent("5", "x", "y"),
    ]


def test_each_kind_of_watch_event_parses_into_its_changes() -> None:
    def event(rev: int, kind: str, data: str) -> Any:
        return protocol.parse_event(protocol.SseEvent(str(rev), kind, data))

    assert event(5, "put", '{"type":"set","key":"a","value":["x"],"revision":5}').changes == [
        Change("put", "set", "a", value={"x"})
    ]
    many = event(
        9,
        "changes",
        '{"revision":9,"changes":[{"kind":"delete","type":"int","key":"k","revision":9},'
        '{"kind":"member","type":"set","key":"s","member":"x","present":false,"revision":9},'
        '{"kind":"field","type":"map","key":"m","field":"f","value":null,"revision":9},'
        '{"kind":"expire","type":"str","key":"t","revision":9}]}',
    )
    assert many.revision == 9
    assert many.changes == [
        Change("delete", "int", "k"),
        Change("member", "set", "s", member="x", present=False),
        Change("field", "map", "m", field="f"),
        Change("expire", "str", "t"),
    ]
    assert [c.to_json()["kind"] for c in many.changes] == ["delete", "member", "field", "expire"]


# ---------------------------------------------------------------- watch: reconnection


class ScriptedServer:
    """Takes one connection per reply, in turn; answers each with its reply
    verbatim and closes it; records each request's head."""

    def __init__(self, replies: List[str]) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.heads: List[str] = []
        self._thread = threading.Thread(target=self._serve, args=(replies,), daemon=True)
        self._thread.start()

    def _serve(self, replies: List[str]) -> None:
        with self._listener:
            for reply in replies:
                sock, _ = self._listener.accept()
                with sock:
                    head = b""
                    while b"\r\n\r\n" not in head:
                        chunk = sock.recv(4096)
                        if not chunk:
                            break
                        head += chunk
                    self.heads.append(head.decode("latin-1").lower())
                    sock.sendall(reply.encode())

    def join(self) -> None:
        self._thread.join(timeout=10)


def sse(*events: str, revision: int = 0) -> str:
    head = (
        f"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\nkvs-revision: {revision}\r\n\r\n"
    )
    return head + "".join(e + "\n\n" for e in events)


def problem(status: str, body: str, *headers: str) -> str:
    lines = "".join(h + "\r\n" for h in headers)
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/problem+json\r\nconnection: close\r\n{lines}"
        f"content-length: {len(body)}\r\n\r\n{body}"
    )


def put_event(rev: int, key: str) -> str:
    return f'id: {rev}\nevent: put\ndata: {{"type":"int","key":"{key}","value":{rev},"revision":{rev}}}'


def test_a_dropped_watch_resumes_after_its_last_event_with_no_duplicate() -> None:
    server = ScriptedServer(
        [sse(put_event(1, "a"), ": hb", put_event(2, "b")), sse(put_event(2, "b"), put_event(3, "c"))]
    )
    with Client(server.url) as kvs:
        events = kvs.watch("int", prefix="p")
        got = [next(events).revision for _ in range(3)]
        events.close()
    server.join()
    assert got == [1, 2, 3]
    assert server.heads[0].startswith("get /kvs/v1-0-0/watch?type=int&prefix=p ")
    assert "last-event-id" not in server.heads[0]
    assert "last-event-id: 2\r\n" in server.heads[1]


def test_a_watch_from_now_that_drops_early_resumes_from_its_first_answer_and_waits_out_a_503() -> None:
    busy = problem("503 Service Unavailable", '{"status":503,"detail":"replaying"}', "retry-after: 1")
    server = ScriptedServer([sse(": hb", revision=5), busy, sse(put_event(6, "a"), revision=6)])
    with Client(server.url) as kvs:
        events = kvs.watch()
        assert next(events).revision == 6
        events.close()
    server.join()
    assert "last-event-id" not in server.heads[0]
    assert all("last-event-id: 5\r\n" in head for head in server.heads[1:])


def test_a_watch_that_cannot_connect_at_first_raises() -> None:
    server = ScriptedServer([problem("403 Forbidden", '{"status":403,"detail":"no"}')])
    with Client(server.url) as kvs, pytest.raises(Forbidden):
        next(kvs.watch())
    server.join()


def test_a_watch_from_before_the_history_raises_compacted() -> None:
    gone = problem("410 Gone", '{"status":410,"detail":"start after revision 40","oldest":40}')
    server = ScriptedServer([gone])
    with Client(server.url) as kvs, pytest.raises(Compacted) as error:
        next(kvs.watch(since=7))
    server.join()
    assert (error.value.status, error.value.oldest) == (410, 40)
    assert "last-event-id: 7\r\n" in server.heads[0]


class Proxy:
    """A TCP proxy to a real server whose open connections the test can cut."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self._upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._open: List[Tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self._listener.accept()
            server = socket.create_connection(self._upstream)
            with self._lock:
                self._open.append((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass

    def cut(self) -> None:
        with self._lock:
            pairs, self._open = self._open, []
        for pair in pairs:
            for sock in pair:
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def watch_events(client: Client) -> Iterator[Any]:
    opened: List[Any] = []

    def start(kvs: Client, **filters: Any) -> Any:
        events = kvs.watch(**filters)
        opened.append(events)
        return events

    yield start
    for events in opened:
        events.close()


def test_watch_reports_each_kind_of_change(client: Client, key: str, watch_events: Any) -> None:
    first = client.put("int", key, 0, condition=Precondition.ABSENT)
    # The iterator connects when first advanced: from `first` on, whenever that is.
    events = watch_events(client, prefix=key, since=first - 1)
    assert next(events).revision == first
    client.int_put(key + "_1", 5)
    client.set_add(key + "_2", "x")
    client.map_field_put(key + "_3", "f", "v")
    client.int_delete(key + "_1")
    got = [next(events) for _ in range(4)]
    assert [e.revision for e in got] == sorted(e.revision for e in got)
    assert [c for e in got for c in e.changes] == [
        Change("put", "int", key + "_1", value=5),
        Change("member", "set", key + "_2", member="x", present=True),
        Change("field", "map", key + "_3", field="f", value="v"),
        Change("delete", "int", key + "_1"),
    ]


def test_a_watch_cut_off_from_a_real_server_resumes_with_no_gap_and_no_duplicate(
    client: Client, base_url: str, key: str, watch_events: Any
) -> None:
    proxy = Proxy(base_url)
    start = client.put("int", key, 0)
    with Client(proxy.url) as watching:
        events = watch_events(watching, type="int", prefix=key, since=start - 1)
        seen = [next(events).revision]
        for round_ in range(3):
            proxy.cut()
            for i in range(5):
                client.int_put(key, round_ * 10 + i)
            seen.extend(next(events).revision for _ in range(5))
    assert seen == list(range(start, start + 16))
