"""Fixtures: one real kvs-server for the whole session, and clients of it.

The server binary is ``$KVS_SERVER_BIN`` when set, else
``<repo>/target/debug/kvs-server``, built with ``cargo build -p kvs-server``
when missing. A server that cannot be found, built or started fails the
session loudly: these tests are never skipped for want of a server.
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
from pathlib import Path
from typing import Any, Callable, Deque, Iterator, NoReturn, Optional

import pytest

from kvs_client import AsyncClient, Client, KvsError

REPO_ROOT = Path(__file__).resolve().parents[3]
"""clients/python/tests -> the repository root."""

START_TIMEOUT = 60.0
"""Seconds for the server to listen and be ready (an empty log replays fast)."""


def _default_binary() -> Path:
    name = "kvs-server.exe" if os.name == "nt" else "kvs-server"
    return REPO_ROOT / "target" / "debug" / name


def find_server_binary() -> Path:
    configured = os.environ.get("KVS_SERVER_BIN")
    if configured:
        path = Path(configured)
        if not path.is_file():
            pytest.fail(f"KVS_SERVER_BIN={configured!r} is not a file", pytrace=False)
        return path

    path = _default_binary()
    if path.is_file():
        return path

    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.fail(
            f"{path} does not exist and cargo is not on PATH to build it; build kvs-server or set KVS_SERVER_BIN",
            pytrace=False,
        )
    build = subprocess.run(
        [cargo, "build", "-p", "kvs-server"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if build.returncode != 0 or not path.is_file():
        tail = "\n".join(build.stdout.splitlines()[-40:])
        pytest.fail(
            f"`cargo build -p kvs-server` in {REPO_ROOT} did not produce {path} (exit {build.returncode}):\n{tail}",
            pytrace=False,
        )
    return path


def listening_address(line: str) -> Optional[str]:
    """The address in a tracing JSON ``listening`` event, else None.

    tracing-subscriber puts the message and fields under ``fields``; accept
    them at the top level too.
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
    return address if isinstance(address, str) and address else None


class KvsServer:
    """A kvs-server child process on an ephemeral port."""

    def __init__(self, binary: Path, data_dir: Path) -> None:
        self.binary = binary
        self.data_dir = data_dir
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
            address = listening_address(line)
            if address is not None:
                self.url = address if "://" in address else f"http://{address}"
                break
        self._wait_until_ready(deadline)

    def _wait_until_ready(self, deadline: float) -> None:
        """It listens before its log is replayed; writes get 503 until then."""
        last: Optional[KvsError] = None
        with Client(self.url, timeout=5) as kvs:
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

    def __init__(self, base_url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = AsyncClient(base_url)

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
