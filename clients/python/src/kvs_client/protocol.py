"""The KVS REST protocol, once, with no I/O.

Each public function here describes one operation: it turns its arguments
into a :class:`Request` (method, path, body, headers) and pairs it with the
function that turns the server's answer into a Python result or an exception.
The sync and async clients only send the request and call the parser, so
both behave identically by construction.

Paths are relative to the base path ``/kvs/v1-0-0`` and already
percent-encoded. The routes follow ``docs/api.md``: the resource routes
``/{type}/{key}`` for values, map fields and set members,
``/int/{key}/incr`` for increments, ``/keys/{type}`` to list, and ``/del``
to delete from every type. The names match the Rust client's.
"""

from __future__ import annotations

import json
import math
import operator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Callable, Dict, Generic, Iterable, List, Literal, Mapping, Optional, Set, Tuple, TypeVar
from urllib.parse import quote

import httpx

from .errors import (
    Conflict,
    Forbidden,
    InvalidValue,
    KvsError,
    OutcomeUnknown,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
)

BASE_PATH = "/kvs/v1-0-0"

ValueType = Literal["int", "uint", "float", "str", "map", "set"]
"""The six value types; each is its own key namespace."""

VALUE_TYPES: Tuple[ValueType, ...] = ("int", "uint", "float", "str", "map", "set")

T = TypeVar("T")

_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"


@dataclass(frozen=True)
class Request:
    """What to send: everything a transport needs, nothing more."""

    method: str
    path: str
    """Under :data:`BASE_PATH`, percent-encoded, starting with ``/``."""
    content: Optional[bytes] = None
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation(Generic[T]):
    """A request and the parser of its answer."""

    request: Request
    parse: Callable[[httpx.Response], T]


# --------------------------------------------------------------------------
# Building requests


def _segment(name: str, value: str) -> str:
    """Percent-encode one path segment.

    ``""``, ``"."`` and ``".."`` would silently address a different route
    (URLs resolve dot segments), so they are refused here rather than sent,
    as the Rust client refuses them.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if value in ("", ".", ".."):
        raise ValueError(f"{name} cannot be {value!r}: it would address another route")
    return quote(value, safe="")


def _path(*parts: Tuple[str, str]) -> str:
    return "".join("/" + _segment(name, value) for name, value in parts)


def _value_type(type_: str) -> str:
    if type_ not in VALUE_TYPES:
        raise ValueError(f"type must be one of {', '.join(VALUE_TYPES)}, not {type_!r}")
    return type_


def _text_body(text: str) -> Tuple[bytes, Dict[str, str]]:
    if not isinstance(text, str):
        raise TypeError(f"value must be a str, not {type(text).__name__}")
    return text.encode("utf-8"), {"Content-Type": _TEXT}


def _int_text(value: int) -> str:
    if isinstance(value, bool):
        raise TypeError("value must be an int, not bool")
    return str(operator.index(value))


def _float_text(value: float) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"value must be a float, not {type(value).__name__}")
    # repr is the shortest text that round-trips the (f64) value; the server
    # rounds it to f32 and rejects what is not finite.
    return repr(float(value))


def _json_body(value: object) -> Tuple[bytes, Dict[str, str]]:
    return json.dumps(value, ensure_ascii=False).encode("utf-8"), {"Content-Type": _JSON}


def _map_json(value: Mapping[str, str]) -> Tuple[bytes, Dict[str, str]]:
    if not isinstance(value, Mapping):
        raise TypeError(f"value must be a mapping of str to str, not {type(value).__name__}")
    return _json_body(dict(value))


def _set_json(members: Iterable[str]) -> Tuple[bytes, Dict[str, str]]:
    # A lone str is iterable too, but meaning it as a set of its characters
    # is always a mistake.
    if isinstance(members, (str, bytes)):
        raise TypeError("members must be an iterable of str, not a single string")
    return _json_body(sorted(set(members)))


# --------------------------------------------------------------------------
# Parsing answers


def _detail(response: httpx.Response) -> str:
    """The server's explanation: problem+json ``detail``, else the body."""
    try:
        problem = json.loads(response.content)
    except ValueError:
        problem = None
    if isinstance(problem, dict):
        for key in ("detail", "title"):
            if isinstance(problem.get(key), str) and problem[key]:
                return str(problem[key])
    text = response.content.decode("utf-8", errors="replace").strip()
    return text or response.reason_phrase or "error"


def _retry_after(response: httpx.Response) -> Optional[float]:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def error_for(response: httpx.Response) -> KvsError:
    """The exception that an error answer stands for."""
    status = response.status_code
    detail = _detail(response)
    if status == 400:
        return InvalidValue(detail, status)
    if status == 401:
        return Unauthorized(detail, status)
    if status == 403:
        return Forbidden(detail, status)
    if status == 409:
        return Conflict(detail, status)
    if status == 413:
        return PayloadTooLarge(detail, status)
    if status == 503:
        return Unavailable(detail, status, retry_after=_retry_after(response))
    if status == 504:
        return OutcomeUnknown(detail, status)
    return KvsError(detail, status)


def _check(response: httpx.Response) -> httpx.Response:
    if not response.is_success:
        raise error_for(response)
    return response


def _unexpected(response: httpx.Response, what: str) -> KvsError:
    body = response.content[:200]
    return KvsError(f"unexpected response body for {what}: {body!r}", response.status_code)


def _as_int(response: httpx.Response) -> int:
    try:
        return int(response.content.decode("ascii").strip())
    except ValueError:
        raise _unexpected(response, "an integer") from None


def _as_float(response: httpx.Response) -> float:
    try:
        return float(response.content.decode("ascii").strip())
    except ValueError:
        raise _unexpected(response, "a float") from None


def _as_text(response: httpx.Response) -> str:
    try:
        return response.content.decode("utf-8")
    except UnicodeDecodeError:
        raise _unexpected(response, "UTF-8 text") from None


def _as_json(response: httpx.Response) -> object:
    try:
        return json.loads(response.content)
    except ValueError:
        raise _unexpected(response, "JSON") from None


def _as_map(response: httpx.Response) -> Dict[str, str]:
    value = _as_json(response)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _unexpected(response, "a JSON object of strings")
    return value


def _as_str_list(response: httpx.Response) -> List[str]:
    value = _as_json(response)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _unexpected(response, "a JSON array of strings")
    return value


def _as_set(response: httpx.Response) -> Set[str]:
    return set(_as_str_list(response))


def _ok(response: httpx.Response) -> None:
    _check(response)


def _flag(header: str) -> Callable[[httpx.Response], bool]:
    """Parse a success whose meaning is a ``<header>: true`` flag."""

    def parse(response: httpx.Response) -> bool:
        _check(response)
        return bool(response.headers.get(header, "").strip().lower() == "true")

    return parse


_deleted = _flag("Deleted")
_added = _flag("Added")


def _value(decode: Callable[[httpx.Response], T]) -> Callable[[httpx.Response], T]:
    def parse(response: httpx.Response) -> T:
        return decode(_check(response))

    return parse


def _optional(decode: Callable[[httpx.Response], T]) -> Callable[[httpx.Response], Optional[T]]:
    """A GET whose 404 means absent, answered as ``None``."""

    def parse(response: httpx.Response) -> Optional[T]:
        if response.status_code == 404:
            return None
        return decode(_check(response))

    return parse


# --------------------------------------------------------------------------
# Generic shapes


def _put(type_: str, key: str, body: Tuple[bytes, Dict[str, str]]) -> Operation[None]:
    content, headers = body
    return Operation(Request("PUT", _path(("type", type_), ("key", key)), content, headers=headers), _ok)


def _get(type_: str, key: str, decode: Callable[[httpx.Response], T]) -> Operation[Optional[T]]:
    return Operation(Request("GET", _path(("type", type_), ("key", key))), _optional(decode))


def _delete(type_: str, key: str) -> Operation[bool]:
    return Operation(Request("DELETE", _path(("type", type_), ("key", key))), _deleted)


# --------------------------------------------------------------------------
# Operations: int


def int_put(key: str, value: int) -> Operation[None]:
    """Store ``value`` (a 32-bit signed integer) at int ``key``.

    Raises :class:`InvalidValue` when it is out of range or the key is bad.
    """
    return _put("int", key, _text_body(_int_text(value)))


def int_get(key: str) -> Operation[Optional[int]]:
    """The int stored at ``key``, or ``None`` when absent."""
    return _get("int", key, _as_int)


def int_delete(key: str) -> Operation[bool]:
    """Delete int ``key``; ``True`` if it existed."""
    return _delete("int", key)


def int_incr(key: str, by: int = 1) -> Operation[int]:
    """Add ``by`` (default 1, may be negative) to int ``key`` and return the
    value AFTER, as Redis ``INCRBY`` does.

    An absent key counts as 0: the first increment returns ``by``. Raises
    :class:`Conflict` when the result would overflow i32 (the stored value
    is then unchanged).
    """
    content, headers = _text_body(_int_text(by))
    return Operation(
        Request("POST", _path(("type", "int"), ("key", key)) + "/incr", content, headers=headers),
        _value(_as_int),
    )


# --------------------------------------------------------------------------
# Operations: uint


def uint_put(key: str, value: int) -> Operation[None]:
    """Store ``value`` (a 32-bit unsigned integer) at uint ``key``."""
    return _put("uint", key, _text_body(_int_text(value)))


def uint_get(key: str) -> Operation[Optional[int]]:
    """The uint stored at ``key``, or ``None`` when absent."""
    return _get("uint", key, _as_int)


def uint_delete(key: str) -> Operation[bool]:
    """Delete uint ``key``; ``True`` if it existed."""
    return _delete("uint", key)


# --------------------------------------------------------------------------
# Operations: float


def float_put(key: str, value: float) -> Operation[None]:
    """Store ``value`` at float ``key``.

    The server keeps a 32-bit float: the value is rounded to the nearest
    f32, and NaN or infinities raise :class:`InvalidValue`.
    """
    return _put("float", key, _text_body(_float_text(value)))


def float_get(key: str) -> Operation[Optional[float]]:
    """The float stored at ``key``, or ``None`` when absent.

    The server answers the shortest decimal that identifies its f32, and
    that decimal is what you get: 0.1 reads back as 0.1, and in general the
    result rounds to the same f32 as the value written.
    """
    return _get("float", key, _as_float)


def float_delete(key: str) -> Operation[bool]:
    """Delete float ``key``; ``True`` if it existed."""
    return _delete("float", key)


# --------------------------------------------------------------------------
# Operations: str


def str_put(key: str, value: str) -> Operation[None]:
    """Store the text ``value`` (empty allowed) at str ``key``, as UTF-8."""
    return _put("str", key, _text_body(value))


def str_get(key: str) -> Operation[Optional[str]]:
    """The text stored at ``key``, exactly as stored, or ``None``."""
    return _get("str", key, _as_text)


def str_delete(key: str) -> Operation[bool]:
    """Delete str ``key``; ``True`` if it existed."""
    return _delete("str", key)


# --------------------------------------------------------------------------
# Operations: map


def map_put(key: str, value: Mapping[str, str]) -> Operation[None]:
    """Replace the map at ``key`` with ``value`` (str to str)."""
    return _put("map", key, _map_json(value))


def map_get(key: str) -> Operation[Optional[Dict[str, str]]]:
    """The whole map at ``key``, or ``None`` when absent."""
    return _get("map", key, _as_map)


def map_delete(key: str) -> Operation[bool]:
    """Delete map ``key``; ``True`` if it existed."""
    return _delete("map", key)


def map_field_get(key: str, field: str) -> Operation[Optional[str]]:
    """One field of map ``key``; ``None`` when the map or the field is absent."""
    return Operation(
        Request("GET", _path(("type", "map"), ("key", key), ("field", field))),
        _optional(_as_text),
    )


def map_field_put(key: str, field: str, value: str) -> Operation[None]:
    """Set one field of map ``key`` (the map is created when absent)."""
    content, headers = _text_body(value)
    return Operation(
        Request("PUT", _path(("type", "map"), ("key", key), ("field", field)), content, headers=headers),
        _ok,
    )


def map_field_delete(key: str, field: str) -> Operation[bool]:
    """Remove one field; ``True`` if it existed. An emptied map stays."""
    return Operation(
        Request("DELETE", _path(("type", "map"), ("key", key), ("field", field))),
        _deleted,
    )


# --------------------------------------------------------------------------
# Operations: set


def set_put(key: str, members: Iterable[str]) -> Operation[None]:
    """Replace the set at ``key`` with ``members`` (duplicates collapse)."""
    return _put("set", key, _set_json(members))


def set_get(key: str) -> Operation[Optional[Set[str]]]:
    """The members of set ``key``, or ``None`` when absent."""
    return _get("set", key, _as_set)


def set_delete(key: str) -> Operation[bool]:
    """Delete set ``key``; ``True`` if it existed."""
    return _delete("set", key)


def set_contains(key: str, member: str) -> Operation[bool]:
    """Whether ``member`` is in set ``key`` (``False`` when the set is absent)."""

    def parse(response: httpx.Response) -> bool:
        if response.status_code == 404:
            return False
        _check(response)
        return True

    return Operation(Request("GET", _path(("type", "set"), ("key", key), ("member", member))), parse)


def set_add(key: str, member: str) -> Operation[bool]:
    """Add ``member`` to set ``key`` (created when absent); ``True`` if it
    was not there before."""
    return Operation(Request("PUT", _path(("type", "set"), ("key", key), ("member", member))), _added)


def set_remove(key: str, member: str) -> Operation[bool]:
    """Remove ``member`` from set ``key``; ``True`` if it was there."""
    return Operation(
        Request("DELETE", _path(("type", "set"), ("key", key), ("member", member))),
        _deleted,
    )


# --------------------------------------------------------------------------
# Operations: any type


def keys(
    type: ValueType,
    prefix: Optional[str] = None,
    after: Optional[str] = None,
    limit: Optional[int] = None,
) -> Operation[List[str]]:
    """The keys of one type, sorted: those starting with ``prefix``,
    strictly greater than ``after``, at most ``limit`` of them (the server's
    default is 1000, its maximum 10000). Page with ``after=last_key``.
    """
    params: Dict[str, str] = {}
    if prefix is not None:
        params["prefix"] = prefix
    if after is not None:
        params["after"] = after
    if limit is not None:
        params["limit"] = _int_text(limit)
    return Operation(Request("GET", "/keys/" + _value_type(type), params=params), _value(_as_str_list))


def delete(type: ValueType, key: str) -> Operation[bool]:
    """Delete ``key`` from the namespace of ``type`` only, as
    ``<type>_delete(key)`` does; ``True`` if it existed there."""
    return _delete(_value_type(type), key)


def delete_everywhere(key: str) -> Operation[bool]:
    """Delete ``key`` from every type that holds it; ``True`` if any did."""
    return Operation(Request("DELETE", "/del" + _path(("key", key))), _deleted)


# --------------------------------------------------------------------------
# Operations: service


def echo(text: str) -> Operation[str]:
    """``text`` with the case of every letter swapped, by the server."""
    content, headers = _text_body(text)
    return Operation(Request("POST", "/echo", content, headers=headers), _value(_as_text))


def hello() -> Operation[str]:
    """The server's greeting, naming the service and its version."""
    return Operation(Request("POST", "/hello"), _value(_as_text))


def fibo(n: int) -> Operation[int]:
    """The ``n``-th Fibonacci number (F(0)=0, F(1)=1), ``0 <= n <= 93``."""
    return Operation(Request("POST", "/fibo", params={"n": _int_text(n)}), _value(_as_int))


def healthz() -> Operation[bool]:
    """``True`` when the server answers HTTP (``/healthz``).

    A server that cannot be reached raises :class:`KvsConnectionError`.
    """
    return Operation(Request("GET", "/healthz"), _value(lambda _response: True))


def readyz() -> Operation[bool]:
    """``True`` once the server has replayed its log and the log is
    reachable; ``False`` while it answers 503 (``/readyz``)."""

    def parse(response: httpx.Response) -> bool:
        if response.status_code == 503:
            return False
        _check(response)
        return True

    return Operation(Request("GET", "/readyz"), parse)
