"""The protocol's request building and answer parsing, without a server.

Covers what a healthy test server cannot be made to answer (503 with
Retry-After, unexpected bodies); everything else is tested for real in
test_client.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from kvs_client import (
    Conflict,
    Forbidden,
    InvalidValue,
    KvsError,
    OutcomeUnknown,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
    protocol,
)


def problem(status: int, detail: str, **headers: str) -> httpx.Response:
    body = {"type": "about:blank", "title": "T", "status": status, "detail": detail}
    return httpx.Response(status, json=body, headers={"Content-Type": "application/problem+json", **headers})


@pytest.mark.parametrize(
    "status, kind",
    [
        (400, InvalidValue),
        (401, Unauthorized),
        (403, Forbidden),
        (409, Conflict),
        (413, PayloadTooLarge),
        (503, Unavailable),
        (504, OutcomeUnknown),
        (500, KvsError),
        (404, KvsError),
    ],
)
def test_errors_map_by_status_and_carry_the_detail(status: int, kind: type) -> None:
    error = protocol.error_for(problem(status, "what went wrong"))
    assert type(error) is kind
    assert error.status == status
    assert error.detail == "what went wrong"
    assert str(error) == f"{status}: what went wrong"


def test_outcome_unknown_is_no_unavailable() -> None:
    response = problem(504, "the log did not tell", **{"KVS-Outcome": "unknown"})
    error = protocol.error_for(response)
    assert isinstance(error, OutcomeUnknown)
    assert not isinstance(error, Unavailable)
    assert (error.status, error.detail) == (504, "the log did not tell")


def test_unavailable_carries_retry_after_in_seconds() -> None:
    error = protocol.error_for(problem(503, "replaying", **{"Retry-After": "3"}))
    assert isinstance(error, Unavailable)
    assert error.retry_after == 3.0


def test_unavailable_understands_an_http_date_retry_after() -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    error = protocol.error_for(problem(503, "x", **{"Retry-After": format_datetime(when, usegmt=True)}))
    assert isinstance(error, Unavailable)
    assert error.retry_after is not None and 25 <= error.retry_after <= 31


@pytest.mark.parametrize("header", [None, "soon"])
def test_unavailable_without_a_usable_retry_after_has_none(header: str) -> None:
    headers = {} if header is None else {"Retry-After": header}
    error = protocol.error_for(problem(503, "x", **headers))
    assert isinstance(error, Unavailable)
    assert error.retry_after is None


def test_a_plain_text_error_body_is_the_detail() -> None:
    error = protocol.error_for(httpx.Response(400, text="bad value\n"))
    assert error.detail == "bad value"


def test_an_empty_error_body_falls_back_to_the_reason() -> None:
    error = protocol.error_for(httpx.Response(502))
    assert error.detail == "Bad Gateway"


def test_an_unexpected_success_body_raises_kvs_error() -> None:
    op = protocol.int_get("k")
    with pytest.raises(KvsError, match="unexpected response body"):
        op.parse(httpx.Response(200, text="not a number"))


def test_get_answers_none_on_404_and_raises_on_other_errors() -> None:
    op = protocol.str_get("k")
    assert op.parse(httpx.Response(404)) is None
    with pytest.raises(Unavailable):
        op.parse(problem(503, "x"))


def test_readyz_is_false_on_503() -> None:
    assert protocol.readyz().parse(problem(503, "replaying")) is False


def test_requests_use_the_documented_routes() -> None:
    assert protocol.int_put("k", 5).request == protocol.Request(
        "PUT", "/int/k", b"5", headers={"Content-Type": "text/plain; charset=utf-8"}
    )
    incr = protocol.int_incr("k").request
    assert (incr.method, incr.path, incr.content) == ("POST", "/int/k/incr", b"1")
    assert protocol.int_incr("k", by=-2).request.content == b"-2"
    assert protocol.map_field_get("m", "a/b c").request.path == "/map/m/a%2Fb%20c"
    assert protocol.set_put("s", ["b", "a", "b"]).request.content == b'["a", "b"]'
    delete = protocol.delete("str", "k").request
    assert (delete.method, delete.path) == ("DELETE", "/str/k")
    assert protocol.delete_everywhere("k").request.path == "/del/k"
    assert protocol.fibo(10).request.params == {"n": "10"}
    keys = protocol.keys("int", prefix="a", limit=3).request
    assert (keys.path, dict(keys.params)) == ("/keys/int", {"prefix": "a", "limit": "3"})


@pytest.mark.parametrize("value", [True, 1.5, "5"])
def test_int_values_must_be_ints(value: object) -> None:
    with pytest.raises(TypeError):
        protocol.int_put("k", value)  # type: ignore[arg-type]
