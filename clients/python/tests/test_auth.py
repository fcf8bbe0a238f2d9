"""Tokens and TLS: the clients and the command line against a kvs-server
that serves HTTPS with a certificate from its own CA and wants a token (see
``secure_server`` in conftest).

Every test taking ``secure_client`` runs with :class:`Client` and with
:class:`AsyncClient`.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, List, NamedTuple

import pytest

from kvs_client import Client, Forbidden, KvsConnectionError, KvsError, Unauthorized, cli

if TYPE_CHECKING:
    from conftest import SecureServer

Connect = Callable[..., Any]


# ---------------------------------------------------------------- tokens


def test_a_read_write_token_reads_and_writes(secure_client: Connect, secure_server: SecureServer, key: str) -> None:
    kvs = secure_client(token=secure_server.rw_token)
    assert kvs.readyz() is True
    kvs.str_put(key, "over TLS")
    assert kvs.str_get(key) == "over TLS"
    assert kvs.int_incr(key, by=2) == 2
    assert kvs.delete_everywhere(key) is True


def test_without_a_token_only_healthz_answers(secure_client: Connect, key: str) -> None:
    kvs = secure_client()
    assert kvs.healthz() is True
    for call in (lambda: kvs.int_get(key), lambda: kvs.int_put(key, 1), kvs.readyz):
        with pytest.raises(Unauthorized) as error:
            call()
        assert error.value.status == 401
        assert isinstance(error.value, KvsError) and error.value.detail


def test_an_unknown_token_is_unauthorized(secure_client: Connect, key: str) -> None:
    with pytest.raises(Unauthorized):
        secure_client(token="not-a-known-token").int_get(key)


def test_a_read_only_token_reads_but_its_writes_are_forbidden_and_change_nothing(
    secure_client: Connect, secure_server: SecureServer, key: str
) -> None:
    rw, ro = secure_client(token=secure_server.rw_token), secure_client(token=secure_server.ro_token)
    rw.int_put(key, 5)
    assert ro.int_get(key) == 5
    assert ro.keys("int", prefix=key) == [key]
    for call in (lambda: ro.int_put(key, 6), lambda: ro.int_incr(key), lambda: ro.int_delete(key)):
        with pytest.raises(Forbidden) as error:
            call()
        assert error.value.status == 403
    assert rw.int_get(key) == 5


def test_the_token_replaces_an_authorization_header(
    secure_client: Connect, secure_server: SecureServer, key: str
) -> None:
    kvs = secure_client(headers={"authorization": "Bearer not-a-known-token"}, token=secure_server.rw_token)
    kvs.int_put(key, 1)
    assert kvs.int_get(key) == 1


@pytest.mark.parametrize("token", ["", "two words-secret", "line\nbreak-secret", "é-secret"])
def test_a_token_that_cannot_be_a_header_value_is_refused_without_being_quoted(token: str) -> None:
    with pytest.raises(ValueError) as error:
        Client(token=token)
    assert "secret" not in str(error.value)


def test_the_token_is_not_in_the_repr(secure_server: SecureServer) -> None:
    with Client(secure_server.url, token=secure_server.rw_token) as kvs:
        assert secure_server.rw_token not in repr(kvs)


# ---------------------------------------------------------------- TLS


def test_a_certificate_from_another_ca_does_not_verify(secure_client: Connect, secure_server: SecureServer) -> None:
    kvs = secure_client(ca_file=str(secure_server.other_ca_file), token=secure_server.rw_token)
    with pytest.raises(KvsConnectionError) as error:
        kvs.healthz()
    assert "CERTIFICATE_VERIFY_FAILED" in str(error.value)
    assert error.value.status is None


def test_without_a_ca_file_a_private_ca_is_not_trusted(secure_client: Connect) -> None:
    kvs = secure_client(ca_file=None)
    with pytest.raises(KvsConnectionError) as error:
        kvs.healthz()
    assert "CERTIFICATE_VERIFY_FAILED" in str(error.value)


def test_a_ca_file_that_cannot_be_used_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Client("https://127.0.0.1:1", ca_file=tmp_path / "missing.crt")
    not_pem = tmp_path / "not.crt"
    not_pem.write_text("not a certificate\n")
    with pytest.raises(ssl.SSLError):
        Client("https://127.0.0.1:1", ca_file=not_pem)


# ---------------------------------------------------------------- the command line


class Run(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture
def kvs_cli(secure_server: SecureServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run ``kvs --url <secure server> ARGS...`` in-process, with none of
    the token and CA variables set unless a test sets them."""
    for name in ("KVS_TOKEN", "KVS_TOKEN_FILE", "KVS_CA_FILE"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> Run:
        try:
            code = cli.main(["--url", secure_server.url, *args])
        except SystemExit as exit:  # usage errors
            code = int(exit.code or 0)
        captured = capsys.readouterr()
        for token in (secure_server.rw_token, secure_server.ro_token):
            assert token not in captured.out + captured.err
        return Run(code, captured.out, captured.err)

    return run


def test_cli_token_and_ca_file_flags(kvs_cli: Callable[..., Run], secure_server: SecureServer, key: str) -> None:
    ca = ["--ca-file", str(secure_server.ca_file)]
    assert kvs_cli(*ca, "--token", secure_server.rw_token, "int", "put", key, "7") == (0, "OK\n", "")
    # The options are accepted after the command too.
    assert kvs_cli("int", "get", key, *ca, "--token", secure_server.ro_token) == (0, "7\n", "")


def test_cli_without_a_token_exits_3_with_the_401(
    kvs_cli: Callable[..., Run], secure_server: SecureServer, key: str
) -> None:
    code, out, err = kvs_cli("--ca-file", str(secure_server.ca_file), "int", "get", key)
    assert (code, out) == (3, "")
    assert err.startswith("kvs: error: 401: ")
    assert kvs_cli("--ca-file", str(secure_server.ca_file), "health") == (0, "ok\n", "")


def test_cli_a_write_with_a_read_only_token_exits_3_with_the_403(
    kvs_cli: Callable[..., Run], secure_server: SecureServer, key: str
) -> None:
    args = ["--ca-file", str(secure_server.ca_file), "--token", secure_server.ro_token]
    code, out, err = kvs_cli(*args, "int", "put", key, "1")
    assert (code, out) == (3, "")
    assert err.startswith("kvs: error: 403: ")
    code, _, err = kvs_cli("--json", *args, "int", "put", key, "1")
    assert code == 3 and '"error": "Forbidden"' in err and '"status": 403' in err


def test_cli_token_file_and_environment(
    kvs_cli: Callable[..., Run],
    secure_server: SecureServer,
    key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(secure_server.rw_token + "\n")
    monkeypatch.setenv("KVS_CA_FILE", str(secure_server.ca_file))
    assert kvs_cli("--token-file", str(token_file), "int", "put", key, "1") == (0, "OK\n", "")
    monkeypatch.setenv("KVS_TOKEN_FILE", str(token_file))
    assert kvs_cli("int", "put", key, "2") == (0, "OK\n", "")
    monkeypatch.delenv("KVS_TOKEN_FILE")
    monkeypatch.setenv("KVS_TOKEN", secure_server.rw_token)
    assert kvs_cli("int", "put", key, "3") == (0, "OK\n", "")
    # A flag wins over the environment.
    assert kvs_cli("--token", secure_server.ro_token, "int", "put", key, "4").code == 3
    monkeypatch.setenv("KVS_TOKEN", "not-a-known-token")
    assert kvs_cli("--token-file", str(token_file), "int", "get", key) == (0, "3\n", "")


@pytest.mark.parametrize(
    "args, says",
    [
        (["--token", "x", "--token-file", "f"], "--token or --token-file, not both"),
        (["--token-file", "{missing}"], "cannot read the token file"),
        (["--token-file", "{empty}"], "is empty"),
        (["--token", "two words"], "printable ASCII"),
        (["--ca-file", "{missing}"], "cannot use the CA file"),
    ],
)
def test_cli_token_and_ca_settings_that_cannot_be_used_exit_2(
    kvs_cli: Callable[..., Run], tmp_path: Path, args: List[str], says: str
) -> None:
    (tmp_path / "empty").write_text("\n")
    paths = {"missing": tmp_path / "missing", "empty": tmp_path / "empty"}
    code, out, err = kvs_cli(*(arg.format(**paths) for arg in args), "health")
    assert (code, out) == (2, "")
    assert says in err


def test_cli_both_token_variables_set_exit_2(
    kvs_cli: Callable[..., Run], secure_server: SecureServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KVS_TOKEN", secure_server.rw_token)
    monkeypatch.setenv("KVS_TOKEN_FILE", str(tmp_path / "token"))
    code, _, err = kvs_cli("health")
    assert code == 2 and "KVS_TOKEN or KVS_TOKEN_FILE, not both" in err


def test_cli_a_certificate_that_does_not_verify_exits_4(
    kvs_cli: Callable[..., Run], secure_server: SecureServer
) -> None:
    code, out, err = kvs_cli("--ca-file", str(secure_server.other_ca_file), "health")
    assert (code, out) == (4, "")
    assert "CERTIFICATE_VERIFY_FAILED" in err
