"""The real kvs-server as a child process, for the test suites that drive it
from outside (API fuzzing, the docs page in a browser).

The binary is ``$KVS_SERVER_BIN``, else ``<repo>/target/debug/kvs-server``;
a missing one fails the run. It listens on a port of its choosing, which is
read from its JSON ``listening`` log line, and is ready once ``/readyz``
answers 200.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_PATH = "/kvs/v1-0-0"
START_TIMEOUT = 30.0


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


class KvsServer:
    """kvs-server on `data_dir`; its log lines are kept for failure messages."""

    def __init__(self, data_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [
                str(server_binary()),
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                str(data_dir),
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
        self._listening = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if self.addr is None:
                try:
                    fields = json.loads(line).get("fields", {})
                except (ValueError, AttributeError):
                    continue
                if fields.get("message") == "listening" and fields.get("addr"):
                    self.addr = fields["addr"]
                    self._listening.set()
        # The server exited: nobody should wait for the line any longer.
        self._listening.set()

    def start(self) -> str:
        """Waits until the server listens and is ready; returns the API's base URL."""
        self._listening.wait(START_TIMEOUT)
        if self.addr is None:
            self.fail("did not start listening")
        url = f"http://{self.addr}{BASE_PATH}"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        return url
            except OSError:
                pass
            time.sleep(0.05)
        self.fail("did not become ready")

    def stop(self) -> None:
        """Stops the server; fails the run if it had exited with an error."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        elif self.proc.returncode != 0:
            self.fail(f"exited with {self.proc.returncode}")

    def fail(self, what: str) -> NoReturn:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        pytest.fail(f"kvs-server {what}:\n" + "\n".join(self.lines[-30:]), pytrace=False)
