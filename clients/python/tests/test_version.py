"""One version everywhere: the Python package has the Rust workspace's."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import kvs_client

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CARGO_TOML = Path(__file__).resolve().parents[3] / "Cargo.toml"


def workspace_version() -> str:
    with open(CARGO_TOML, "rb") as file:
        return str(tomllib.load(file)["workspace"]["package"]["version"])


def test_the_package_version_is_the_workspace_version() -> None:
    assert kvs_client.__version__ == workspace_version()


def test_kvs_version_prints_the_workspace_version() -> None:
    script = shutil.which("kvs", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.fail(
            f"no `kvs` console script beside {sys.executable}: install the package "
            "(pip install -e 'clients/python[test]') to test it"
        )
    done = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"kvs {workspace_version()}\n", "")
