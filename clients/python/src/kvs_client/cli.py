"""The ``kvs`` command line: every client operation as a sub-command.

Run ``kvs --help`` (or ``python -m kvs_client --help``) for the commands and
the exit codes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import struct
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, TextIO, Tuple

from ._version import __version__
from .client import DEFAULT_TIMEOUT, DEFAULT_URL, Client
from .errors import Compacted, KvsConnectionError, KvsError, OutcomeUnknown, PreconditionFailed, Unavailable
from .protocol import VALUE_TYPES, Compare, Precondition, Revised, TxnOp, ValueType, Written

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2  # argparse's own
EXIT_CLIENT_ERROR = 3
EXIT_UNAVAILABLE = 4
EXIT_OUTCOME_UNKNOWN = 5
EXIT_PRECONDITION_FAILED = 6
EXIT_COMPACTED = 7
EXIT_INTERRUPTED = 130  # a shell's code for Ctrl-C

EPILOG = """\
examples:
  kvs int put counter 5
  kvs int incr counter --by 10       prints the value after: 15
  kvs str put name "hello"
  kvs map put m '{"a": "b"}'
  kvs map field-get m a
  kvs set put s '["x", "y"]'
  kvs set add s z
  kvs keys int --prefix c --limit 10
  kvs --json map get m
  kvs del counter                    deletes "counter" from every type
  kvs int get counter --revision     {"value": 15, "revision": 7, ...}
  kvs int put counter 16 --if-revision 7     only if still at revision 7
  kvs str put lock me --if-absent --ttl 30   create only, gone in 30 s
  kvs watch --type int --prefix c    one JSON line per change, until Ctrl-C
  kvs txn body.json                  a transaction (POST /txn), see docs/api.md
  kvs export dump.jsonl              every key of every type, to a file
  kvs --url NEW_URL import dump.jsonl
  kvs str put note -- "-starts with a dash"   (-- before such values)

output:
  gets print the value (maps and sets as JSON, keys one per line);
  deletes print "deleted" or "not found"; puts print "OK".
  export writes one JSON object per line, {"type": ..., "key": ...,
  "value": ...}, and import reads that; each prints how many keys it moved
  (on stderr when export writes to stdout).
  --json prints the result as JSON instead (null for an absent key).
  get --revision prints {"value", "revision", "created", "expires_at"} as JSON.
  conditional writes (--if-revision, --if-absent) and puts with --ttl
  print "OK revision N" (--json: N for puts), N the write's revision.
  keys lists every key (page by page) unless --limit is given.
  watch prints one JSON object per revision: {"revision": N,
  "changes": [{"kind": ..., "type": ..., "key": ..., ...}]}.
  txn reads {"compare": [...], "success": [...], "failure": [...]} from
  FILE (default stdin) and prints the server's JSON answer.

exit codes:
  0  success
  1  not found: a get of an absent key or map field (stdout empty, or
     null under --json)
  2  usage error, or a token, CA, import or export file that cannot be
     used
  3  invalid value or other client error (HTTP 4xx, such as 401 for a
     missing or unknown token, 403 for a write with a read-only token):
     nothing was changed (import: nothing from the refused line on)
  4  server unavailable (HTTP 503 or another 5xx), not ready, or
     unreachable (a server certificate that does not verify included);
     a refused write (503) changed nothing
  5  outcome unknown (HTTP 504): the write may have been applied; read
     the key before running a command that is not idempotent (incr)
     again
  6  precondition failed (HTTP 412): --if-revision or --if-absent did not
     hold, nothing was changed; or a txn whose compares did not hold (its
     failure branch ran, and its answer is printed)
  7  compacted (HTTP 410): watch --since is older than the server's
     history; list the keys again and watch from there

environment:
  KVS_URL         server URL when --url is not given (default %(default_url)s)
  KVS_TOKEN       token when neither --token nor --token-file is given
  KVS_TOKEN_FILE  file holding the token, likewise (not with KVS_TOKEN)
  KVS_CA_FILE     CA file when --ca-file is not given
"""


class _BadValue(Exception):
    """A command-line value that cannot be sent (exit code 3)."""


class _ConfigError(Exception):
    """A token or CA setting, or an import or export file, that cannot be
    used (a usage error, exit 2)."""


@dataclass
class _Outcome:
    """What a command printed and how it ended."""

    value: Any
    """The result, printed as JSON under ``--json``."""
    text: Optional[str]
    """The readable form, or None to print nothing on stdout."""
    code: int = EXIT_OK
    note: Optional[str] = None
    """A readable remark for stderr (e.g. "not found")."""
    to_stderr: bool = False
    """Print the result on stderr: stdout carries the command's data."""


# --------------------------------------------------------------------------
# Values: from the command line, and back to text


_INT = re.compile(r"\s*[+-]?[0-9]+\s*")


def _parse_int(text: str) -> int:
    if not _INT.fullmatch(text):
        raise _BadValue(f"not a decimal integer: {text!r}")
    return int(text)


def _parse_float(text: str) -> float:
    try:
        if "_" in text:
            raise ValueError
        return float(text)
    except ValueError:
        raise _BadValue(f"not a decimal number: {text!r}") from None


def _parse_map(text: str) -> Dict[str, str]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise _BadValue(f"map value is not valid JSON: {exc}") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _BadValue('map value must be a JSON object of strings, like {"a": "b"}')
    return value


def _parse_set(text: str) -> List[str]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise _BadValue(f"set value is not valid JSON: {exc}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _BadValue('set value must be a JSON array of strings, like ["a", "b"]')
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return value


def _dumps(value: Any) -> str:
    return json.dumps(_jsonable(value), ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class _Kind:
    parse: Callable[[str], Any]
    show: Callable[[Any], str]
    value_help: str


_KINDS: Dict[str, _Kind] = {
    "int": _Kind(_parse_int, str, "a 32-bit signed integer"),
    "uint": _Kind(_parse_int, str, "a 32-bit unsigned integer"),
    "float": _Kind(_parse_float, repr, "a finite number, stored as a 32-bit float"),
    "str": _Kind(str, str, "any text"),
    "map": _Kind(_parse_map, _dumps, 'a JSON object of strings, e.g. \'{"a": "b"}\''),
    "set": _Kind(_parse_set, _dumps, 'a JSON array of strings, e.g. \'["a", "b"]\''),
}


# --------------------------------------------------------------------------
# Outcomes


def _got(value: Any, show: Callable[[Any], str] = str) -> _Outcome:
    if value is None:
        return _Outcome(None, None, EXIT_NOT_FOUND, "not found")
    return _Outcome(value, show(value))


def _done(_: None = None) -> _Outcome:
    return _Outcome(None, "OK")


def _revised(found: Optional[Revised[Any]]) -> _Outcome:
    if found is None:
        return _Outcome(None, None, EXIT_NOT_FOUND, "not found")
    expires = None if found.expires_at is None else found.expires_at.isoformat().replace("+00:00", "Z")
    value = {
        "value": _jsonable(found.value),
        "revision": found.revision,
        "created": found.created,
        "expires_at": expires,
    }
    return _Outcome(value, _dumps(value))


def _written_at(revision: int) -> _Outcome:
    return _Outcome(revision, f"OK revision {revision}")


def _flag(yes: str, no: str) -> Callable[[bool], _Outcome]:
    return lambda flag: _Outcome(flag, yes if flag else no)


_deleted = _flag("deleted", "not found")
_added = _flag("added", "already a member")
_removed = _flag("removed", "not a member")


# --------------------------------------------------------------------------
# The parser


Handler = Callable[[Client, argparse.Namespace], _Outcome]


def _common_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """--url, --timeout, --token, --token-file, --ca-file and --json,
    accepted before or after the command.

    On sub-commands they default to SUPPRESS so that an option given before
    the command is not overwritten by the sub-command's default.
    """

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    group = parser.add_argument_group("connection and output")
    group.add_argument(
        "--url",
        default=default(os.environ.get("KVS_URL") or DEFAULT_URL),
        help="server URL, without the base path (env KVS_URL; default %s)" % DEFAULT_URL,
    )
    group.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=default(DEFAULT_TIMEOUT),
        help="request timeout in seconds (default %s)" % DEFAULT_TIMEOUT,
    )
    group.add_argument(
        "--token",
        default=default(None),
        help="bearer token for a server that wants one (env KVS_TOKEN; --token-file keeps it out of the process list)",
    )
    group.add_argument(
        "--token-file",
        metavar="FILE",
        default=default(None),
        help="file holding the token (env KVS_TOKEN_FILE)",
    )
    group.add_argument(
        "--ca-file",
        metavar="FILE",
        default=default(os.environ.get("KVS_CA_FILE") or None),
        help="PEM file of the CA to trust for an https URL (env KVS_CA_FILE; default: the public CAs)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print the result as JSON",
    )


class _Builder:
    """Adds sub-commands, each with its handler and the common options."""

    def __init__(self, subparsers: Any) -> None:
        self._subparsers = subparsers

    def command(
        self, name: str, help: str, handler: Optional[Handler], *, aliases: Sequence[str] = ()
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self._subparsers.add_parser(
            name, help=help, description=help, aliases=list(aliases)
        )
        if handler is not None:
            parser.set_defaults(handler=handler)
            _common_options(parser, defaults=False)
        return parser

    def group(self, name: str, help: str) -> _Builder:
        parser = self.command(name, help, None)
        return _Builder(parser.add_subparsers(title="commands", metavar="COMMAND", required=True))


def _condition_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--if-revision",
        type=int,
        metavar="N",
        help="only if the key is at revision N (see get --revision); exit 6 if not",
    )
    group.add_argument("--if-absent", action="store_true", help="only if the key does not exist; exit 6 if it does")


def _condition(args: argparse.Namespace) -> Optional[Precondition]:
    if args.if_revision is not None:
        return Precondition.revision(args.if_revision)
    if args.if_absent:
        return Precondition.ABSENT
    return None


def _put_command(type_: ValueType, kind: _Kind) -> Handler:
    def put(client: Client, args: argparse.Namespace) -> _Outcome:
        value, condition = kind.parse(args.value), _condition(args)
        if condition is None and args.ttl is None:
            return _done(getattr(client, f"{type_}_put")(args.key, value))
        return _written_at(client.put(type_, args.key, value, condition=condition, ttl=args.ttl))

    return put


def _conditional(
    plain: Handler,
    conditional: Callable[[Client, argparse.Namespace, Precondition], Written],
    show: Callable[[bool], _Outcome],
) -> Handler:
    """A write command: ``plain`` without a condition, else ``conditional``,
    whose :class:`Written` shows as ``show`` with its revision."""

    def handle(client: Client, args: argparse.Namespace) -> _Outcome:
        condition = _condition(args)
        if condition is None:
            return plain(client, args)
        written = conditional(client, args, condition)
        outcome = show(written.changed)
        outcome.text = f"{outcome.text} revision {written.revision}"
        return outcome

    return handle


_SUBCOMMANDS: Dict[str, List[str]] = {type_: ["put", "get", "del"] for type_ in VALUE_TYPES}
_SUBCOMMANDS["int"].append("incr")
_SUBCOMMANDS["map"].extend(["field-get", "field-put", "field-del"])
_SUBCOMMANDS["set"].extend(["add", "remove", "contains"])


def _add_type_commands(root: _Builder, type_: ValueType) -> _Builder:
    kind = _KINDS[type_]
    group = root.group(type_, f"{type_} values: " + ", ".join(_SUBCOMMANDS[type_]))

    put = group.command("put", f"store a {type_} value", _put_command(type_, kind))
    put.add_argument("key")
    put.add_argument("value", help=kind.value_help)
    put.add_argument("--ttl", type=int, metavar="SECONDS", help="the key disappears after this many seconds")
    _condition_options(put)

    get = group.command(
        "get",
        f"print the {type_} value (exit 1 when absent)",
        lambda c, a: (
            _revised(c.get_revised(type_, a.key)) if a.revision else _got(getattr(c, f"{type_}_get")(a.key), kind.show)
        ),
    )
    get.add_argument("key")
    get.add_argument("--revision", action="store_true", help='print {"value", "revision", "created", "expires_at"} as JSON')

    delete = group.command(
        "del",
        f"delete the {type_} key",
        _conditional(
            lambda c, a: _deleted(getattr(c, f"{type_}_delete")(a.key)),
            lambda c, a, condition: c.delete_if(type_, a.key, condition),
            _deleted,
        ),
        aliases=["delete"],
    )
    delete.add_argument("key")
    _condition_options(delete)
    return group


def _int_incr(client: Client, args: argparse.Namespace) -> _Outcome:
    after = client.int_incr(args.key, _parse_int(args.by))
    return _Outcome(after, str(after))


def _keys(client: Client, args: argparse.Namespace) -> _Outcome:
    if args.limit is not None:
        found = client.keys(args.type, prefix=args.prefix, after=args.after, limit=args.limit)
    else:
        found = list(client.iter_keys(args.type, prefix=args.prefix, after=args.after))
    return _Outcome(found, "\n".join(found) if found else None)


def _watch(client: Client, args: argparse.Namespace) -> _Outcome:
    try:
        for event in client.watch(args.type, prefix=args.prefix, since=args.since):
            line = {"revision": event.revision, "changes": [change.to_json() for change in event.changes]}
            print(json.dumps(line, ensure_ascii=False), flush=True)
    except KeyboardInterrupt:
        return _Outcome(None, None, EXIT_INTERRUPTED)
    return _Outcome(None, None)


def _txn(client: Client, args: argparse.Namespace) -> _Outcome:
    name = "stdin" if args.file == "-" else args.file
    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as file:
                text = file.read()
    except (OSError, ValueError) as error:
        raise _ConfigError(f"cannot read {name}: {error}") from None
    try:
        body = json.loads(text)
    except ValueError as error:
        raise _BadValue(f"{name} is not JSON: {error}") from None
    if not isinstance(body, dict) or not set(body) <= {"compare", "success", "failure"}:
        raise _BadValue(f'{name} must be an object of "compare", "success" and "failure" lists')
    lists = {part: body.get(part, []) for part in ("compare", "success", "failure")}
    if not all(isinstance(items, list) for items in lists.values()):
        raise _BadValue(f'{name}: "compare", "success" and "failure" must be lists')
    outcome = client.txn(
        compare=[Compare(item) for item in lists["compare"]],
        success=[TxnOp.from_json(item) for item in lists["success"]],
        failure=[TxnOp.from_json(item) for item in lists["failure"]],
    )
    code = EXIT_OK if outcome.succeeded else EXIT_PRECONDITION_FAILED
    return _Outcome(outcome.answer, _dumps(outcome.answer), code)


def _ready(client: Client, args: argparse.Namespace) -> _Outcome:
    if client.readyz():
        return _Outcome(True, "ready")
    return _Outcome(False, None, EXIT_UNAVAILABLE, "not ready")


# --------------------------------------------------------------------------
# Export and import: every key of every type, one JSON object per line


EXPORT_PAGE: Optional[int] = None
"""Keys listed per request by export; None: the server's default page."""

_KEY = re.compile(r"[0-9A-Za-z_]{1,256}")
"""The API's key rule, checked by import so that a bad key writes nothing."""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@contextmanager
def _output(path: str) -> Iterator[TextIO]:
    """stdout for ``-``; else ``path``, which appears only once whole: a
    partial export would import as if it were complete."""
    if path == "-":
        yield sys.stdout
        return
    fd, partial = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".kvs-export-")
    try:
        with open(fd, "w", encoding="utf-8", newline="\n") as file:
            yield file
        os.replace(partial, path)
    except BaseException:
        os.unlink(partial)
        raise


def _export(client: Client, args: argparse.Namespace) -> _Outcome:
    count = 0
    try:
        with _output(args.file) as out:
            for type_ in VALUE_TYPES:
                get = getattr(client, f"{type_}_get")
                for key in client.iter_keys(type_, page_size=EXPORT_PAGE):
                    value = get(key)
                    if value is None:  # deleted since it was listed
                        continue
                    if isinstance(value, dict):
                        value = dict(sorted(value.items()))
                    record = {"type": type_, "key": key, "value": _jsonable(value)}
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    count += 1
    except KvsError:
        raise  # KvsConnectionError is an OSError too, but not the file's
    except OSError as error:
        raise _ConfigError(f"cannot write {'stdout' if args.file == '-' else args.file}: {error}") from None
    return _Outcome(count, f"exported {_count(count, 'key')}", to_stderr=args.file == "-")


def _is_int_in(low: int, high: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _fits_f32(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(struct.unpack("f", struct.pack("f", value))[0])
    except OverflowError:
        return False


def _is_text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")  # JSON's "\ud800" is a lone surrogate, which UTF-8 cannot carry
    except UnicodeEncodeError:
        return False
    return True


_IMPORTABLE: Dict[str, Tuple[Callable[[Any], bool], str]] = {
    "int": (_is_int_in(-(2**31), 2**31 - 1), "an integer from -2147483648 to 2147483647"),
    "uint": (_is_int_in(0, 2**32 - 1), "an integer from 0 to 4294967295"),
    "float": (_fits_f32, "a number that fits a 32-bit float"),
    "str": (_is_text, "a string"),
    "map": (lambda v: isinstance(v, dict) and all(map(_is_text, [*v, *v.values()])), "an object of strings"),
    "set": (lambda v: isinstance(v, list) and all(map(_is_text, v)), "an array of strings"),
}


def _record(line: str) -> Tuple[str, str, Any]:
    """One exported line as (type, key, value); :class:`_BadValue` says
    what is wrong with it."""
    try:
        record = json.loads(line)
    except ValueError as error:
        raise _BadValue(f"not JSON: {error}") from None
    if not isinstance(record, dict) or set(record) != {"type", "key", "value"}:
        raise _BadValue('not an object of exactly "type", "key" and "value"')
    type_, key, value = record["type"], record["key"], record["value"]
    if type_ not in VALUE_TYPES:
        raise _BadValue(f"type must be one of {', '.join(VALUE_TYPES)}, not {json.dumps(type_)}")
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise _BadValue(f"key must be 1 to 256 letters, digits or underscores, not {json.dumps(key)}")
    valid, expected = _IMPORTABLE[type_]
    if not valid(value):
        raise _BadValue(f"{type_} value must be {expected}")
    return type_, key, value


_BAD_LINES_SHOWN = 10


def _records(path: str) -> List[Tuple[int, str, str, Any]]:
    """Every record of ``path`` (stdin for ``-``) with its line number, or
    :class:`_BadValue` naming the bad lines; blank lines are skipped."""
    name = "stdin" if path == "-" else path
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as file:
                data = file.read()
    except OSError as error:
        raise _ConfigError(f"cannot read {name}: {error}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _BadValue(f"{name} is not UTF-8: {error}") from None
    records: List[Tuple[int, str, str, Any]] = []
    bad: List[str] = []
    # Only \n ends a line: str.splitlines would also split at U+2028 and
    # the like, which JSON strings may hold unescaped.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip(" \t\r"):
            continue
        try:
            records.append((number, *_record(line)))
        except _BadValue as error:
            bad.append(f"line {number}: {error}")
    if bad:
        shown = bad[:_BAD_LINES_SHOWN]
        if len(bad) > len(shown):
            shown.append(f"and {len(bad) - len(shown)} more")
        raise _BadValue(f"{name} has {_count(len(bad), 'bad line')}; nothing was imported:\n  " + "\n  ".join(shown))
    return records


def _import(client: Client, args: argparse.Namespace) -> _Outcome:
    records = _records(args.file)
    for done, (number, type_, key, value) in enumerate(records):
        try:
            getattr(client, f"{type_}_put")(key, value)
        except KvsError as error:
            error.detail = f"line {number}: {error.detail} (imported before it: {_count(done, 'key')})"
            raise
    return _Outcome(len(records), f"imported {_count(len(records), 'key')}")


def build_parser() -> argparse.ArgumentParser:
    """The ``kvs`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="kvs",
        description="Command line for KVS, the key-value service.",
        epilog=EPILOG % {"default_url": DEFAULT_URL},
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _common_options(parser, defaults=True)
    root = _Builder(parser.add_subparsers(title="commands", metavar="COMMAND", required=True))

    for type_ in VALUE_TYPES:
        group = _add_type_commands(root, type_)

        if type_ == "int":
            incr = group.command("incr", "add to the value (absent counts as 0) and print the value after", _int_incr)
            incr.add_argument("key")
            incr.add_argument("--by", default="1", metavar="N", help="amount, may be negative (default 1)")

        if type_ == "map":
            field_get = group.command(
                "field-get",
                "print one field (exit 1 when the map or field is absent)",
                lambda c, a: _got(c.map_field_get(a.key, a.field)),
            )
            field_put = group.command(
                "field-put",
                "set one field (creates the map)",
                _conditional(
                    lambda c, a: _done(c.map_field_put(a.key, a.field, a.value)),
                    lambda c, a, condition: c.map_field_put_if(a.key, a.field, a.value, condition),
                    lambda _changed: _done(),
                ),
            )
            field_del = group.command(
                "field-del",
                "remove one field",
                _conditional(
                    lambda c, a: _deleted(c.map_field_delete(a.key, a.field)),
                    lambda c, a, condition: c.map_field_delete_if(a.key, a.field, condition),
                    _deleted,
                ),
                aliases=["field-delete"],
            )
            for command in (field_get, field_put, field_del):
                command.add_argument("key")
                command.add_argument("field")
            field_put.add_argument("value")
            _condition_options(field_put)
            _condition_options(field_del)

        if type_ == "set":
            add = group.command(
                "add",
                "add a member (creates the set)",
                _conditional(
                    lambda c, a: _added(c.set_add(a.key, a.member)),
                    lambda c, a, condition: c.set_add_if(a.key, a.member, condition),
                    _added,
                ),
            )
            remove = group.command(
                "remove",
                "remove a member",
                _conditional(
                    lambda c, a: _removed(c.set_remove(a.key, a.member)),
                    lambda c, a, condition: c.set_remove_if(a.key, a.member, condition),
                    _removed,
                ),
            )
            contains = group.command(
                "contains",
                "print true or false",
                lambda c, a: _flag("true", "false")(c.set_contains(a.key, a.member)),
            )
            for command in (add, remove, contains):
                command.add_argument("key")
                command.add_argument("member")
            _condition_options(add)
            _condition_options(remove)

    keys = root.command("keys", "list the keys of one type, sorted, one per line", _keys)
    keys.add_argument("type", choices=VALUE_TYPES)
    keys.add_argument("--prefix", help="only keys starting with this")
    keys.add_argument("--after", metavar="KEY", help="only keys greater than this (to page)")
    keys.add_argument("--limit", type=int, metavar="N", help="one page of at most N keys (default: every key)")

    watch = root.command(
        "watch",
        "print each change as it becomes durable, one JSON line per revision, until interrupted",
        _watch,
    )
    watch.add_argument("--type", choices=VALUE_TYPES, help="only keys of this type (default: all)")
    watch.add_argument("--prefix", help="only keys starting with this")
    watch.add_argument(
        "--since", type=int, metavar="N", help="from the changes after revision N (default: from now on)"
    )

    txn = root.command(
        "txn",
        "run a transaction (POST /txn) read as JSON from FILE and print the answer; exit 6 when its compares fail",
        _txn,
    )
    txn.add_argument("file", nargs="?", default="-", metavar="FILE", help="what to read (default -, stdin)")

    delete = root.command(
        "del",
        "delete a key from every type that holds it",
        lambda c, a: _deleted(c.delete_everywhere(a.key)),
        aliases=["delete"],
    )
    delete.add_argument("key")

    export = root.command(
        "export",
        "write every key of every type as JSON lines (not a snapshot: stop writers first)",
        _export,
    )
    export.add_argument("file", nargs="?", default="-", metavar="FILE", help="where to write (default -, stdout)")
    import_ = root.command(
        "import",
        "store every key of a file written by export; a file with a bad line writes nothing",
        _import,
    )
    import_.add_argument("file", nargs="?", default="-", metavar="FILE", help="what to read (default -, stdin)")

    echo = root.command(
        "echo", "print the text with the case of each letter swapped", lambda c, a: _got(c.echo(a.text))
    )
    echo.add_argument("text")
    root.command("hello", "print the server's greeting", lambda c, a: _got(c.hello()))
    fibo = root.command(
        "fibo", "print the N-th Fibonacci number (0 <= N <= 93)", lambda c, a: _got(c.fibo(_parse_int(a.n)))
    )
    fibo.add_argument("n", metavar="N")
    root.command(
        "health",
        "check that the server answers (/healthz)",
        lambda c, a: _Outcome(c.healthz(), "ok"),
        aliases=["healthz"],
    )
    root.command("ready", "check that the server is ready (/readyz); exit 4 when not", _ready, aliases=["readyz"])
    return parser


# --------------------------------------------------------------------------
# Running


def _read_token(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            token = file.read().strip()
    except (OSError, ValueError) as error:
        raise _ConfigError(f"cannot read the token file: {error}") from None
    if not token:
        raise _ConfigError(f"the token file {path!r} is empty")
    return token


def _token(args: argparse.Namespace) -> Optional[str]:
    """The token: from --token or --token-file, else from KVS_TOKEN or
    KVS_TOKEN_FILE; at most one of each pair."""
    sources = [
        ("--token", args.token, "--token-file", args.token_file),
        ("KVS_TOKEN", os.environ.get("KVS_TOKEN") or None, "KVS_TOKEN_FILE", os.environ.get("KVS_TOKEN_FILE") or None),
    ]
    for token_name, token, file_name, token_file in sources:
        if token is not None and token_file is not None:
            raise _ConfigError(f"give {token_name} or {file_name}, not both")
        if token is not None:
            return token
        if token_file is not None:
            return _read_token(token_file)
    return None


def _client(args: argparse.Namespace) -> Client:
    """The client the options ask for; :class:`_ConfigError` when the token
    or the CA file cannot be used. Messages never quote the token."""
    token = _token(args)
    try:
        return Client(args.url, timeout=args.timeout, token=token, ca_file=args.ca_file)
    except ValueError as error:
        raise _ConfigError(str(error)) from None
    except OSError as error:
        raise _ConfigError(f"cannot use the CA file {args.ca_file!r}: {error}") from None


def _error_code(error: KvsError) -> int:
    if isinstance(error, OutcomeUnknown):
        return EXIT_OUTCOME_UNKNOWN
    if isinstance(error, PreconditionFailed):
        return EXIT_PRECONDITION_FAILED
    if isinstance(error, Compacted):
        return EXIT_COMPACTED
    if isinstance(error, KvsConnectionError) or error.status is None:
        return EXIT_UNAVAILABLE
    return EXIT_CLIENT_ERROR if 400 <= error.status < 500 else EXIT_UNAVAILABLE


def _report_error(error: Exception, as_json: bool, stderr: TextIO) -> None:
    if as_json:
        body: Dict[str, Any] = {"error": type(error).__name__, "detail": getattr(error, "detail", str(error))}
        if isinstance(error, KvsError):
            body["status"] = error.status
        if isinstance(error, Unavailable):
            body["retry_after"] = error.retry_after
        if isinstance(error, PreconditionFailed):
            body["current_revision"] = error.current_revision
        if isinstance(error, Compacted):
            body["oldest"] = error.oldest
        print(json.dumps(body, ensure_ascii=False), file=stderr)
        return
    message = str(error)
    if isinstance(error, Unavailable) and error.retry_after is not None:
        message += f" (retry after {error.retry_after:g} s)"
    print(f"kvs: error: {message}", file=stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    stdout, stderr = sys.stdout, sys.stderr
    try:
        client = _client(args)
    except _ConfigError as error:
        parser.error(str(error))
    try:
        with client:
            outcome: _Outcome = args.handler(client, args)
    except KvsError as error:
        _report_error(error, args.json, stderr)
        return _error_code(error)
    except (_BadValue, ValueError) as error:
        _report_error(error, args.json, stderr)
        return EXIT_CLIENT_ERROR
    except _ConfigError as error:
        _report_error(error, args.json, stderr)
        return EXIT_USAGE

    result = stderr if outcome.to_stderr else stdout
    if args.json:
        print(_dumps(outcome.value), file=result)
    else:
        if outcome.text is not None:
            print(outcome.text, file=result)
        if outcome.note is not None:
            print(outcome.note, file=stderr)
    return outcome.code


if __name__ == "__main__":
    raise SystemExit(main())
