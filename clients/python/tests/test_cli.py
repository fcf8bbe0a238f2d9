"""The ``kvs`` command line against a real kvs-server.

Most tests call :func:`kvs_client.cli.main` in-process (fast); the last ones
run it as a user does, in a child process, through ``python -m`` and the
installed console script.
"""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional

import pytest

from kvs_client import VALUE_TYPES, Client, cli


class Run(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture
def kvs_at(capsys: pytest.CaptureFixture[str]):
    """Run ``kvs --url URL ARGS...`` in-process."""

    def run(url: str, *args: str) -> Run:
        try:
            code = cli.main(["--url", url, *args])
        except SystemExit as exit:  # argparse usage errors, --help
            code = int(exit.code or 0)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture
def kvs(base_url: str, kvs_at):
    """Run ``kvs --url <the session's server> ARGS...`` in-process."""
    return functools.partial(kvs_at, base_url)


def run_child(args: List[str], env: Optional[Dict[str, str]] = None) -> Run:
    done = subprocess.run(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=60,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def env_with(**variables: str) -> Dict[str, str]:
    env = dict(os.environ)
    env.pop("KVS_URL", None)
    env.update(variables)
    return env


def unused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# ---------------------------------------------------------------- values


@pytest.mark.parametrize(
    "type_, value, shown",
    [
        ("int", "5", "5"),
        ("int", "-2147483648", "-2147483648"),
        ("uint", "4294967295", "4294967295"),
        ("float", "1.5", "1.5"),
        ("float", "-2e3", "-2000.0"),
        ("str", "hello world", "hello world"),
        ("map", '{"b": "2", "a": "1"}', '{"a": "1", "b": "2"}'),
        ("set", '["y", "x", "y"]', '["x", "y"]'),
    ],
)
def test_put_get_del_of_every_type(kvs, key: str, type_: str, value: str, shown: str) -> None:
    assert kvs(type_, "put", key, "--", value) == (0, "OK\n", "")
    assert kvs(type_, "get", key) == (0, shown + "\n", "")
    assert kvs(type_, "del", key) == (0, "deleted\n", "")
    assert kvs(type_, "delete", key) == (0, "not found\n", "")


@pytest.mark.parametrize("type_", ["int", "uint", "float", "str", "map", "set"])
def test_get_of_an_absent_key_exits_1_with_nothing_on_stdout(kvs, key: str, type_: str) -> None:
    assert kvs(type_, "get", key) == (1, "", "not found\n")


def test_json_output_of_a_get(kvs, key: str) -> None:
    kvs("map", "put", key, '{"a": "b"}')
    code, out, _ = kvs("--json", "map", "get", key)
    assert code == 0 and json.loads(out) == {"a": "b"}
    code, out, _ = kvs("set", "put", key, '["b", "a"]')
    code, out, _ = kvs("set", "get", key, "--json")
    assert code == 0 and json.loads(out) == ["a", "b"]
    kvs("float", "put", key, "0.1")
    assert kvs("float", "get", key, "--json") == (0, "0.1\n", "")
    kvs("str", "put", key, "hi")
    assert kvs("str", "get", key, "--json") == (0, '"hi"\n', "")


def test_json_output_of_an_absent_key_is_null_and_exits_1(kvs, key: str) -> None:
    assert kvs("--json", "int", "get", key) == (1, "null\n", "")


def test_json_output_of_put_and_delete(kvs, key: str) -> None:
    assert kvs("--json", "int", "put", key, "1") == (0, "null\n", "")
    assert kvs("--json", "int", "del", key) == (0, "true\n", "")
    assert kvs("--json", "int", "del", key) == (0, "false\n", "")


def test_values_that_look_like_options_follow_a_double_dash(kvs, key: str) -> None:
    assert kvs("int", "put", key, "-5") == (0, "OK\n", "")
    assert kvs("str", "put", key, "--", "--json") == (0, "OK\n", "")
    assert kvs("str", "get", key) == (0, "--json\n", "")


def test_str_put_stores_the_argument_exactly(kvs, key: str) -> None:
    assert kvs("str", "put", key, "  -dash and spaces ")[0] == 0
    assert kvs("str", "get", key).out == "  -dash and spaces \n"
    assert kvs("str", "put", key, "")[0] == 0
    assert kvs("--json", "str", "get", key).out == '""\n'


# ---------------------------------------------------------------- int incr


def test_int_incr_prints_the_value_after(kvs, key: str) -> None:
    assert kvs("int", "incr", key) == (0, "1\n", "")
    assert kvs("int", "incr", key, "--by", "10") == (0, "11\n", "")
    assert kvs("int", "incr", key, "--by", "-3") == (0, "8\n", "")
    assert kvs("int", "get", key).out == "8\n"
    assert kvs("--json", "int", "incr", key) == (0, "9\n", "")


def test_int_incr_overflow_exits_3(kvs, key: str) -> None:
    kvs("int", "put", key, "2147483647")
    code, out, err = kvs("int", "incr", key)
    assert (code, out) == (3, "")
    assert err.startswith("kvs: error: 409")
    assert kvs("int", "get", key).out == "2147483647\n"


# ---------------------------------------------------------------- invalid values


@pytest.mark.parametrize(
    "args",
    [
        ["int", "put", "{key}", "abc"],
        ["int", "put", "{key}", "2147483648"],
        ["uint", "put", "{key}", "-1"],
        ["float", "put", "{key}", "nan"],
        ["float", "put", "{key}", "x1"],
        ["map", "put", "{key}", "not json"],
        ["map", "put", "{key}", '{"a": 1}'],
        ["set", "put", "{key}", '"abc"'],
        ["int", "put", "bad-key", "1"],
        ["fibo", "94"],
        ["fibo", "ten"],
        ["keys", "int", "--limit", "-1"],
        ["int", "incr", "{key}", "--by", "x"],
    ],
)
def test_an_invalid_value_exits_3_and_stores_nothing(kvs, key: str, args: List[str]) -> None:
    code, out, err = kvs(*[arg.replace("{key}", key) for arg in args])
    assert (code, out) == (3, "")
    assert err.startswith("kvs: error: ")
    for type_ in ["int", "uint", "float", "map", "set"]:
        assert kvs(type_, "get", key).code == 1


def test_an_invalid_value_under_json_reports_the_error_as_json(kvs, key: str) -> None:
    code, out, err = kvs("--json", "int", "put", key, "2147483648")
    assert (code, out) == (3, "")
    error = json.loads(err)
    assert error["error"] == "InvalidValue"
    assert error["status"] == 400
    assert error["detail"]


# ---------------------------------------------------------------- map fields and set members


def test_map_field_commands(kvs, key: str) -> None:
    assert kvs("map", "field-put", key, "a/b", "x y") == (0, "OK\n", "")
    assert kvs("map", "field-get", key, "a/b") == (0, "x y\n", "")
    assert kvs("map", "field-get", key, "nope") == (1, "", "not found\n")
    assert kvs("map", "get", key).out == '{"a/b": "x y"}\n'
    assert kvs("map", "field-del", key, "a/b") == (0, "deleted\n", "")
    assert kvs("map", "field-delete", key, "a/b") == (0, "not found\n", "")
    assert kvs("map", "get", key).out == "{}\n"


def test_set_member_commands(kvs, key: str) -> None:
    assert kvs("set", "add", key, "m") == (0, "added\n", "")
    assert kvs("set", "add", key, "m") == (0, "already a member\n", "")
    assert kvs("set", "contains", key, "m") == (0, "true\n", "")
    assert kvs("set", "contains", key, "n") == (0, "false\n", "")
    assert kvs("--json", "set", "contains", key, "m") == (0, "true\n", "")
    assert kvs("set", "remove", key, "m") == (0, "removed\n", "")
    assert kvs("set", "remove", key, "m") == (0, "not a member\n", "")
    assert kvs("set", "get", key).out == "[]\n"


# ---------------------------------------------------------------- revisions and conditions


def revision_of(kvs, type_: str, key: str) -> int:
    code, out, _ = kvs(type_, "get", key, "--revision")
    assert code == 0, out
    return int(json.loads(out)["revision"])


def test_get_with_its_revision_and_a_put_on_it(kvs, key: str) -> None:
    assert kvs("int", "put", key, "1", "--if-absent") == (0, f"OK revision {revision_of(kvs, 'int', key)}\n", "")
    code, out, _ = kvs("int", "get", key, "--revision")
    found = json.loads(out)
    rev = found["revision"]
    assert code == 0 and found == {"value": 1, "revision": rev, "created": rev, "expires_at": None}
    code, out, _ = kvs("--json", "int", "put", key, "2", "--if-revision", str(found["revision"]))
    assert code == 0 and int(out) == revision_of(kvs, "int", key) > found["revision"]


def test_a_failed_precondition_exits_6_and_changes_nothing(kvs, key: str) -> None:
    kvs("str", "put", key, "a")
    stale = revision_of(kvs, "str", key)
    kvs("str", "put", key, "b")
    now = revision_of(kvs, "str", key)
    code, out, err = kvs("str", "put", key, "c", "--if-revision", str(stale))
    assert (code, out) == (6, "") and "412" in err and str(now) in err
    code, _, err = kvs("--json", "str", "put", key, "c", "--if-absent")
    assert code == 6 and json.loads(err)["current_revision"] == now
    assert kvs("str", "del", key, "--if-revision", str(stale)).code == 6
    assert kvs("str", "get", key).out == "b\n"
    assert kvs("str", "del", key, "--if-revision", str(now)).out.startswith("deleted revision ")


def test_field_and_member_commands_take_conditions(kvs, key: str) -> None:
    assert kvs("map", "field-put", key, "f", "v", "--if-absent").out.startswith("OK revision ")
    assert kvs("map", "field-put", key, "g", "v", "--if-absent").code == 6
    assert kvs("--json", "map", "field-put", key, "h", "v") == (0, "null\n", "")
    rev = revision_of(kvs, "map", key)
    assert kvs("map", "field-del", key, "f", "--if-revision", str(rev)).out.startswith("deleted revision ")
    assert kvs("set", "add", key, "x", "--if-absent").out.startswith("added revision ")
    assert kvs("set", "remove", key, "x", "--if-revision", "1").code == 6
    assert kvs("set", "remove", key, "x", "--if-revision", str(revision_of(kvs, "set", key))).code == 0
    assert kvs("set", "contains", key, "x").out == "false\n"


def test_put_with_a_ttl_says_when_the_key_expires(kvs, key: str) -> None:
    assert kvs("str", "put", key, "x", "--ttl", "600").out.startswith("OK revision ")
    code, out, _ = kvs("str", "get", key, "--revision")
    assert code == 0 and json.loads(out)["expires_at"].endswith("Z")
    assert kvs("str", "put", key, "x", "--ttl", "0").code == 3
    assert kvs("str", "put", key, "x", "--if-absent", "--if-revision", "1").code == 2


def test_txn_reads_its_body_and_prints_the_answer(kvs, key: str, tmp_path: Path) -> None:
    assert kvs("txn", str(tmp_path / "missing.json")).code == 2
    (tmp_path / "bad.json").write_text('{"compare": {}}')
    assert kvs("txn", str(tmp_path / "bad.json")).code == 3
    (tmp_path / "op.json").write_text('{"success": [{"op": "explode", "key": "a"}]}')
    assert kvs("txn", str(tmp_path / "op.json")).code == 3


def test_txn_exits_6_when_its_compares_fail(kvs, key: str, tmp_path: Path) -> None:
    body = {
        "compare": [{"type": "int", "key": key, "absent": True}],
        "success": [{"op": "put", "type": "int", "key": key, "value": 1}],
        "failure": [{"op": "get", "type": "int", "key": key}],
    }
    (tmp_path / "t.json").write_text(json.dumps(body))
    code, out, _ = kvs("txn", str(tmp_path / "t.json"))
    assert code == 0 and json.loads(out)["succeeded"] is True
    code, out, _ = kvs("txn", str(tmp_path / "t.json"))
    answer = json.loads(out)
    assert code == 6 and answer["succeeded"] is False and answer["results"][0]["value"] == 1


def test_watch_prints_one_json_line_per_revision(base_url: str, client: Client, key: str) -> None:
    start = client.put("int", key, 1)
    client.int_put(key, 2)
    child = subprocess.Popen(
        [sys.executable, "-m", "kvs_client", "--url", base_url, "watch", "--prefix", key, "--since", str(start - 1)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [json.loads(child.stdout.readline()) for _ in range(2)]
    finally:
        child.kill()
        child.wait()
    assert [line["revision"] for line in lines] == [start, start + 1]
    assert lines[1]["changes"] == [{"kind": "put", "type": "int", "key": key, "value": 2}]


# ---------------------------------------------------------------- keys and del


def test_keys_lists_one_per_line(kvs, key: str) -> None:
    for suffix in ["b", "a", "c"]:
        kvs("int", "put", f"{key}_{suffix}", "1")
    assert kvs("keys", "int", "--prefix", key).out == f"{key}_a\n{key}_b\n{key}_c\n"
    assert kvs("keys", "int", "--prefix", key, "--limit", "2").out == f"{key}_a\n{key}_b\n"
    assert kvs("keys", "int", "--prefix", key, "--after", f"{key}_a").out == f"{key}_b\n{key}_c\n"
    code, out, _ = kvs("--json", "keys", "int", "--prefix", key)
    assert code == 0 and json.loads(out) == [f"{key}_a", f"{key}_b", f"{key}_c"]
    assert kvs("keys", "str", "--prefix", key) == (0, "", "")
    assert kvs("--json", "keys", "str", "--prefix", key).out == "[]\n"


def test_keys_without_a_limit_lists_every_page(kvs, client: Client, key: str) -> None:
    want = [f"{key}_{i:04}" for i in range(1005)]
    for k in want:
        client.int_put(k, 0)
    code, out, _ = kvs("keys", "int", "--prefix", key)
    assert code == 0 and out.splitlines() == want
    assert kvs("keys", "int", "--prefix", key, "--after", want[1001]).out.splitlines() == want[1002:]


def test_del_removes_the_key_from_every_type(kvs, key: str) -> None:
    kvs("int", "put", key, "1")
    kvs("str", "put", key, "x")
    assert kvs("del", key) == (0, "deleted\n", "")
    assert kvs("int", "get", key).code == 1
    assert kvs("str", "get", key).code == 1
    assert kvs("del", key) == (0, "not found\n", "")


# ---------------------------------------------------------------- export and import


# What an export must carry exactly: the ends of the integer ranges, floats
# that are not exact in binary, text with newlines and U+2028 (a line break
# to str.splitlines, not to JSON lines), empty maps and sets. With pages of
# 3 keys, int fills two pages exactly (then comes an empty one) and every
# other type ends on a short page.
EVERY_TYPE = {
    "int": [0, -2147483648, 2147483647, 7, -1, 42],
    "uint": [0, 4294967295, 1, 2, 3, 4, 5],
    "float": [0.1, -2.5, 3.4028234663852886e38, 1e-45, 16777216.0, -0.0, -7.25e-5],
    "str": ["", "hello", "line\nbreak", "a\u2028b\u0085c", "h\u00e9llo \u2713", '{"not": "a record"}', "  "],
    "map": [{}, {"a": "b"}, {"\u043a\u043b\u044e\u0447": "x\ny", "b": ""}, {"z": "1", "a": "2"}, {"k": "v"}],
    "set": [[], ["x"], ["b", "a"], ["\u2713", "with space"], ["1"]],
}


def fill(url: str) -> int:
    with Client(url) as kvs:
        for type_, values in EVERY_TYPE.items():
            for i, value in enumerate(values):
                getattr(kvs, f"{type_}_put")(f"k{i}", value)
    return sum(map(len, EVERY_TYPE.values()))


def test_export_then_import_moves_every_key_of_every_type(
    start_server, kvs_at, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "EXPORT_PAGE", 3)
    source, target = start_server(), start_server()
    count = fill(source.url)
    dump, again = tmp_path / "dump.jsonl", tmp_path / "again.jsonl"

    assert kvs_at(source.url, "export", str(dump)) == (0, f"exported {count} keys\n", "")
    assert kvs_at(target.url, "import", str(dump)) == (0, f"imported {count} keys\n", "")
    assert kvs_at(target.url, "export", str(again)) == (0, f"exported {count} keys\n", "")

    assert again.read_bytes() == dump.read_bytes()
    lines = dump.read_text(encoding="utf-8").split("\n")
    assert lines.pop() == "" and len(lines) == count
    records = [json.loads(line) for line in lines]
    assert all(list(record) == ["type", "key", "value"] for record in records)
    assert [record["type"] for record in records] == sorted((r["type"] for r in records), key=VALUE_TYPES.index)
    exported = {(record["type"], record["key"]): record["value"] for record in records}
    assert exported["int", "k1"] == -2147483648 and exported["uint", "k1"] == 4294967295
    assert exported["float", "k0"] == 0.1
    assert exported["str", "k3"] == "a\u2028b\u0085c"
    assert exported["set", "k2"] == ["a", "b"]
    assert list(exported["map", "k3"]) == ["a", "z"]
    with Client(target.url) as kvs:
        assert kvs.map_get("k2") == EVERY_TYPE["map"][2]
        assert kvs.set_get("k3") == set(EVERY_TYPE["set"][3])
        assert kvs.keys("int") == [f"k{i}" for i in range(len(EVERY_TYPE["int"]))]


def test_export_writes_to_stdout_and_import_reads_stdin(start_server, kvs_at, monkeypatch: pytest.MonkeyPatch) -> None:
    source, target = start_server(), start_server()
    count = fill(source.url)
    code, out, err = kvs_at(source.url, "export")
    assert (code, err) == (0, f"exported {count} keys\n")
    assert kvs_at(source.url, "--json", "export", "-")[1:] == (out, f"{count}\n")

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(out.encode("utf-8"))))
    assert kvs_at(target.url, "--json", "import") == (0, f"{count}\n", "")
    assert kvs_at(target.url, "export") == (0, out, f"exported {count} keys\n")


def test_import_checks_every_line_before_writing_anything(kvs, key: str, tmp_path: Path) -> None:
    lines = [
        {"type": "int", "key": key, "value": 1},
        "not json",
        "",
        {"type": "bogus", "key": key, "value": 1},
        {"type": "int", "key": "bad-key", "value": 1},
        {"type": "int", "key": key, "value": 2147483648},
        {"type": "float", "key": key, "value": 1e39},
        {"type": "map", "key": key, "value": {"a": 1}},
        {"type": "set", "key": key, "value": "ab"},
        {"type": "str", "key": key, "value": "x", "extra": 1},
        {"type": "int", "key": key, "value": True},
        '{"type": "str", "key": "%s", "value": "\\ud800"}' % key,
        {"type": "str", "key": key, "value": "fine"},
    ]
    dump = tmp_path / "bad.jsonl"
    dump.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines), encoding="utf-8")

    code, out, err = kvs("import", str(dump))
    assert (code, out) == (3, "")
    assert err.startswith(f"kvs: error: {dump} has 10 bad lines; nothing was imported:\n")
    for number in [2, 4, 5, 6, 7, 8, 9, 10, 11, 12]:
        assert f"\n  line {number}: " in err
    assert "line 1:" not in err and "line 13:" not in err
    assert kvs("int", "get", key).code == 1
    assert kvs("str", "get", key).code == 1

    dump.write_text("x\n" * 15, encoding="utf-8")
    code, _, err = kvs("import", str(dump))
    assert code == 3 and "line 10: " in err and "line 11: " not in err and err.endswith("\n  and 5 more\n")


def test_import_stops_at_the_first_line_the_server_refuses(start_server, kvs_at, tmp_path: Path) -> None:
    target = start_server("--max-value-bytes", "8")
    dump = tmp_path / "dump.jsonl"
    values = ["short", "far too long", "after"]
    lines = [json.dumps({"type": "str", "key": f"k{i}", "value": value}) for i, value in enumerate(values)]
    dump.write_text("\n".join(lines) + "\n", encoding="utf-8")

    code, out, err = kvs_at(target.url, "import", str(dump))
    assert (code, out) == (3, "")
    assert err.startswith("kvs: error: 413: line 2: ") and err.endswith("(imported before it: 1 key)\n")
    with Client(target.url) as kvs:
        assert kvs.keys("str") == ["k0"]


def test_export_and_import_of_a_file_that_cannot_be_used_exit_2(kvs, tmp_path: Path) -> None:
    code, out, err = kvs("export", str(tmp_path / "no-such-dir" / "dump.jsonl"))
    assert (code, out) == (2, "") and err.startswith("kvs: error: cannot write ")
    code, out, err = kvs("import", str(tmp_path / "missing.jsonl"))
    assert (code, out) == (2, "") and err.startswith("kvs: error: cannot read ")


def test_an_export_that_fails_leaves_no_file(kvs_at, tmp_path: Path) -> None:
    code, _, err = kvs_at(unused_url(), "--timeout", "2", "export", str(tmp_path / "dump.jsonl"))
    assert code == 4 and err.startswith("kvs: error: cannot reach KVS")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- service commands


def test_service_commands(kvs) -> None:
    assert kvs("echo", "Hello World") == (0, "hELLO wORLD\n", "")
    code, out, _ = kvs("hello")
    assert code == 0 and "kvs" in out.lower()
    assert kvs("fibo", "10") == (0, "55\n", "")
    assert kvs("--json", "fibo", "93") == (0, "12200160415121876738\n", "")
    assert kvs("health") == (0, "ok\n", "")
    assert kvs("ready") == (0, "ready\n", "")
    assert kvs("--json", "ready") == (0, "true\n", "")


# ---------------------------------------------------------------- usage and transport


@pytest.mark.parametrize("args", [[], ["int"], ["bogus"], ["int", "get"], ["keys", "bogus"], ["int", "put", "k"]])
def test_usage_errors_exit_2(kvs, args: List[str]) -> None:
    code, out, err = kvs(*args)
    assert (code, out) == (2, "")
    assert "usage:" in err


def test_help_documents_the_exit_codes(kvs) -> None:
    code, out, _ = kvs("--help")
    assert code == 0
    assert "exit codes:" in out
    for line in [
        "0  success",
        "1  not found",
        "2  usage error",
        "3  invalid value",
        "4  server unavailable",
        "5  outcome unknown",
        "6  precondition failed",
        "7  compacted",
    ]:
        assert line in out


class _OutcomeUnknown(BaseHTTPRequestHandler):
    """Answers every request as kvs-server answers a write whose outcome it
    could not learn (a real server does so only when its log fails)."""

    def answer(self) -> None:
        body = json.dumps(
            {
                "type": "urn:kvs:problem:outcome-unknown",
                "title": "Outcome Unknown",
                "status": 504,
                "detail": "the log did not tell",
            }
        ).encode()
        self.send_response(504)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("KVS-Outcome", "unknown")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_POST = do_DELETE = answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def outcome_unknown_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OutcomeUnknown)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_outcome_unknown_exits_5_not_4(kvs_at, outcome_unknown_url: str) -> None:
    code, out, err = kvs_at(outcome_unknown_url, "int", "incr", "counter")
    assert (code, out) == (5, "")
    assert err == "kvs: error: 504: the log did not tell\n"
    code, _, err = kvs_at(outcome_unknown_url, "--json", "int", "incr", "counter")
    assert code == 5
    assert json.loads(err) == {"error": "OutcomeUnknown", "detail": "the log did not tell", "status": 504}


def test_an_unreachable_server_exits_4(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--url", unused_url(), "--timeout", "2", "int", "get", "k"]) == 4
    assert capsys.readouterr().err.startswith("kvs: error: cannot reach KVS at ")
    assert cli.main(["--json", "--url", unused_url(), "health"]) == 4
    error = json.loads(capsys.readouterr().err)
    assert error["error"] == "KvsConnectionError" and error["status"] is None


def test_kvs_url_environment_variable_is_the_default_url(
    base_url: str, key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KVS_URL", base_url)
    assert cli.main(["int", "put", key, "7"]) == 0
    assert cli.main(["int", "get", key]) == 0
    assert capsys.readouterr().out == "OK\n7\n"
    # --url wins over the environment.
    monkeypatch.setenv("KVS_URL", unused_url())
    assert cli.main(["--url", base_url, "int", "get", key]) == 0
    assert cli.main(["int", "get", key]) == 4


# ---------------------------------------------------------------- as a user runs it


def test_python_m_kvs_client_cli_with_kvs_url(base_url: str, key: str) -> None:
    env = env_with(KVS_URL=base_url)
    assert run_child([sys.executable, "-m", "kvs_client.cli", "int", "put", key, "5"], env) == (0, "OK\n", "")
    assert run_child([sys.executable, "-m", "kvs_client.cli", "int", "get", key], env) == (0, "5\n", "")
    assert run_child([sys.executable, "-m", "kvs_client.cli", "--json", "int", "incr", key], env) == (0, "6\n", "")
    assert run_child([sys.executable, "-m", "kvs_client.cli", "int", "get", key + "_no"], env) == (1, "", "not found\n")


def test_python_m_kvs_client_runs_the_cli(base_url: str) -> None:
    done = run_child([sys.executable, "-m", "kvs_client", "--url", base_url, "echo", "aBc"], env_with())
    assert done == (0, "AbC\n", "")


def test_exit_codes_of_a_child_process(base_url: str, key: str) -> None:
    python = [sys.executable, "-m", "kvs_client"]
    assert run_child([*python, "--url", base_url, "uint", "put", key, "-1"], env_with()).code == 3
    assert run_child([*python, "--url", unused_url(), "health"], env_with()).code == 4
    assert run_child([*python, "nonsense"], env_with()).code == 2


def test_the_installed_kvs_console_script(base_url: str) -> None:
    script = shutil.which("kvs", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.fail(
            f"no `kvs` console script beside {sys.executable}: install the package "
            "(pip install -e 'clients/python[test]') to test it"
        )
    assert run_child([script, "--url", base_url, "fibo", "10"], env_with()) == (0, "55\n", "")
