"""The client against a real kvs-server.

Every test taking ``kvs`` runs twice: with :class:`Client`, and with
:class:`AsyncClient` (driven through a sync facade, see conftest).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any, Callable, List

import pytest

from kvs_client import (
    AsyncClient,
    Client,
    Conflict,
    InvalidValue,
    KvsConnectionError,
    KvsError,
    PayloadTooLarge,
    protocol,
)

I32_MAX = 2**31 - 1
I32_MIN = -(2**31)
U32_MAX = 2**32 - 1


def f32(x: float) -> float:
    """``x`` rounded to the nearest 32-bit float."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


# ---------------------------------------------------------------- int


def test_int_put_then_get_returns_the_value(kvs: Any, key: str) -> None:
    assert kvs.int_put(key, 5) is None
    assert kvs.int_get(key) == 5


@pytest.mark.parametrize("value", [0, -7, I32_MAX, I32_MIN])
def test_int_roundtrips_the_whole_i32_range(kvs: Any, key: str, value: int) -> None:
    kvs.int_put(key, value)
    assert kvs.int_get(key) == value


@pytest.mark.parametrize("value", [I32_MAX + 1, I32_MIN - 1])
def test_int_out_of_range_raises_invalid_value_and_changes_nothing(kvs: Any, key: str, value: int) -> None:
    kvs.int_put(key, 1)
    with pytest.raises(InvalidValue) as error:
        kvs.int_put(key, value)
    assert error.value.status == 400
    assert error.value.detail
    assert kvs.int_get(key) == 1


def test_int_get_of_an_absent_key_returns_none(kvs: Any, key: str) -> None:
    assert kvs.int_get(key) is None


def test_int_delete_reports_whether_the_key_existed(kvs: Any, key: str) -> None:
    kvs.int_put(key, 1)
    assert kvs.int_delete(key) is True
    assert kvs.int_get(key) is None
    assert kvs.int_delete(key) is False


def test_int_incr_returns_the_value_after_and_starts_absent_keys_at_zero(kvs: Any, key: str) -> None:
    assert kvs.int_incr(key) == 1
    assert kvs.int_get(key) == 1
    assert kvs.int_incr(key) == 2
    assert kvs.int_get(key) == 2


def test_int_incr_by_adds_the_amount_and_returns_the_value_after(kvs: Any, key: str) -> None:
    assert kvs.int_incr(key, by=10) == 10
    assert kvs.int_incr(key, by=-3) == 7
    assert kvs.int_incr(key, 0) == 7
    assert kvs.int_get(key) == 7


@pytest.mark.parametrize("start, by", [(I32_MAX, 1), (I32_MAX - 1, 5), (I32_MIN, -1)])
def test_int_incr_overflow_raises_conflict_and_leaves_the_value(kvs: Any, key: str, start: int, by: int) -> None:
    kvs.int_put(key, start)
    with pytest.raises(Conflict) as error:
        kvs.int_incr(key, by=by)
    assert error.value.status == 409
    assert kvs.int_get(key) == start


def test_int_incr_by_an_amount_outside_i32_raises_invalid_value(kvs: Any, key: str) -> None:
    with pytest.raises(InvalidValue):
        kvs.int_incr(key, by=I32_MAX + 1)
    assert kvs.int_get(key) is None


# ---------------------------------------------------------------- uint


@pytest.mark.parametrize("value", [0, 42, U32_MAX])
def test_uint_roundtrips_the_whole_u32_range(kvs: Any, key: str, value: int) -> None:
    kvs.uint_put(key, value)
    assert kvs.uint_get(key) == value


@pytest.mark.parametrize("value", [-1, U32_MAX + 1])
def test_uint_out_of_range_raises_invalid_value(kvs: Any, key: str, value: int) -> None:
    with pytest.raises(InvalidValue):
        kvs.uint_put(key, value)
    assert kvs.uint_get(key) is None


def test_uint_delete_and_absent_get(kvs: Any, key: str) -> None:
    assert kvs.uint_get(key) is None
    kvs.uint_put(key, 3)
    assert kvs.uint_delete(key) is True
    assert kvs.uint_delete(key) is False
    assert kvs.uint_get(key) is None


# ---------------------------------------------------------------- float


@pytest.mark.parametrize("value", [1.5, -2e3, 0.0, 0.1, -7.25e-5, 123456.7])
def test_float_reads_back_as_written_when_its_shortest_text_fits_f32(kvs: Any, key: str, value: float) -> None:
    kvs.float_put(key, value)
    assert kvs.float_get(key) == value


@pytest.mark.parametrize("value", [f32(0.1), 3.4028234663852886e38, 1.401298464324817e-45, 16777216.0])
def test_float_reads_back_as_the_same_f32(kvs: Any, key: str, value: float) -> None:
    kvs.float_put(key, value)
    got = kvs.float_get(key)
    assert f32(got) == f32(value)
    assert len(repr(got)) <= len(repr(value))  # the shortest text of the f32


def test_float_is_stored_with_f32_precision(kvs: Any, key: str) -> None:
    kvs.float_put(key, 16777217.0)  # 2**24 + 1 is not an f32
    assert kvs.float_get(key) == 16777216.0


def test_float_accepts_an_int(kvs: Any, key: str) -> None:
    kvs.float_put(key, 3)
    assert kvs.float_get(key) == 3.0


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 1e39])
def test_float_that_is_not_a_finite_f32_raises_invalid_value(kvs: Any, key: str, value: float) -> None:
    with pytest.raises(InvalidValue):
        kvs.float_put(key, value)
    assert kvs.float_get(key) is None


def test_float_delete_and_absent_get(kvs: Any, key: str) -> None:
    assert kvs.float_get(key) is None
    kvs.float_put(key, 2.5)
    assert kvs.float_delete(key) is True
    assert kvs.float_delete(key) is False


# ---------------------------------------------------------------- str


@pytest.mark.parametrize("value", ["hello", "", "  spaced\n\ttext \r\n", "héllo wörld ✓ 日本", '{"a": 1}', "12"])
def test_str_is_stored_exactly(kvs: Any, key: str, value: str) -> None:
    kvs.str_put(key, value)
    assert kvs.str_get(key) == value


def test_str_delete_and_absent_get(kvs: Any, key: str) -> None:
    assert kvs.str_get(key) is None
    kvs.str_put(key, "x")
    assert kvs.str_delete(key) is True
    assert kvs.str_delete(key) is False
    assert kvs.str_get(key) is None


def test_a_body_over_the_size_limit_raises_payload_too_large(kvs: Any, key: str) -> None:
    with pytest.raises(PayloadTooLarge) as error:
        kvs.str_put(key, "x" * (1024 * 1024 + 1))
    assert error.value.status == 413
    assert kvs.str_get(key) is None


def test_a_body_at_the_size_limit_is_accepted(kvs: Any, key: str) -> None:
    value = "y" * (1024 * 1024)
    kvs.str_put(key, value)
    assert kvs.str_get(key) == value


# ---------------------------------------------------------------- map


@pytest.mark.parametrize("value", [{"a": "b", "c": ""}, {}, {"ключ": "значение ✓", "with space": "x\ny"}])
def test_map_put_then_get_returns_the_map(kvs: Any, key: str, value: dict) -> None:
    kvs.map_put(key, value)
    assert kvs.map_get(key) == value


def test_map_put_replaces_the_whole_map(kvs: Any, key: str) -> None:
    kvs.map_put(key, {"a": "1", "b": "2"})
    kvs.map_put(key, {"c": "3"})
    assert kvs.map_get(key) == {"c": "3"}


def test_map_with_a_non_string_value_raises_invalid_value(kvs: Any, key: str) -> None:
    with pytest.raises(InvalidValue):
        kvs.map_put(key, {"a": 1})
    assert kvs.map_get(key) is None


def test_map_delete_and_absent_get(kvs: Any, key: str) -> None:
    assert kvs.map_get(key) is None
    kvs.map_put(key, {"a": "b"})
    assert kvs.map_delete(key) is True
    assert kvs.map_delete(key) is False
    assert kvs.map_get(key) is None


def test_map_field_put_creates_the_map_and_field_get_reads_one_field(kvs: Any, key: str) -> None:
    assert kvs.map_field_put(key, "a", "1") is None
    kvs.map_field_put(key, "b", "two words")
    assert kvs.map_field_get(key, "a") == "1"
    assert kvs.map_field_get(key, "b") == "two words"
    assert kvs.map_get(key) == {"a": "1", "b": "two words"}


def test_map_field_get_returns_none_when_the_map_or_the_field_is_absent(kvs: Any, key: str) -> None:
    assert kvs.map_field_get(key, "a") is None
    kvs.map_put(key, {"a": "1"})
    assert kvs.map_field_get(key, "b") is None


def test_map_field_delete_reports_whether_the_field_existed_and_keeps_an_empty_map(kvs: Any, key: str) -> None:
    kvs.map_put(key, {"a": "1"})
    assert kvs.map_field_delete(key, "a") is True
    assert kvs.map_field_delete(key, "a") is False
    assert kvs.map_get(key) == {}
    assert kvs.map_field_delete(key + "_absent", "a") is False


@pytest.mark.parametrize("field", ["a b", "a/b", "50%", "q?x=1&y", "é✓", "dot.tilde~dash-", "#hash"])
def test_map_field_names_are_percent_encoded(kvs: Any, key: str, field: str) -> None:
    kvs.map_field_put(key, field, "v/" + field)
    assert kvs.map_field_get(key, field) == "v/" + field
    assert kvs.map_get(key) == {field: "v/" + field}
    assert kvs.map_field_delete(key, field) is True


# ---------------------------------------------------------------- set


def test_set_put_collapses_duplicates_and_get_returns_a_set(kvs: Any, key: str) -> None:
    kvs.set_put(key, ["b", "a", "b", "c"])
    assert kvs.set_get(key) == {"a", "b", "c"}


@pytest.mark.parametrize("members", [set(), {"x"}, frozenset({"é", "a b", "z"})])
def test_set_put_accepts_any_iterable_of_strings(kvs: Any, key: str, members: Any) -> None:
    kvs.set_put(key, members)
    assert kvs.set_get(key) == set(members)


def test_set_put_refuses_a_single_string(kvs: Any, key: str) -> None:
    with pytest.raises(TypeError):
        kvs.set_put(key, "abc")


def test_set_delete_and_absent_get(kvs: Any, key: str) -> None:
    assert kvs.set_get(key) is None
    kvs.set_put(key, ["a"])
    assert kvs.set_delete(key) is True
    assert kvs.set_delete(key) is False
    assert kvs.set_get(key) is None


def test_set_add_creates_the_set_and_reports_whether_the_member_is_new(kvs: Any, key: str) -> None:
    assert kvs.set_add(key, "a") is True
    assert kvs.set_add(key, "a") is False
    assert kvs.set_add(key, "b") is True
    assert kvs.set_get(key) == {"a", "b"}


def test_set_contains_is_false_for_absent_members_and_sets(kvs: Any, key: str) -> None:
    assert kvs.set_contains(key, "a") is False
    kvs.set_put(key, ["a"])
    assert kvs.set_contains(key, "a") is True
    assert kvs.set_contains(key, "b") is False


def test_set_remove_reports_whether_the_member_was_there(kvs: Any, key: str) -> None:
    kvs.set_put(key, ["a", "b"])
    assert kvs.set_remove(key, "a") is True
    assert kvs.set_remove(key, "a") is False
    assert kvs.set_get(key) == {"b"}
    assert kvs.set_remove(key + "_absent", "a") is False


@pytest.mark.parametrize("member", ["a/b", "with space", "100%", "?&=#", "ü✓"])
def test_set_members_are_percent_encoded(kvs: Any, key: str, member: str) -> None:
    assert kvs.set_add(key, member) is True
    assert kvs.set_contains(key, member) is True
    assert kvs.set_get(key) == {member}
    assert kvs.set_remove(key, member) is True


# ---------------------------------------------------------------- keys, namespaces, delete


def test_each_type_is_its_own_namespace(kvs: Any, key: str) -> None:
    kvs.int_put(key, 1)
    kvs.str_put(key, "one")
    assert kvs.int_get(key) == 1
    assert kvs.str_get(key) == "one"
    assert kvs.uint_get(key) is None
    kvs.int_delete(key)
    assert kvs.str_get(key) == "one"


def test_keys_lists_one_type_sorted_by_prefix_after_and_limit(kvs: Any, key: str) -> None:
    for suffix in ["c", "a", "b", "d"]:
        kvs.int_put(f"{key}_{suffix}", 1)
    kvs.str_put(f"{key}_z", "other type")
    kvs.int_put("u" + key, 1)  # does not start with the prefix

    assert kvs.keys("int", prefix=key) == [f"{key}_a", f"{key}_b", f"{key}_c", f"{key}_d"]
    assert kvs.keys("int", prefix=key, limit=2) == [f"{key}_a", f"{key}_b"]
    assert kvs.keys("int", prefix=key, after=f"{key}_b") == [f"{key}_c", f"{key}_d"]
    assert kvs.keys("int", prefix=key, after=f"{key}_a", limit=1) == [f"{key}_b"]
    assert kvs.keys("str", prefix=key) == [f"{key}_z"]
    assert kvs.keys("map", prefix=key) == []


def test_keys_without_a_prefix_lists_every_key_of_the_type(kvs: Any, key: str) -> None:
    kvs.float_put(key, 1.0)
    listed = kvs.keys("float", limit=10000)
    assert key in listed
    assert listed == sorted(listed)


def test_keys_with_a_bad_limit_raises_invalid_value(kvs: Any) -> None:
    with pytest.raises(InvalidValue):
        kvs.keys("int", limit=-1)


def test_keys_of_an_unknown_type_is_refused_before_sending(kvs: Any) -> None:
    with pytest.raises(ValueError):
        kvs.keys("bogus")


def test_delete_everywhere_removes_the_key_from_every_type(kvs: Any, key: str) -> None:
    kvs.int_put(key, 1)
    kvs.str_put(key, "s")
    kvs.set_put(key, ["m"])
    assert kvs.delete_everywhere(key) is True
    assert kvs.int_get(key) is None
    assert kvs.str_get(key) is None
    assert kvs.set_get(key) is None
    assert kvs.delete_everywhere(key) is False


def test_delete_of_one_type_leaves_the_others(kvs: Any, key: str) -> None:
    kvs.int_put(key, 1)
    kvs.str_put(key, "s")
    assert kvs.delete("str", key) is True
    assert kvs.str_get(key) is None
    assert kvs.int_get(key) == 1
    assert kvs.delete("str", key) is False
    assert kvs.delete("map", key) is False


def test_delete_of_an_unknown_type_is_refused_before_sending(kvs: Any, key: str) -> None:
    kvs.int_put(key, 1)
    with pytest.raises(ValueError):
        kvs.delete("bogus", key)
    assert kvs.int_get(key) == 1


# ---------------------------------------------------------------- keys rules


@pytest.mark.parametrize("bad_key", ["a-b", "a b", "a/b", "é", "k" * 257])
def test_a_bad_key_raises_invalid_value(kvs: Any, bad_key: str) -> None:
    with pytest.raises(InvalidValue) as error:
        kvs.int_put(bad_key, 1)
    assert error.value.status == 400
    with pytest.raises(InvalidValue):
        kvs.str_get(bad_key)


def test_a_key_of_256_bytes_is_accepted(kvs: Any) -> None:
    long_key = "K" * 240 + "0123456789abcdef"
    kvs.str_put(long_key, "long")
    assert kvs.str_get(long_key) == "long"
    assert kvs.str_delete(long_key) is True


def test_an_empty_key_is_refused_before_sending(kvs: Any) -> None:
    with pytest.raises(ValueError):
        kvs.int_get("")
    with pytest.raises(ValueError):
        kvs.map_field_get("m", "")


@pytest.mark.parametrize("segment", [".", ".."])
def test_a_dot_field_or_member_is_refused_before_sending(kvs: Any, key: str, segment: str) -> None:
    # Sent, "." would read the whole map and ".." the listing route.
    kvs.map_put(key, {"a": "1"})
    kvs.set_put(key, ["a"])
    for call in (
        lambda: kvs.map_field_get(key, segment),
        lambda: kvs.map_field_put(key, segment, "x"),
        lambda: kvs.map_field_delete(key, segment),
        lambda: kvs.set_contains(key, segment),
        lambda: kvs.set_add(key, segment),
        lambda: kvs.set_remove(key, segment),
    ):
        with pytest.raises(ValueError, match="another route"):
            call()
    assert kvs.map_get(key) == {"a": "1"}
    assert kvs.set_get(key) == {"a"}


# ---------------------------------------------------------------- service routes


def test_echo_swaps_the_case_of_every_letter(kvs: Any) -> None:
    assert kvs.echo("Hello, World! 123") == "hELLO, wORLD! 123"
    assert kvs.echo("éÀ ✓") == "Éà ✓"
    assert kvs.echo("") == ""


def test_hello_names_the_service(kvs: Any) -> None:
    assert "kvs" in kvs.hello().lower()


@pytest.mark.parametrize("n, expected", [(0, 0), (1, 1), (2, 1), (10, 55), (93, 12200160415121876738)])
def test_fibo_returns_the_nth_fibonacci_number(kvs: Any, n: int, expected: int) -> None:
    assert kvs.fibo(n) == expected


@pytest.mark.parametrize("n", [94, -1])
def test_fibo_outside_0_to_93_raises_invalid_value(kvs: Any, n: int) -> None:
    with pytest.raises(InvalidValue):
        kvs.fibo(n)


def test_a_running_server_is_healthy_and_ready(kvs: Any) -> None:
    assert kvs.healthz() is True
    assert kvs.readyz() is True


# ---------------------------------------------------------------- transport


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_server_raises_kvs_connection_error() -> None:
    with Client(f"http://127.0.0.1:{_unused_port()}", timeout=2) as kvs:
        with pytest.raises(KvsConnectionError) as error:
            kvs.int_get("a")
    assert error.value.status is None
    assert isinstance(error.value, ConnectionError)
    assert isinstance(error.value, KvsError)


@pytest.mark.asyncio
async def test_an_unreachable_server_raises_kvs_connection_error_async() -> None:
    async with AsyncClient(f"http://127.0.0.1:{_unused_port()}", timeout=2) as kvs:
        with pytest.raises(KvsConnectionError):
            await kvs.healthz()


def test_an_early_payload_too_large_answer_leaves_the_keep_alive_pool_usable(
    start_server: Callable[..., Any], key: str
) -> None:
    """The server answers 413 before it has read the body, so it cannot
    reuse that connection: it must close it and say so, or the request that
    the pool sends next on it fails. A race, so many rounds on one client."""
    limit, rounds = 1024, 200
    server = start_server("--max-body-bytes", str(limit))
    oversized = "x" * (64 * limit)
    failures: List[str] = []
    transport_errors = 0
    with Client(server.url) as kvs:
        kvs.str_put(key, "small")
        for round_ in range(rounds):
            try:
                kvs.str_put(key, oversized)
                failures.append(f"round {round_}: the oversized PUT was stored")
            except PayloadTooLarge:
                pass
            except KvsError as error:
                transport_errors += isinstance(error, KvsConnectionError)
                failures.append(f"round {round_}, PUT: {type(error).__name__}: {error}")
            try:
                got = kvs.str_get(key)
                if got != "small":
                    failures.append(f"round {round_}, GET: answered {got!r}")
            except KvsError as error:
                transport_errors += isinstance(error, KvsConnectionError)
                failures.append(f"round {round_}, GET: {type(error).__name__}: {error}")
    assert not failures, (
        f"{transport_errors} transport errors and {len(failures) - transport_errors} other failures "
        f"in {rounds} rounds; the first:\n" + "\n".join(failures[:10])
    )


def test_the_base_url_may_end_with_a_slash(base_url: str, key: str) -> None:
    with Client(base_url + "/", headers={"X-Request-Source": "tests"}) as kvs:
        kvs.int_put(key, 9)
        assert kvs.int_get(key) == 9
        assert kvs.base_url == base_url + "/kvs/v1-0-0/"


def test_the_client_is_a_context_manager(base_url: str) -> None:
    with Client(base_url) as kvs:
        assert isinstance(kvs, Client)
        assert kvs.healthz()


@pytest.mark.asyncio
async def test_the_async_client_is_an_async_context_manager(base_url: str, key: str) -> None:
    async with AsyncClient(base_url) as kvs:
        assert isinstance(kvs, AsyncClient)
        await kvs.str_put(key, "async")
        assert await kvs.str_get(key) == "async"


@pytest.mark.asyncio
async def test_concurrent_increments_are_each_applied_once(base_url: str, key: str) -> None:
    async with AsyncClient(base_url) as kvs:
        afters = await asyncio.gather(*(kvs.int_incr(key) for _ in range(50)))
        assert sorted(afters) == list(range(1, 51))
        assert await kvs.int_get(key) == 50


def test_both_clients_offer_the_same_operations() -> None:
    operations = {
        name
        for name, function in vars(protocol).items()
        if callable(function)
        and not name.startswith("_")
        and getattr(function, "__module__", None) == protocol.__name__
        and "Operation[" in str(getattr(function, "__annotations__", {}).get("return", ""))
    }
    assert len(operations) == 42
    for name in operations:
        assert callable(getattr(Client, name)), name
        assert callable(getattr(AsyncClient, name)), name
