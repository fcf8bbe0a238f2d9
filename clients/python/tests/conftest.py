"""Fixtures: one real kvs-server for the whole session, and clients of it;
another that serves HTTPS and wants tokens; and servers of a test's own.

The server binary is ``$KVS_SERVER_BIN`` when set, else
``<repo>/target/debug/kvs-server``, built with ``cargo build -p kvs-server``
when missing; ``kvs-certs``, which makes the HTTPS server's certificates,
is taken from beside it. A server that cannot be found, built or started
fails the session loudly: these tests are never skipped for want of a
server.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import queue
import shutil
import subprocess
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterator, List, NoReturn, Optional, Sequence

import pytest

from kvs_client import AsyncClient, Client, KvsError

REPO_ROOT = Path(__file__).resolve().parents[3]
"""clients/python/tests -> the repository root."""

START_TIMEOUT = 60.0
"""Seconds for the server to listen and be ready (an empty log replays fast)."""


def _executable(name: str) -> str:
    return name + ".exe" if os.name == "nt" else name


def _built(package: str, path: Path) -> Path:
    """``path``, built with ``cargo build -p <package>`` when missing."""
    if path.is_file():
        return path

    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.fail(
            f"{path} does not exist and cargo is not on PATH to build it; build {package} or set KVS_SERVER_BIN",
            pytrace=False,
        )
    build = subprocess.run(
        [cargo, "build", "-p", package],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if build.returncode != 0 or not path.is_file():
        tail = "\n".join(build.stdout.splitlines()[-40:])
        pytest.fail(
            f"`cargo build -p {package}` in {REPO_ROOT} did not produce {path} (exit {build.returncode}):\n{tail}",
            pytrace=False,
        )
    return path


def find_server_binary() -> Path:
    configured = os.environ.get("KVS_SERVER_BIN")
    if configured:
        path = Path(configured)
        if not path.is_file():
            pytest.fail(f"KVS_SERVER_BIN={configured!r} is not a file", pytrace=False)
        return path
    return _built("kvs-server", REPO_ROOT / "target" / "debug" / _executable("kvs-server"))


def find_certs_binary(server_binary: Path) -> Path:
    """kvs-certs, from the same build as the server."""
    return _built("kvs-certs", server_binary.with_name(_executable("kvs-certs")))


def listening_url(line: str) -> Optional[str]:
    """The URL in a tracing JSON ``listening`` event, else None.

    tracing-subscriber puts the message and fields under ``fields``; accept
    them at the top level too. The scheme is the ``scheme`` field, ``http``
    when there is none.
    """
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    fields = record.get("fields")
    if not isinstance(fields, dict):
        fields = {}
    if fields.get("message", record.get("message")) != "listening":
        return None
    address = fields.get("addr", record.get("addr"))
    if not isinstance(address, str) or not address:
        return None
    if "://" in address:
        return address
    scheme = fields.get("scheme", record.get("scheme"))
    return f"{scheme if isinstance(scheme, str) and scheme else 'http'}://{address}"


class KvsServer:
    """A kvs-server child process on an ephemeral port, started with
    ``args`` besides the port, data directory and log format.
    ``client_options`` (a token, a CA file) are what a client needs to ask
    it whether it is ready."""

    def __init__(
        self,
        binary: Path,
        data_dir: Path,
        args: Sequence[str] = (),
        client_options: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.args = list(args)
        self.client_options = client_options or {}
        self.url = ""
        self.output: Deque[str] = deque(maxlen=200)
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self._process: Optional[subprocess.Popen[str]] = None

    def start(self) -> None:
        command = [
            str(self.binary),
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(self.data_dir),
            "--log-format",
            "json",
            *self.args,
        ]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        # Keep draining the pipe for the whole session: a server whose log
        # pipe fills up would block.
        threading.Thread(target=self._drain, name="kvs-server-output", daemon=True).start()

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                self._fail(f"did not log 'listening' within {START_TIMEOUT:g} s")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                code = self._process.wait()
                self._fail(f"exited with status {code} before listening")
            url = listening_url(line)
            if url is not None:
                self.url = url
                break
        self._wait_until_ready(deadline)

    def _wait_until_ready(self, deadline: float) -> None:
        """It listens before its log is replayed; writes get 503 until then."""
        last: Optional[KvsError] = None
        with Client(self.url, timeout=5, **self.client_options) as kvs:
            while True:
                try:
                    if kvs.readyz():
                        return
                except KvsError as error:
                    last = error
                if time.monotonic() > deadline:
                    self.stop()
                    self._fail(f"listened but was not ready within {START_TIMEOUT:g} s ({last})")
                time.sleep(0.05)

    def _drain(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.rstrip("\n")
            self.output.append(line)
            if not self.url:
                self._lines.put(line)
        self._lines.put(None)

    def _fail(self, why: str) -> NoReturn:
        log = "\n".join(self.output)
        pytest.fail(f"kvs-server ({self.binary}) {why}; its output:\n{log}", pytrace=False)

    def stop(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KvsServer]:
    kvs = KvsServer(find_server_binary(), tmp_path_factory.mktemp("kvs-data"))
    kvs.start()
    try:
        yield kvs
    finally:
        kvs.stop()


@pytest.fixture
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., KvsServer]]:
    """Starts kvs-servers of the test's own, each with an empty log and the
    given extra arguments; they are stopped after the test."""
    started: List[KvsServer] = []

    def start(*args: str) -> KvsServer:
        kvs = KvsServer(find_server_binary(), tmp_path_factory.mktemp("kvs-own-data"), args)
        started.append(kvs)
        kvs.start()
        return kvs

    try:
        yield start
    finally:
        for kvs in started:
            kvs.stop()


@dataclass(frozen=True)
class SecureServer:
    """A kvs-server that serves HTTPS and wants a token."""

    url: str
    ca_file: Path
    """The CA that signed its certificate."""
    other_ca_file: Path
    """A CA that did not."""
    rw_token: str
    ro_token: str


def make_certificates(certs_binary: Path, out: Path) -> None:
    done = subprocess.run(
        [str(certs_binary), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"{certs_binary} --out {out} failed (exit {done.returncode}):\n{done.stdout}", pytrace=False)


@pytest.fixture(scope="session")
def secure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    binary = find_server_binary()
    certs, other_certs = tmp_path_factory.mktemp("certs"), tmp_path_factory.mktemp("other-certs")
    for out in (certs, other_certs):
        make_certificates(find_certs_binary(binary), out)
    rw_token, ro_token = f"rw-{uuid.uuid4().hex}", f"ro-{uuid.uuid4().hex}"
    tokens_file = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens_file.write_text(f"# who may do what\nread-write:{rw_token}\n\nread-only:{ro_token}\n", encoding="utf-8")
    args = [
        "--http-tls-cert",
        str(certs / "server.crt"),
        "--http-tls-key",
        str(certs / "server.key"),
        "--auth-tokens-file",
        str(tokens_file),
    ]
    ca_file = certs / "ca.crt"
    kvs = KvsServer(
        binary,
        tmp_path_factory.mktemp("kvs-secure-data"),
        args,
        client_options={"token": ro_token, "ca_file": ca_file},
    )
    kvs.start()
    try:
        if not kvs.url.startswith("https://"):
            pytest.fail(f"kvs-server started with {args} listens on {kvs.url}, not https", pytrace=False)
        yield SecureServer(kvs.url, ca_file, other_certs / "ca.crt", rw_token, ro_token)
    finally:
        kvs.stop()


@pytest.fixture(scope="session")
def base_url(server: KvsServer) -> str:
    """The server's URL, without the base path: what users pass to clients."""
    return server.url


@pytest.fixture
def key() -> str:
    """A key no other test uses (all tests share one server)."""
    return "t_" + uuid.uuid4().hex[:16]


@pytest.fixture
def client(base_url: str) -> Iterator[Client]:
    with Client(base_url) as kvs:
        yield kvs


class AsyncAsSync:
    """Drives an :class:`AsyncClient` from synchronous test code, so that one
    test body checks both clients. Each call must return a coroutine."""

    def __init__(self, base_url: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = AsyncClient(base_url, **options)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            awaitable = method(*args, **kwargs)
            assert inspect.iscoroutine(awaitable), f"AsyncClient.{name} is not a coroutine method"
            return self._loop.run_until_complete(awaitable)

        return call

    def close(self) -> None:
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()


@pytest.fixture(params=["sync", "async"])
def kvs(request: pytest.FixtureRequest, base_url: str) -> Iterator[Any]:
    """A :class:`Client`, then an :class:`AsyncClient` behind a sync facade."""
    if request.param == "sync":
        with Client(base_url) as sync_client:
            yield sync_client
    else:
        async_client = AsyncAsSync(base_url)
        try:
            yield async_client
        finally:
            async_client.close()


@pytest.fixture(params=["sync", "async"])
def secure_client(request: pytest.FixtureRequest, secure_server: SecureServer) -> Iterator[Callable[..., Any]]:
    """Makes clients of :func:`secure_server` with the given options
    (``ca_file`` defaults to its CA): :class:`Client`, then
    :class:`AsyncClient` behind a sync facade. They are closed afterwards."""
    opened: list = []

    def make(**options: Any) -> Any:
        options.setdefault("ca_file", secure_server.ca_file)
        if request.param == "sync":
            made: Any = Client(secure_server.url, **options)
        else:
            made = AsyncAsSync(secure_server.url, **options)
        opened.append(made)
        return made

    try:
        yield make
    finally:
        for made in opened:
            made.close()
