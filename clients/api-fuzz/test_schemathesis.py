"""API fuzzing: the real kvs-server against its own OpenAPI document.

Starts the kvs-server binary (see ``clients/testing/kvs_process.py``) on
an ephemeral port with a temporary data directory, loads the document the
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

Afterwards, the server's own request counters must show that the fuzzing
arrived: they are read once the server is ready and again at the end, and
only the difference, less the routes this harness calls itself, counts.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections import Counter
from dataclasses import dataclass
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

from kvs_process import BASE_PATH, KvsServer

EXAMPLES = int(os.environ.get("KVS_API_FUZZ_EXAMPLES", "50"))
WATCH_SECONDS = 1
"""How long a watch's stream is read before the fuzzer leaves it."""

REQUESTS_TOTAL = re.compile(
    r'^kvs_http_requests_total\{method="([^"]*)",route="([^"]*)",status="([0-9]{3})"\} ([0-9]+)$'
)
HARNESS_ROUTES = {f"{BASE_PATH}/metrics", f"{BASE_PATH}/openapi.json"}
"""Routes the harness calls itself (to load the schema, to read counters):
their counts say nothing about what the fuzzer sent."""

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def request_counts(url: str) -> Counter[tuple[str, str, str]]:
    """``kvs_http_requests_total`` from ``/metrics``, by (method, route, status)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    counts: Counter[tuple[str, str, str]] = Counter()
    for line in text.splitlines():
        found = REQUESTS_TOTAL.match(line)
        if found:
            method, route, status, count = found.groups()
            counts[method, route, status] = int(count)
    if not counts:
        pytest.fail(f"/metrics has no kvs_http_requests_total series:\n{text}", pytrace=False)
    return counts


@dataclass(frozen=True)
class Running:
    url: str
    counts_when_ready: Counter[tuple[str, str, str]]
    """The request counters before any test: the readiness polls (503 while
    the server replays) are in them, and must not count as the fuzzer's."""


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    process = KvsServer(tmp_path_factory.mktemp("kvs-api-fuzz"))
    try:
        url = process.start()
        yield Running(url, request_counts(url))
    finally:
        process.stop()


@pytest.fixture(scope="session")
def api_schema(server: Running):
    # The document the running server serves, made from its routes.
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", timeout=10)
    schema.config.update(base_url=server.url, request_timeout=10)
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
    # A watch answers a stream that lasts until the client leaves: what one
    # second brings is enough to check its events.
    timeout = WATCH_SECONDS if case.path == "/watch" else None
    case.call_and_validate(checks=CHECKS, **({"timeout": timeout} if timeout else {}))


def test_the_document_itself_is_served_as_documented(server: Running) -> None:
    """GET /openapi.json is the one operation schemathesis leaves out (it is
    where the schema came from): 200, JSON, an OpenAPI 3.1 object."""
    with urllib.request.urlopen(f"{server.url}/openapi.json", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers.get_content_type() == "application/json"
        doc = json.loads(resp.read())
    assert isinstance(doc, dict) and doc["openapi"].startswith("3.1")


def test_the_fuzzing_reached_the_server(server: Running) -> None:
    """Runs after the fuzzing: the server's own request counters show that
    the generated requests arrived, that both accepted and refused ones were
    among them, and that none was answered 5xx."""
    sent = request_counts(server.url) - server.counts_when_ready
    fuzzed = Counter({row: n for row, n in sent.items() if row[1] not in HARNESS_ROUTES})
    by_class: Counter[str] = Counter()
    for (_, _, status), n in fuzzed.items():
        by_class[status[0] + "xx"] += n
    print(f"\nrequests by status class: {dict(sorted(by_class.items()))}")
    server_errors = {row: n for row, n in fuzzed.items() if row[2].startswith("5")}
    assert not server_errors, server_errors
    assert by_class["2xx"] > 100, by_class
    assert by_class["4xx"] > 100, by_class
