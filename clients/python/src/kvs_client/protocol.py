"""The KVS REST protocol, once, with no I/O.

Each public function here describes one operation: it turns its arguments
into a :class:`Request` (method, path, body, headers) and pairs it with the
function that turns the server's answer into a Python result or an exception.
The sync and async clients only send the request and call the parser, so
both behave identically by construction.

Paths are relative to the base path ``/kvs/v1-0-0`` and already
percent-encoded. The routes follow ``docs/api.md``: the resource routes
``/{type}/{key}`` for values, map fields and set members,
``/int/{key}/incr`` for increments, ``/keys/{type}`` to list, ``/del``
to delete from every type, and ``/txn`` for transactions. ``/watch``, a
stream rather than one answer, is here as its request
(:func:`watch_request`), its parser (:func:`sse_events`) and its events
(:func:`parse_event`). The names match the Rust client's.
"""

from __future__ import annotations

import json
import math
import operator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import (
    Any,
    Callable,
    ClassVar,
    Dict,
    Generic,
    Iterable,
    Iterator,
    List,
    Literal,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    TypeVar,
)
from urllib.parse import quote

import httpx

from .errors import (
    Compacted,
    Conflict,
    Forbidden,
    InvalidValue,
    KvsError,
    OutcomeUnknown,
    PayloadTooLarge,
    PreconditionFailed,
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

REVISION = "KVS-Revision"
"""The header naming the store's revision an answer reflects."""
LAST_EVENT_ID = "Last-Event-ID"
"""What a watch sends to resume after the last event it got."""


@dataclass(frozen=True)
class Request:
    """What to send: everything a transport needs, nothing more."""

    method: str
    path: str
    """Under :data:`BASE_PATH`, percent-encoded, starting with ``/``."""
    content: Optional[bytes] = None
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    probe: bool = False
    """A health probe, which asks whether the server serves at whatever
    revision it is at: read-your-writes does not apply."""


@dataclass(frozen=True)
class Operation(Generic[T]):
    """A request and the parser of its answer."""

    request: Request
    parse: Callable[[httpx.Response], T]


@dataclass(frozen=True)
class Precondition:
    """What a conditional write asks of its key: :meth:`revision` (the key
    is at that revision: compare-and-set), :attr:`ABSENT` (create only) or
    :attr:`PRESENT` (the key exists). For a map field or a set member the
    condition is on the whole map or set key. A condition that does not hold
    raises :class:`PreconditionFailed`, and nothing changes.
    """

    header: str
    value: str

    ABSENT: ClassVar[Precondition]
    PRESENT: ClassVar[Precondition]

    @staticmethod
    def revision(revision: int) -> Precondition:
        """The key is at ``revision`` (``If-Match: "N"``)."""
        return Precondition("If-Match", f'"{_int_text(revision)}"')


Precondition.ABSENT = Precondition("If-None-Match", "*")
Precondition.PRESENT = Precondition("If-Match", "*")


@dataclass(frozen=True)
class Revised(Generic[T]):
    """A value read with its revision."""

    value: T
    revision: int
    """The revision of the value's last change (its ``ETag``), for
    :meth:`Precondition.revision`."""
    expires_at: Optional[datetime] = None
    """When the key expires (UTC), for a key stored with a TTL."""
    created: Optional[int] = None
    """The revision the value was created at (its key made after it was
    absent), where the answer says: a GET does, a transaction's result does
    not."""


@dataclass(frozen=True)
class Written:
    """What a conditional write of part of a key, or a delete, did."""

    revision: int
    """The store's revision the answer reflects: the write's own when it
    changed something."""
    key_revision: Optional[int]
    """The key's revision after the write (``None``: absent)."""
    changed: bool
    """Whether it changed something: the key or field existed (a delete),
    the member was new (an add) or there (a remove)."""


@dataclass(frozen=True)
class Page:
    """One page of keys (:func:`keys_page`)."""

    keys: List[str]
    last: bool
    """Whether no key follows."""
    next_after: Optional[str]
    """The ``after`` of the next page, when this is not the last."""


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
    if status == 410:
        oldest = _problem_int(response, "oldest")
        if oldest is not None:
            return Compacted(detail, status, oldest=oldest)
    if status == 412:
        return PreconditionFailed(detail, status, current_revision=_problem_int(response, "revision"))
    if status == 413:
        return PayloadTooLarge(detail, status)
    if status == 503:
        return Unavailable(detail, status, retry_after=_retry_after(response))
    if status == 504:
        return OutcomeUnknown(detail, status)
    return KvsError(detail, status)


def _problem_int(response: httpx.Response, member: str) -> Optional[int]:
    """An integer member of a problem+json answer."""
    try:
        problem = json.loads(response.content)
    except ValueError:
        return None
    value = problem.get(member) if isinstance(problem, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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


def _header_int(response: httpx.Response, name: str) -> int:
    try:
        return int(response.headers[name].strip())
    except (KeyError, ValueError):
        raise _unexpected(response, f"an answer with a numeric {name} header") from None


def _created(response: httpx.Response) -> Optional[int]:
    """The answer's ``KVS-Create-Revision``, if it has one."""
    text = response.headers.get("KVS-Create-Revision")
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise _unexpected(response, "a KVS-Create-Revision that is a revision") from None


def _etag(response: httpx.Response) -> Optional[int]:
    """The revision in the answer's ``ETag`` (``"N"``), if it has one."""
    tag = response.headers.get("ETag")
    if tag is None:
        return None
    tag = tag.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    try:
        if not (tag.startswith('"') and tag.endswith('"')):
            raise ValueError
        return int(tag[1:-1])
    except ValueError:
        raise _unexpected(response, "an ETag that is a quoted revision") from None


def parse_time(text: str) -> datetime:
    """An RFC 3339 UTC time as the server writes it
    (``2026-12-01T15:04:05.123Z``), timezone-aware."""
    # fromisoformat takes "Z" only from Python 3.11 on.
    when = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"no timezone in {text!r}")
    return when.astimezone(timezone.utc)


def _expires_at(response: httpx.Response) -> Optional[datetime]:
    text = response.headers.get("KVS-Expires-At")
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise _unexpected(response, "an RFC 3339 KVS-Expires-At") from None


def _revision(response: httpx.Response) -> int:
    """A write's answer: the key's new revision."""
    return _header_int(_check(response), REVISION)


def _written(changed: Callable[[httpx.Response], bool]) -> Callable[[httpx.Response], Written]:
    def parse(response: httpx.Response) -> Written:
        return Written(_header_int(_check(response), REVISION), _etag(response), changed(response))

    return parse


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


def _conditional(request: Request, condition: Optional[Precondition]) -> Request:
    if condition is None:
        return request
    if not isinstance(condition, Precondition):
        raise TypeError(f"condition must be a Precondition, not {type(condition).__name__}")
    return Request(
        request.method,
        request.path,
        request.content,
        params=request.params,
        headers={**request.headers, condition.header: condition.value},
    )


def _ttl_text(ttl: int) -> str:
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
        raise ValueError(f"ttl must be a positive whole number of seconds, not {ttl!r}")
    return str(ttl)


def _put_request(
    type_: str,
    key: str,
    body: Tuple[bytes, Dict[str, str]],
    condition: Optional[Precondition] = None,
    ttl: Optional[int] = None,
) -> Request:
    content, headers = body
    params = {} if ttl is None else {"ttl": _ttl_text(ttl)}
    request = Request("PUT", _path(("type", type_), ("key", key)), content, params=params, headers=headers)
    return _conditional(request, condition)


def _put(type_: str, key: str, body: Tuple[bytes, Dict[str, str]], ttl: Optional[int]) -> Operation[None]:
    return Operation(_put_request(type_, key, body, ttl=ttl), _ok)


def _get(type_: str, key: str, decode: Callable[[httpx.Response], T]) -> Operation[Optional[T]]:
    return Operation(Request("GET", _path(("type", type_), ("key", key))), _optional(decode))


def _delete(type_: str, key: str) -> Operation[bool]:
    return Operation(Request("DELETE", _path(("type", type_), ("key", key))), _deleted)


# --------------------------------------------------------------------------
# Operations: int


def int_put(key: str, value: int, *, ttl: Optional[int] = None) -> Operation[None]:
    """Store ``value`` (a 32-bit signed integer) at int ``key``; with
    ``ttl`` (seconds), until then (see :func:`put`).

    Raises :class:`InvalidValue` when it is out of range or the key is bad.
    """
    return _put("int", key, _text_body(_int_text(value)), ttl)


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


def uint_put(key: str, value: int, *, ttl: Optional[int] = None) -> Operation[None]:
    """Store ``value`` (a 32-bit unsigned integer) at uint ``key``; with
    ``ttl`` (seconds), until then."""
    return _put("uint", key, _text_body(_int_text(value)), ttl)


def uint_get(key: str) -> Operation[Optional[int]]:
    """The uint stored at ``key``, or ``None`` when absent."""
    return _get("uint", key, _as_int)


def uint_delete(key: str) -> Operation[bool]:
    """Delete uint ``key``; ``True`` if it existed."""
    return _delete("uint", key)


# --------------------------------------------------------------------------
# Operations: float


def float_put(key: str, value: float, *, ttl: Optional[int] = None) -> Operation[None]:
    """Store ``value`` at float ``key``; with ``ttl`` (seconds), until then.

    The server keeps a 32-bit float: the value is rounded to the nearest
    f32, and NaN or infinities raise :class:`InvalidValue`.
    """
    return _put("float", key, _text_body(_float_text(value)), ttl)


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


def str_put(key: str, value: str, *, ttl: Optional[int] = None) -> Operation[None]:
    """Store the text ``value`` (empty allowed) at str ``key``, as UTF-8;
    with ``ttl`` (seconds), until then."""
    return _put("str", key, _text_body(value), ttl)


def str_get(key: str) -> Operation[Optional[str]]:
    """The text stored at ``key``, exactly as stored, or ``None``."""
    return _get("str", key, _as_text)


def str_delete(key: str) -> Operation[bool]:
    """Delete str ``key``; ``True`` if it existed."""
    return _delete("str", key)


# --------------------------------------------------------------------------
# Operations: map


def map_put(key: str, value: Mapping[str, str], *, ttl: Optional[int] = None) -> Operation[None]:
    """Replace the map at ``key`` with ``value`` (str to str); with ``ttl``
    (seconds), until then."""
    return _put("map", key, _map_json(value), ttl)


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


def _field_put_request(key: str, field: str, value: str) -> Request:
    content, headers = _text_body(value)
    return Request("PUT", _path(("type", "map"), ("key", key), ("field", field)), content, headers=headers)


def _field_delete_request(key: str, field: str) -> Request:
    return Request("DELETE", _path(("type", "map"), ("key", key), ("field", field)))


def map_field_put(key: str, field: str, value: str) -> Operation[None]:
    """Set one field of map ``key`` (the map is created when absent)."""
    return Operation(_field_put_request(key, field, value), _ok)


def map_field_put_if(key: str, field: str, value: str, condition: Precondition) -> Operation[Written]:
    """Set one field only if ``condition`` holds on the map key."""
    return Operation(_conditional(_field_put_request(key, field, value), condition), _written(lambda _: True))


def map_field_delete(key: str, field: str) -> Operation[bool]:
    """Remove one field; ``True`` if it existed. An emptied map stays."""
    return Operation(_field_delete_request(key, field), _deleted)


def map_field_delete_if(key: str, field: str, condition: Precondition) -> Operation[Written]:
    """Remove one field only if ``condition`` holds on the map key;
    ``changed`` says whether the field existed."""
    return Operation(_conditional(_field_delete_request(key, field), condition), _written(_deleted))


# --------------------------------------------------------------------------
# Operations: set


def set_put(key: str, members: Iterable[str], *, ttl: Optional[int] = None) -> Operation[None]:
    """Replace the set at ``key`` with ``members`` (duplicates collapse);
    with ``ttl`` (seconds), until then."""
    return _put("set", key, _set_json(members), ttl)


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


def _member_request(method: str, key: str, member: str) -> Request:
    return Request(method, _path(("type", "set"), ("key", key), ("member", member)))


def set_add(key: str, member: str) -> Operation[bool]:
    """Add ``member`` to set ``key`` (created when absent); ``True`` if it
    was not there before."""
    return Operation(_member_request("PUT", key, member), _added)


def set_add_if(key: str, member: str, condition: Precondition) -> Operation[Written]:
    """Add ``member`` only if ``condition`` holds on the set key;
    ``changed`` says whether it was new."""
    return Operation(_conditional(_member_request("PUT", key, member), condition), _written(_added))


def set_remove(key: str, member: str) -> Operation[bool]:
    """Remove ``member`` from set ``key``; ``True`` if it was there."""
    return Operation(_member_request("DELETE", key, member), _deleted)


def set_remove_if(key: str, member: str, condition: Precondition) -> Operation[Written]:
    """Remove ``member`` only if ``condition`` holds on the set key;
    ``changed`` says whether it was there."""
    return Operation(_conditional(_member_request("DELETE", key, member), condition), _written(_deleted))


# --------------------------------------------------------------------------
# Operations: any type


_DECODERS: Dict[str, Callable[[httpx.Response], Any]] = {
    "int": _as_int,
    "uint": _as_int,
    "float": _as_float,
    "str": _as_text,
    "map": _as_map,
    "set": _as_set,
}

_ENCODERS: Dict[str, Callable[[Any], Tuple[bytes, Dict[str, str]]]] = {
    "int": lambda v: _text_body(_int_text(v)),
    "uint": lambda v: _text_body(_int_text(v)),
    "float": lambda v: _text_body(_float_text(v)),
    "str": _text_body,
    "map": _map_json,
    "set": _set_json,
}


def get_revised(type: ValueType, key: str) -> Operation[Optional[Revised[Any]]]:
    """The value of ``key`` in the namespace of ``type`` with its revision,
    that of its creation (and, for a key stored with a TTL, when it
    expires); ``None`` when absent."""
    decode = _DECODERS[_value_type(type)]

    def parse(response: httpx.Response) -> Revised[Any]:
        revision = _etag(response)
        if revision is None:
            raise _unexpected(response, "a value with its ETag")
        return Revised(decode(response), revision, _expires_at(response), _created(response))

    return _get(type, key, parse)


def put(
    type: ValueType,
    key: str,
    value: Any,
    *,
    condition: Optional[Precondition] = None,
    ttl: Optional[int] = None,
) -> Operation[int]:
    """Store ``value`` at ``key`` in the namespace of ``type``, as
    ``<type>_put`` does, and return the key's new revision.

    ``condition`` makes the write conditional (:class:`Precondition`;
    :class:`PreconditionFailed` when it does not hold). ``ttl``, a positive
    whole number of seconds, makes the key disappear once it has passed; a
    later put without it makes the key permanent again.
    """
    body = _ENCODERS[_value_type(type)](value)
    return Operation(_put_request(type, key, body, condition, ttl), _revision)


def _page(response: httpx.Response) -> Page:
    keys = _as_str_list(_check(response))
    # A server that does not page answers every key at once.
    last = response.headers.get("KVS-Last-Page", "true").strip().lower() == "true"
    next_after = response.headers.get("KVS-Next-After")
    if not last and next_after is None:
        raise _unexpected(response, "a page that says where the next starts (KVS-Next-After)")
    return Page(keys, last, next_after)


def keys_page(
    type: ValueType,
    prefix: Optional[str] = None,
    after: Optional[str] = None,
    limit: Optional[int] = None,
) -> Operation[Page]:
    """One page of the keys of one type, sorted: those starting with
    ``prefix``, strictly greater than ``after``, at most ``limit`` of them
    (the server's default is 1000, its maximum 10000), with whether another
    page follows and its ``after``. ``iter_keys`` reads every page.
    """
    params: Dict[str, str] = {}
    if prefix is not None:
        params["prefix"] = prefix
    if after is not None:
        params["after"] = after
    if limit is not None:
        params["limit"] = _int_text(limit)
    return Operation(Request("GET", "/keys/" + _value_type(type), params=params), _page)


def keys(
    type: ValueType,
    prefix: Optional[str] = None,
    after: Optional[str] = None,
    limit: Optional[int] = None,
) -> Operation[List[str]]:
    """The keys of one page, as :func:`keys_page` without what it says of
    the next; ``iter_keys`` reads every page."""
    page = keys_page(type, prefix, after, limit)
    return Operation(page.request, lambda response: page.parse(response).keys)


def delete(type: ValueType, key: str) -> Operation[bool]:
    """Delete ``key`` from the namespace of ``type`` only, as
    ``<type>_delete(key)`` does; ``True`` if it existed there."""
    return _delete(_value_type(type), key)


def delete_if(type: ValueType, key: str, condition: Precondition) -> Operation[Written]:
    """Delete ``key`` only if ``condition`` holds; ``changed`` says whether
    it existed."""
    request = _conditional(Request("DELETE", _path(("type", _value_type(type)), ("key", key))), condition)
    return Operation(request, _written(_deleted))


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
    return Operation(Request("GET", "/healthz", probe=True), _value(lambda _response: True))


def readyz() -> Operation[bool]:
    """``True`` once the server has replayed its log and the log is
    reachable; ``False`` while it answers 503 (``/readyz``)."""

    def parse(response: httpx.Response) -> bool:
        if response.status_code == 503:
            return False
        _check(response)
        return True

    return Operation(Request("GET", "/readyz", probe=True), parse)


# --------------------------------------------------------------------------
# Transactions


def _value_json(type_: str, value: Any) -> Any:
    """``value`` in the typed JSON form (as GET renders it, for transactions
    and watch events)."""
    content, _ = _ENCODERS[_value_type(type_)](value)  # checks the value's Python type
    if type_ == "str":
        return value
    if type_ == "float" and not math.isfinite(float(value)):
        raise ValueError(f"a float value must be finite, not {value!r}")
    return json.loads(content)  # a number's text, a map's or a set's JSON


def _value_from_json(type_: str, value: Any) -> Any:
    """The Python value of the typed JSON form."""
    valid = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "uint": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "map": lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
        "set": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    }[type_]
    if not valid(value):
        raise KvsError(f"not a {type_} value: {value!r}")
    if type_ == "float":
        return float(value)
    if type_ == "set":
        return set(value)
    return value


@dataclass(frozen=True)
class Compare:
    """A condition on one key of a transaction: :meth:`revision`,
    :meth:`value` or :meth:`absent`."""

    body: Mapping[str, Any]
    """The compare as the server takes it."""

    @staticmethod
    def revision(type: ValueType, key: str, revision: int) -> Compare:
        """Holds when the key is at ``revision`` (its last change)."""
        return Compare({"type": _value_type(type), "key": key, "revision": operator.index(revision)})

    @staticmethod
    def value(type: ValueType, key: str, value: Any) -> Compare:
        """Holds when the key holds ``value``."""
        return Compare({"type": _value_type(type), "key": key, "value": _value_json(type, value)})

    @staticmethod
    def absent(type: ValueType, key: str) -> Compare:
        """Holds when the key is absent."""
        return Compare({"type": _value_type(type), "key": key, "absent": True})


_TXN_OPS = ("put", "delete", "get", "incr", "add_member", "remove_member", "put_field", "delete_field")


@dataclass(frozen=True)
class TxnOp:
    """One operation of a transaction, built by the static methods; its
    result in :attr:`TxnOutcome.results` is, by operation: ``put``, the
    key's new revision (int); ``delete``, whether it existed; ``get``, a
    :class:`Revised` or ``None``; ``incr``, the value after;
    ``add_member``, ``remove_member``, ``put_field``, ``delete_field``,
    whether it changed the key."""

    body: Mapping[str, Any]
    """The operation as the server takes it."""

    @staticmethod
    def from_json(body: Mapping[str, Any]) -> TxnOp:
        """An operation in the server's JSON form, such as ``{"op": "get",
        "type": "int", "key": "a"}``; the server checks the rest."""
        if not isinstance(body, Mapping) or body.get("op") not in _TXN_OPS:
            raise ValueError(f"an operation must be an object whose op is one of {', '.join(_TXN_OPS)}: {body!r}")
        if body["op"] in ("put", "delete", "get"):
            _value_type(body.get("type"))  # type: ignore[arg-type]
        return TxnOp(dict(body))

    @staticmethod
    def put(type: ValueType, key: str, value: Any, *, ttl: Optional[int] = None) -> TxnOp:
        """Store ``value``; with ``ttl`` (seconds), until then (sent as the
        operation's ``ttl``)."""
        body: Dict[str, Any] = {"op": "put", "type": _value_type(type), "key": key, "value": _value_json(type, value)}
        if ttl is not None:
            body["ttl"] = int(_ttl_text(ttl))
        return TxnOp(body)

    @staticmethod
    def delete(type: ValueType, key: str) -> TxnOp:
        return TxnOp({"op": "delete", "type": _value_type(type), "key": key})

    @staticmethod
    def get(type: ValueType, key: str) -> TxnOp:
        return TxnOp({"op": "get", "type": _value_type(type), "key": key})

    @staticmethod
    def incr(key: str, by: int = 1) -> TxnOp:
        return TxnOp({"op": "incr", "key": key, "by": int(_int_text(by))})

    @staticmethod
    def add_member(key: str, member: str) -> TxnOp:
        return TxnOp({"op": "add_member", "key": key, "member": member})

    @staticmethod
    def remove_member(key: str, member: str) -> TxnOp:
        return TxnOp({"op": "remove_member", "key": key, "member": member})

    @staticmethod
    def put_field(key: str, field: str, value: str) -> TxnOp:
        return TxnOp({"op": "put_field", "key": key, "field": field, "value": value})

    @staticmethod
    def delete_field(key: str, field: str) -> TxnOp:
        return TxnOp({"op": "delete_field", "key": key, "field": field})

    def result(self, answer: Any) -> Any:
        """This operation's result from its member of the answer."""
        op = self.body["op"]
        if not isinstance(answer, dict):
            raise KvsError(f"not the result of a {op} operation: {answer!r}")
        try:
            if op == "put":
                return operator.index(answer["revision"])
            if op == "delete":
                return bool(answer["deleted"])
            if op == "get":
                if answer.get("absent") is True:
                    return None
                value = _value_from_json(self.body["type"], answer["value"])
                return Revised(value, operator.index(answer["revision"]))
            if op == "incr":
                return operator.index(answer["value"])
            return bool(answer["changed"])
        except (KeyError, TypeError):
            raise KvsError(f"not the result of a {op} operation: {answer!r}") from None


@dataclass(frozen=True)
class TxnOutcome:
    """The answer to a transaction."""

    succeeded: bool
    """Whether every compare held, so ``success`` ran (else ``failure``)."""
    revision: int
    """The transaction's revision: that of all its changes, or the store's
    revision it read when it changed nothing."""
    results: List[Any]
    """One result per operation of the branch that ran (see :class:`TxnOp`)."""
    answer: Mapping[str, Any]
    """The server's answer as it came, in JSON."""


def txn(
    compare: Sequence[Compare] = (),
    success: Sequence[TxnOp] = (),
    failure: Sequence[TxnOp] = (),
) -> Operation[TxnOutcome]:
    """Run a multi-key transaction (``POST /txn``) atomically, at one
    revision: if every ``compare`` holds, the ``success`` operations, else
    the ``failure`` ones. An operation that fails (an overflowing
    increment: :class:`Conflict`; too many operations or a value over the
    limits: :class:`PayloadTooLarge`; a bad value: :class:`InvalidValue`)
    fails the whole transaction, which then changes nothing.
    """
    body = {
        "compare": [dict(c.body) for c in compare],
        "success": [dict(op.body) for op in success],
        "failure": [dict(op.body) for op in failure],
    }

    def parse(response: httpx.Response) -> TxnOutcome:
        answer = _as_json(_check(response))
        if (
            not isinstance(answer, dict)
            or not isinstance(answer.get("succeeded"), bool)
            or not isinstance(answer.get("revision"), int)
        ):
            raise _unexpected(response, "a transaction's answer")
        ran = success if answer["succeeded"] else failure
        results = answer.get("results")
        if not isinstance(results, list) or len(results) != len(ran):
            raise _unexpected(response, "one result per operation run")
        outcomes = [op.result(r) for op, r in zip(ran, results)]
        return TxnOutcome(answer["succeeded"], answer["revision"], outcomes, answer)

    content, headers = _json_body(body)
    return Operation(Request("POST", "/txn", content, headers=headers), parse)


# --------------------------------------------------------------------------
# Watch


@dataclass(frozen=True)
class Change:
    """One change to one key, in a watch :class:`Event`."""

    kind: str
    """``put``, ``delete``, ``member``, ``field`` or ``expire``."""
    type: str
    key: str
    value: Any = None
    """``put``: the new value; ``field``: the field's value (``None`` when
    removed)."""
    member: Optional[str] = None
    """``member``: the set member added or removed."""
    present: Optional[bool] = None
    """``member``: whether the member is in the set now."""
    field: Optional[str] = None
    """``field``: the map field set or removed."""

    def to_json(self) -> Dict[str, Any]:
        """The change in the server's JSON form, with its ``kind``."""
        out: Dict[str, Any] = {"kind": self.kind, "type": self.type, "key": self.key}
        if self.kind == "put":
            out["value"] = sorted(self.value) if isinstance(self.value, set) else self.value
        elif self.kind == "member":
            out.update(member=self.member, present=self.present)
        elif self.kind == "field":
            out.update(field=self.field, value=self.value)
        return out


@dataclass(frozen=True)
class Event:
    """The changes of one revision that match a watch's filter."""

    revision: int
    changes: List[Change]
    """One, or several for a revision that changed several keys (a
    transaction, or a delete across types)."""


@dataclass(frozen=True)
class SseEvent:
    """One Server-Sent Event, as its fields came."""

    id: str
    event: str
    data: str


def sse_events(lines: Iterable[str]) -> Iterator[SseEvent]:
    """The events of an ``text/event-stream`` body given line by line
    (without their line ends), as the SSE standard dispatches them:
    comments (heartbeats) and events without data are skipped, and the id
    carries over to later events that give none."""
    last_id, event = "", ""
    data: List[str] = []
    for line in lines:
        if line == "":
            if data:
                yield SseEvent(last_id, event or "message", "\n".join(data))
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\0" not in value:
            last_id = value


def _change(kind: str, data: Any) -> Change:
    if not isinstance(data, dict) or not isinstance(data.get("key"), str) or data.get("type") not in VALUE_TYPES:
        raise KvsError(f"a watch's {kind} change does not say its type and key: {data!r}")
    type_, key = data["type"], data["key"]
    try:
        if kind == "put":
            return Change(kind, type_, key, value=_value_from_json(type_, data["value"]))
        if kind in ("delete", "expire"):
            return Change(kind, type_, key)
        if kind == "member":
            return Change(kind, type_, key, member=str(data["member"]), present=bool(data["present"]))
        if kind == "field":
            value = data.get("value")
            if value is not None and not isinstance(value, str):
                raise TypeError
            return Change(kind, type_, key, field=str(data["field"]), value=value)
    except (KeyError, TypeError):
        raise KvsError(f"a watch's {kind} change is incomplete: {data!r}") from None
    raise KvsError(f"a watch change of a kind this client does not know: {kind!r}")


def parse_event(sse: SseEvent) -> Event:
    """The watch event that one SSE event is; :class:`KvsError` when it is
    not one."""
    try:
        revision = int(sse.id)
        data = json.loads(sse.data)
    except ValueError:
        raise KvsError(f"not a watch event: {sse!r}") from None
    if sse.event == "changes":
        changes = data.get("changes") if isinstance(data, dict) else None
        if not isinstance(changes, list):
            raise KvsError(f"a changes event without changes: {sse.data!r}")
        return Event(revision, [_change(str(c.get("kind")) if isinstance(c, dict) else "", c) for c in changes])
    return Event(revision, [_change(sse.event, data)])


def watch_request(
    type: Optional[ValueType] = None, prefix: Optional[str] = None, after: Optional[int] = None
) -> Request:
    """``GET /watch``: the changes to keys of ``type`` (every type when
    ``None``) that start with ``prefix``, after revision ``after`` (from now
    on when ``None``), sent as ``Last-Event-ID`` so that it serves the first
    request and every reconnection alike."""
    params: Dict[str, str] = {}
    if type is not None:
        params["type"] = _value_type(type)
    if prefix is not None:
        params["prefix"] = prefix
    headers = {"Accept": "text/event-stream"}
    if after is not None:
        headers[LAST_EVENT_ID] = _int_text(after)
    return Request("GET", "/watch", params=params, headers=headers)
