"""API fuzzing: the real kvs-server against its own OpenAPI document.

Starts the kvs-server binary (``$KVS_SERVER_BIN``, else
``<repo>/target/debug/kvs-server``; a missing binary fails the run) on an
ephemeral port with a temporary data directory, loads the document the
running server serves at ``/kvs/v1-0-0/openapi.json``, and lets schemathesis
generate requests for every operation, valid and invalid ones, a bounded
number per operation. Every answer must:

- not be a server error (5xx);
- carry a status the document lists for the operation;
- carry a content type the document lists for that status, and a body that
  matches its schema;
- carry the headers the document describes, with values of their schema.

Bounds: ``KVS_API_FUZZ_EXAMPLES`` examples per operation and phase (default
50); the run takes about half a minute on two cores. Raise it for a longer search.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_PATH = "/kvs/v1-0-0"
EXAMPLES = int(os.environ.get("KVS_API_FUZZ_EXAMPLES", "50"))
START_TIMEOUT = 30.0

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def server_binary() -> Path:
    configured = os.environ.get("KVS_SERVER_BIN")
    path = Path(configured) if configured else REPO_ROOT / "target" / "debug" / "kvs-server"
    if not path.is_file():
        pytest.fail(
            f"kvs-server binary {path} is missing: build it (cargo build -p kvs-server) "
            "or point KVS_SERVER_BIN at one",
            pytrace=False,
        )
    return path


class Server:
    """kvs-server as a child process; its JSON log lines are kept."""

    def __init__(self, binary: Path, data_dir: str) -> None:
        self.proc = subprocess.Popen(
            [
                str(binary),
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                data_dir,
                "--log-format",
                "json",
                "--log-level",
                "warn,kvs_server::startup=info",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.addr: str | None = None
        self._found = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if self.addr is None:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                fields = event.get("fields", event)
                if fields.get("message") == "listening" and fields.get("addr"):
                    self.addr = fields["addr"]
                    self._found.set()
        self._found.set()

    def url(self) -> str:
        self._found.wait(START_TIMEOUT)
        if self.addr is None:
            self.stop()
            pytest.fail(
                "kvs-server did not start listening:\n" + "\n".join(self.lines[-30:]),
                pytrace=False,
            )
        return f"http://{self.addr}"

    def wait_ready(self, url: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}{BASE_PATH}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        pytest.fail("kvs-server did not become ready:\n" + "\n".join(self.lines[-30:]), pytrace=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    binary = server_binary()
    data_dir = tempfile.mkdtemp(prefix="kvs-api-fuzz-")
    server = Server(binary, data_dir)
    try:
        url = server.url()
        server.wait_ready(url)
        yield url
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    if server.proc.returncode not in (0, None):
        pytest.fail(
            f"kvs-server exited with {server.proc.returncode}:\n" + "\n".join(server.lines[-30:]),
            pytrace=False,
        )


@pytest.fixture(scope="session")
def api_schema(server_url: str):
    # The document the running server serves, not the file in the tree.
    schema = schemathesis.openapi.from_url(f"{server_url}{BASE_PATH}/openapi.json", timeout=10)
    schema.config.update(base_url=f"{server_url}{BASE_PATH}", request_timeout=10)
    schema.config.generation.update(
        modes=["positive", "negative"],
        max_examples=EXAMPLES,
        deterministic=False,
        database="none",
    )
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case) -> None:
    case.call_and_validate(checks=CHECKS)


def test_the_document_itself_is_served_as_documented(server_url: str) -> None:
    """GET /openapi.json is the one operation schemathesis leaves out (it is
    where the schema came from): 200, JSON, an OpenAPI 3.1 object."""
    with urllib.request.urlopen(f"{server_url}{BASE_PATH}/openapi.json", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers.get_content_type() == "application/json"
        doc = json.loads(resp.read())
    assert isinstance(doc, dict) and doc["openapi"].startswith("3.1")


def test_the_fuzzing_reached_the_server(server_url: str) -> None:
    """Runs after the fuzzing: the server's own request counters show that
    the generated requests arrived, that both accepted and refused ones were
    among them, and that none was answered 5xx."""
    with urllib.request.urlopen(f"{server_url}{BASE_PATH}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    by_class: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("kvs_http_requests_total{") and 'route="/kvs/v1-0-0/metrics"' not in line:
            labels, _, count = line.rpartition(" ")
            status = labels.split('status="', 1)[1][:3]
            by_class[status[0] + "xx"] = by_class.get(status[0] + "xx", 0) + int(float(count))
    print(f"\nrequests by status class: {dict(sorted(by_class.items()))}")
    assert by_class.get("5xx", 0) == 0, by_class
    assert by_class.get("2xx", 0) > 100, by_class
    assert by_class.get("4xx", 0) > 100, by_class
