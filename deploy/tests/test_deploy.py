"""Checks of the Docker deployment that need no Docker engine.

What they cover:

- docker-compose.yaml validates against the Compose Specification's JSON
  schema (shipped by the check-jsonschema package), and its services agree
  with each other: names, ports, certificate paths, the database URL; the
  failover profile's nodes (two standbys and a follower) exist only under
  that profile, publish on loopback only, and advertise those addresses.
- Every path the Dockerfiles COPY exists, is tracked, is let through by
  .dockerignore, and covers what cargo needs (the workspace members and the
  files the crates read from outside their own directories).
- The binaries accept what the compose file gives them: `--help` parses,
  every variable the compose file sets is one they know, the certs service's
  script runs (and keeps, completes or rotates a certificate set), txn-server
  `--check-config` accepts the compose environment, and txn-server and
  kvs-server started with the compose environment talk over mutual TLS with
  the certificates the certs service makes, while the Dockerfiles' own
  HEALTHCHECK commands and the compose file's txn health check judge them
  healthy (and unhealthy once stopped), and the txn health check fails while
  txn-server waits for PostgreSQL.
- The Dockerfiles' base images, stages, EXPOSE, USER, HEALTHCHECK and
  ENTRYPOINT are as intended, and hadolint finds nothing.

The binaries are taken from target/debug (KVS_BIN_DIR overrides); build them
first with `cargo build --workspace --bins`.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import dockerfile
import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERIGNORE = REPO / ".dockerignore"
DOCKERFILES = {"kvs": REPO / "Dockerfile.kvs", "txn": REPO / "Dockerfile.txn"}
BINARIES = ("kvs-server", "txn-server", "kvs-certs")

# The uid/gid that the images run as and the certs service writes keys as.
RUNTIME_UID = 10001
# The ports the images expose.
EXPOSED = {"kvs": {"8080"}, "txn": {"5051"}}
FAILOVER = "failover"
"""The profile of the standby pair and the follower (docs/scaling.md)."""
FAILOVER_NODES = {"kvs-a": "standby", "kvs-b": "standby", "kvs-follower": "follower"}
"""Each kvs-server node of the failover profile, with its role."""
KVS_NODES = ("kvs", *FAILOVER_NODES)
"""Every kvs-server service: the default one and the failover profile's."""
# Acceptable runtime bases: small, glibc (the builder links against it).
RUNTIME_BASES = (
    re.compile(r"^debian:bookworm-slim(@sha256:[0-9a-f]{64})?$"),
    re.compile(r"^gcr\.io/distroless/cc-debian12(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$"),
)
BUILDER_BASE = re.compile(r"^rust:(?P<version>\d+\.\d+(\.\d+)?)-(slim-)?(?P<debian>bookworm)$")
# The certificate files the certs service leaves in its volume.
CERT_SET = ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")


# --------------------------------------------------------------- helpers --


def bin_dir() -> Path:
    return Path(os.environ.get("KVS_BIN_DIR") or REPO / "target" / "debug")


@pytest.fixture(scope="session")
def bins() -> dict[str, Path]:
    """The three binaries; fails with what to do when one is missing."""
    found = {}
    for name in BINARIES:
        path = bin_dir() / name
        if not (path.is_file() and os.access(path, os.X_OK)):
            pytest.fail(
                f"{path} is missing: build the binaries first with "
                "`cargo build --workspace --bins` (or point KVS_BIN_DIR at a "
                "directory holding kvs-server, txn-server and kvs-certs)",
                pytrace=False,
            )
        found[name] = path
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """An environment without the caller's KVS_*/TXN_* settings."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as compose reads .env (comments and blanks skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation: $$, $VAR, ${VAR}, ${VAR:-d},
    ${VAR-d}, ${VAR:?err}, ${VAR?err}, ${VAR:+alt}, ${VAR+alt}."""

    def one(m: re.Match) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("plain")
        op, arg = m.group("op"), m.group("arg") or ""
        value = env.get(name)
        unset_or_empty = not value
        missing = unset_or_empty if op and op.startswith(":") else value is None
        if op in (":-", "-"):
            return arg if missing else value
        if op in (":?", "?"):
            if missing:
                raise MissingVariable(f"{name}: {arg}")
            return value
        if op in (":+", "+"):
            return "" if missing else arg
        return value or ""

    return _INTERPOLATION.sub(one, text)


def interpolate_tree(node, env: dict[str, str]):
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(n, env) for n in node]
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env) for k, v in node.items()}
    return node


@pytest.fixture(scope="session")
def compose_raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="session")
def dotenv() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="session")
def compose(compose_raw, dotenv) -> dict:
    """The compose file as compose sees it with .env copied from .env.example."""
    return interpolate_tree(compose_raw, dotenv)


def service_env(compose: dict, service: str) -> dict[str, str]:
    env = compose["services"][service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def volume_mounts(compose: dict, service: str) -> list[tuple[str, str, str]]:
    """(source, target, mode) of each short-syntax volume of a service."""
    mounts = []
    for spec in compose["services"][service].get("volumes") or []:
        assert isinstance(spec, str), f"{service}: use the short volume syntax"
        parts = spec.split(":")
        mounts.append((parts[0], parts[1], parts[2] if len(parts) > 2 else "rw"))
    return mounts


def certs_script(compose: dict) -> str:
    certs = compose["services"]["certs"]
    assert certs["entrypoint"] == ["/bin/sh", "-c"], "certs: expected a /bin/sh -c script"
    command = certs["command"]
    assert isinstance(command, list) and len(command) == 1, "certs: the command is one script"
    return command[0]


def kvs_certs_args(script: str) -> list[str]:
    lines = [line.strip() for line in script.splitlines() if line.strip().startswith("kvs-certs ")]
    assert len(lines) == 1, "the certs script runs kvs-certs once"
    return lines[0].split()[1:]


def run_certs_script(compose: dict, bins: dict[str, Path], out: Path, **env: str):
    """The certs service's script, with /certs moved to `out`."""
    script = certs_script(compose).replace("/certs", str(out))
    path = f"{bins['kvs-certs'].parent}:/usr/bin:/bin"
    return subprocess.run(
        ["/bin/sh", "-c", script],
        env=clean_env(PATH=path, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def parse_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    assert host and port.isdigit() and 0 < int(port) < 65536, f"not host:port: {value!r}"
    return host.strip("[]"), int(port)


# ---- Dockerfiles --


@dataclass
class Stage:
    image: str
    name: str | None
    commands: list = field(default_factory=list)

    def all(self, cmd: str) -> list:
        return [c for c in self.commands if c.cmd == cmd]

    def last(self, cmd: str):
        found = self.all(cmd)
        return found[-1] if found else None


def parse_dockerfile(path: Path) -> list[Stage]:
    commands = dockerfile.parse_file(str(path))
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for c in commands:
        if c.cmd == "ARG" and not stages:
            for item in c.value:
                name, _, default = item.partition("=")
                global_args[name] = default
        elif c.cmd == "FROM":
            image = re.sub(
                r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?",
                lambda m: global_args.get(m.group(1), m.group(0)),
                c.value[0],
            )
            name = c.value[2] if len(c.value) >= 3 and c.value[1].upper() == "AS" else None
            stages.append(Stage(image, name))
        elif stages:
            stages[-1].commands.append(c)
    return stages


def copy_sources(stage: Stage) -> list[str]:
    """Sources of the stage's COPY/ADD instructions from the build context."""
    sources = []
    for c in stage.all("COPY") + stage.all("ADD"):
        if any(f.startswith("--from=") for f in c.flags):
            continue
        sources.extend(c.value[:-1])
    return sources


def healthcheck_argv(stage: Stage) -> list[str]:
    hc = stage.last("HEALTHCHECK")
    assert hc is not None, "no HEALTHCHECK in the runtime stage"
    assert hc.value and hc.value[0].upper() == "CMD", f"HEALTHCHECK is not a command: {hc.original}"
    if hc.json:
        return list(hc.value[1:])
    return ["/bin/sh", "-c", " ".join(hc.value[1:])]


def dockerignore_rules() -> list[tuple[bool, re.Pattern]]:
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rx, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                rx, i = rx + "(.*/)?", i + 3
            elif pattern.startswith("**", i):
                rx, i = rx + ".*", i + 2
            elif pattern[i] == "*":
                rx, i = rx + "[^/]*", i + 1
            elif pattern[i] == "?":
                rx, i = rx + "[^/]", i + 1
            else:
                rx, i = rx + re.escape(pattern[i]), i + 1
        rules.append((negate, re.compile(f"^{rx}$")))
    return rules


def dockerignored(path: str, rules) -> bool:
    """Whether .dockerignore keeps `path` (relative) out of the build context:
    the last rule matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, rx in rules:
        if any(rx.match(c) for c in candidates):
            excluded = not negate
    return excluded


def git_files(under: str) -> list[str] | None:
    """Tracked files under a path, or None when this is not a git checkout."""
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        return None
    out = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--", under],
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [f for f in out.split("\0") if f]


# ---- processes --


class Server:
    """A binary run in the background, its output read line by line."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path):
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._new.put(line)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if m := rx.search(line):
                    return m
            seen = len(self.lines)
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and self._new.empty()):
                break
            try:
                self._new.get(timeout=min(left, 0.2))
            except queue.Empty:
                pass
        output = "\n".join(self.lines)
        raise AssertionError(f"no line matching {pattern!r} (exit code {self.proc.poll()}); output:\n{output}")

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def run_healthcheck(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    # Docker runs the check with the container's environment; 3 s is the
    # Dockerfiles' --timeout.
    return subprocess.run(argv, env=clean_env(**env), capture_output=True, text=True, timeout=3)


# ------------------------------------- (a) the compose file and its schema --


@pytest.fixture(scope="session")
def compose_schema() -> dict:
    resource = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    if not resource.is_file():
        pytest.fail(
            "check-jsonschema no longer ships builtin_schemas/vendor/compose-spec.json: see deploy/requirements.txt",
            pytrace=False,
        )
    schema = json.loads(resource.read_text())
    assert schema.get("title") == "Compose Specification", "that file is not the compose-spec schema"
    return schema


def schema_errors(schema: dict, document: dict) -> list[str]:
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator = validator_cls(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    ]


def test_compose_file_validates_against_the_compose_spec_schema(compose_schema, compose_raw, compose):
    # As written (with ${...} in it) and as compose sees it after interpolation.
    assert schema_errors(compose_schema, compose_raw) == []
    assert schema_errors(compose_schema, compose) == []


def test_the_schema_check_catches_a_mistake(compose_schema, compose):
    broken = json.loads(json.dumps(compose))
    broken["services"]["kvs"]["depends_on"]["txn"]["condition"] = "service_ready"
    broken["services"]["kvs"]["restart_policy"] = "always"
    errors = schema_errors(compose_schema, broken)
    assert any("depends_on" in e for e in errors), errors
    assert any("restart_policy" in e for e in errors), errors


def test_compose_references_resolve(compose):
    services = compose["services"]
    assert set(services) >= {"postgres", "certs", "txn", "kvs"}
    declared_volumes = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for dep in svc.get("depends_on") or {}:
            assert dep in services, f"{name} depends on an unknown service {dep}"
        for source, target, _ in volume_mounts(compose, name):
            assert target.startswith("/"), f"{name}: {target} is not absolute"
            if not source.startswith((".", "/")):
                assert source in declared_volumes, f"{name}: volume {source} is not declared"
        build = svc.get("build")
        if build:
            assert (REPO / build["context"] / build["dockerfile"]).is_file(), f"{name}: no {build}"


def test_compose_start_up_order(compose):
    services = compose["services"]
    assert services["postgres"]["image"] == "postgres:16"
    assert "pgdata" in {s for s, _, _ in volume_mounts(compose, "postgres")}
    hc = services["postgres"]["healthcheck"]["test"]
    assert hc[0] == "CMD" and hc[1] == "pg_isready", hc
    assert services["certs"]["restart"] == "no"
    assert services["txn"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "certs": {"condition": "service_completed_successfully"},
    }
    assert services["kvs"]["depends_on"] == {"txn": {"condition": "service_healthy"}}
    # service_healthy needs a health check: txn's is its gRPC health, asked
    # by txn-server itself (run below), so that kvs starts once txn-server
    # has connected to PostgreSQL, not merely once its port is open.
    txn_check = services["txn"]["healthcheck"]
    assert not txn_check.get("disable")
    assert txn_check["test"][:3] == ["CMD", "txn-server", "health"], txn_check["test"]
    assert services["txn"]["build"]["dockerfile"] == "Dockerfile.txn"
    assert services["kvs"]["build"]["dockerfile"] == "Dockerfile.kvs"


def test_only_kvs_is_published_and_only_on_loopback(compose):
    published = {"kvs": "127.0.0.1:8080:8080"} | {
        name: f"127.0.0.1:{port}:8080" for name, port in zip(FAILOVER_NODES, (8081, 8082, 8083))
    }
    for name, svc in compose["services"].items():
        ports = svc.get("ports") or []
        if name not in published:
            assert not ports, f"{name} must not be published"
            continue
        assert ports == [published[name]], ports
        _, port = parse_listen(service_env(compose, name)["KVS_LISTEN"])
        assert ports[0].rsplit(":", 1)[1] == str(port), f"published port is not the one {name} listens on"


def test_the_failover_nodes_exist_only_under_their_profile(compose):
    services = compose["services"]
    profiled = {name: svc["profiles"] for name, svc in services.items() if svc.get("profiles")}
    assert profiled == {name: [FAILOVER] for name in FAILOVER_NODES}, profiled
    # `docker compose up` without a profile starts what it did before.
    assert {name for name in services if name not in profiled} == {"postgres", "certs", "txn", "kvs"}
    assert "KVS_ROLE" not in service_env(compose, "kvs")
    for name, role in FAILOVER_NODES.items():
        svc = services[name]
        assert service_env(compose, name)["KVS_ROLE"] == role, name
        assert svc["depends_on"] == {"txn": {"condition": "service_healthy"}}, name
        assert svc["build"]["dockerfile"] == "Dockerfile.kvs", name
        assert svc["image"] == services["kvs"]["image"], name
        for key in ("cap_drop", "security_opt", "restart", "stop_grace_period"):
            assert svc[key] == services["kvs"][key], f"{name}: {key}"


def test_each_failover_node_advertises_the_address_it_is_published_on(compose):
    for name in FAILOVER_NODES:
        env = service_env(compose, name)
        published = compose["services"][name]["ports"][0]
        host, port, _ = published.split(":")
        assert env["KVS_ADVERTISE_URL"] == f"http://{host}:{port}", name
    urls = [service_env(compose, name)["KVS_ADVERTISE_URL"] for name in FAILOVER_NODES]
    assert len(set(urls)) == len(urls), urls


def test_the_failover_nodes_share_the_lease_settings(compose):
    settings = {
        name: {k: v for k, v in service_env(compose, name).items() if k.startswith(("KVS_LEASE_", "KVS_MIN_REVISION"))}
        for name in FAILOVER_NODES
    }
    first = settings["kvs-a"]
    assert set(first) == {"KVS_LEASE_MS", "KVS_LEASE_CHECK_MS", "KVS_MIN_REVISION_WAIT_MS"}, first
    assert all(s == first for s in settings.values()), settings
    # A standby looks more often than the lease lasts, or it would let a
    # lapse go unnoticed for more than a lease.
    assert int(first["KVS_LEASE_CHECK_MS"]) < int(first["KVS_LEASE_MS"])


def test_servers_listen_on_every_interface_inside_their_containers(compose):
    listens = [(name, "KVS_LISTEN", 8080) for name in KVS_NODES] + [("txn", "TXN_LISTEN", 5051)]
    for service, var, port in listens:
        assert parse_listen(service_env(compose, service)[var]) == ("0.0.0.0", port), service


def test_database_password_comes_from_env_file_only(compose_raw, compose, dotenv):
    raw_pg = service_env(compose_raw, "postgres")
    raw_txn = service_env(compose_raw, "txn")
    assert re.fullmatch(r"\$\{POSTGRES_PASSWORD:\?[^}]+\}", raw_pg["POSTGRES_PASSWORD"])
    assert "${POSTGRES_PASSWORD:?" in raw_txn["TXN_DATABASE_URL"]
    # No service is given a credential written into the compose file itself.
    for name in compose_raw["services"]:
        for key, value in service_env(compose_raw, name).items():
            if re.search(r"PASSWORD|SECRET|TOKEN|DATABASE_URL", key):
                assert "${" in value, f"{name}: {key} is written into the compose file"
    # .env.example gives a value that works once copied to .env.
    assert dotenv.get("POSTGRES_PASSWORD"), ".env.example sets no POSTGRES_PASSWORD"
    # Without .env, compose refuses to start rather than use an empty password.
    with pytest.raises(MissingVariable):
        interpolate_tree(compose_raw, {})
    # Every variable the compose file requires is in .env.example.
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", COMPOSE_FILE.read_text()))
    assert required <= set(dotenv), f"missing from .env.example: {required - set(dotenv)}"
    # The password must survive being put into a URL unencoded.
    assert re.fullmatch(r"[A-Za-z0-9._~-]+", dotenv["POSTGRES_PASSWORD"])
    # And the Dockerfiles bake in nothing of the kind.
    for path in DOCKERFILES.values():
        text = path.read_text()
        for word in ("PASSWORD", "DATABASE_URL", "SECRET"):
            assert not re.search(rf"^\s*(ENV|ARG)\b.*{word}", text, re.M | re.I), f"{path.name}: {word}"


def test_env_file_and_keys_are_not_committed():
    if git_files(".") is None:
        pytest.skip("not a git checkout")
    for path in (".env", "certs/server.key", "certs/ca.crt"):
        ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", path])
        assert ignored.returncode == 0, f"{path} is not ignored by .gitignore"
    committed = [f for f in git_files(".") if f == ".env" or f.endswith(".key") or re.match(r"certs/.*\.crt$", f)]
    assert not committed, f"committed secrets: {committed}"
    assert ENV_EXAMPLE.is_file()


def test_database_url_matches_the_postgres_service(compose, dotenv):
    pg = service_env(compose, "postgres")
    url = urlsplit(service_env(compose, "txn")["TXN_DATABASE_URL"])
    assert url.scheme in ("postgres", "postgresql")
    assert compose["services"].get(url.hostname, {}).get("image", "").startswith("postgres:"), url.hostname
    assert (url.port or 5432) == 5432
    assert url.username == pg["POSTGRES_USER"]
    assert url.password == pg["POSTGRES_PASSWORD"] == dotenv["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == pg["POSTGRES_DB"]


@pytest.mark.parametrize("service", KVS_NODES)
def test_kvs_reaches_txn_by_the_name_on_its_certificate(compose, service):
    kvs = service_env(compose, service)
    addr = urlsplit(kvs["KVS_TXN_ADDR"])
    assert addr.scheme == "https"
    assert addr.hostname in compose["services"], f"{addr.hostname} is not a service"
    assert addr.hostname == "txn"
    assert addr.port == parse_listen(service_env(compose, "txn")["TXN_LISTEN"])[1]
    server_names = []
    args = kvs_certs_args(certs_script(compose))
    for flag, value in itertools.pairwise(args):
        if flag == "--server-name":
            server_names.append(value)
    assert kvs["KVS_TXN_SERVER_NAME"] in server_names, server_names
    assert addr.hostname in server_names, server_names


def test_certificate_paths_are_in_the_certs_volume(compose):
    certs_mounts = {t: (s, m) for s, t, m in volume_mounts(compose, "certs")}
    assert certs_mounts == {"/certs": ("certs", "rw")}
    expected = {
        "txn": {"TXN_TLS_CA": "ca.crt", "TXN_TLS_CERT": "server.crt", "TXN_TLS_KEY": "server.key"},
    } | {node: {"KVS_TLS_CA": "ca.crt", "KVS_TLS_CERT": "client.crt", "KVS_TLS_KEY": "client.key"} for node in KVS_NODES}
    for service, files in expected.items():
        mounts = {t: (s, m) for s, t, m in volume_mounts(compose, service)}
        env = service_env(compose, service)
        for var, name in files.items():
            path = Path(env[var])
            assert path.name == name, f"{service}: {var}={path}"
            assert mounts.get(str(path.parent)) == ("certs", "ro"), (
                f"{service}: {path.parent} is not the certs volume, read-only"
            )


def test_certs_service_runs_as_the_images_user(compose):
    assert compose["services"]["certs"]["user"] == f"{RUNTIME_UID}:{RUNTIME_UID}"
    for service in (*KVS_NODES, "txn"):
        assert compose["services"][service].get("user") in (None, f"{RUNTIME_UID}:{RUNTIME_UID}")


# ----------------------------------------------------- (b) what is copied --


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_copied_paths_exist_are_tracked_and_reach_the_build(image):
    rules = dockerignore_rules()
    for stage in parse_dockerfile(DOCKERFILES[image]):
        for source in copy_sources(stage):
            assert not os.path.isabs(source) and ".." not in Path(source).parts, source
            path = REPO / source
            assert path.exists(), f"{DOCKERFILES[image].name} copies {source}, which does not exist"
            assert not dockerignored(source, rules), f".dockerignore keeps {source} out of the build"
            tracked = git_files(source)
            if tracked is None:
                continue
            assert tracked, f"{source} is not tracked by git: a clean checkout would not have it"
            dropped = [f for f in tracked if dockerignored(f, rules)]
            assert not dropped, f".dockerignore keeps tracked files of {source} out: {dropped[:5]}"


def test_dockerignore_keeps_secrets_and_build_output_out():
    rules = dockerignore_rules()
    for path in (
        ".env",
        "certs/server.key",
        "target/debug/kvs-server",
        "crates/kvs-server/target/x",
        ".git/HEAD",
        "data/kvs.log",
    ):
        assert dockerignored(path, rules), f"{path} would be sent to the builder"


def _outside_references() -> set[str]:
    """Repository paths the crates read from outside their own directory:
    include_str!/include_bytes!/include! targets and relative paths in build
    scripts."""
    refs = set()
    for rs in (REPO / "crates").rglob("*.rs"):
        if "target" in rs.relative_to(REPO).parts:
            continue
        text = rs.read_text()
        found = re.findall(r'include(?:_str|_bytes)?!\(\s*"([^"]+)"', text)
        if rs.name == "build.rs":
            found += re.findall(r'"(\.\./[^"]*)"', text)
        for rel in found:
            target = os.path.normpath(rs.parent / rel)
            refs.add(os.path.relpath(target, REPO))
    return refs


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_builder_gets_everything_cargo_reads(image):
    builder = parse_dockerfile(DOCKERFILES[image])[0]
    copied = [os.path.normpath(s) for s in copy_sources(builder)]

    def covered(path: str) -> bool:
        return any(path == c or path.startswith(c + "/") for c in copied)

    workspace = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]
    assert covered("Cargo.toml") and covered("Cargo.lock")
    for member_glob in workspace["members"]:
        for member in REPO.glob(member_glob):
            if (member / "Cargo.toml").is_file():
                assert covered(str(member.relative_to(REPO))), f"{image}: workspace member {member.name} not copied"
    refs = _outside_references()
    assert any(r.startswith("proto") for r in refs) and any(r.startswith("migrations") for r in refs), refs
    missing = sorted(r for r in refs if not covered(r))
    assert not missing, f"{DOCKERFILES[image].name} does not copy what the crates read: {missing}"


# ------------------------------------------ (c) the binaries accept it all --


@pytest.mark.parametrize("name", BINARIES)
def test_help_parses(bins, name):
    out = subprocess.run([bins[name], "--help"], capture_output=True, text=True, timeout=30, env=clean_env())
    assert out.returncode == 0, out.stderr
    assert "Usage:" in out.stdout


def _help(bins, name) -> str:
    return subprocess.run([bins[name], "--help"], capture_output=True, text=True, timeout=30, env=clean_env()).stdout


@pytest.mark.parametrize(
    "service,binary,prefix",
    [("txn", "txn-server", "TXN_"), *((node, "kvs-server", "KVS_") for node in KVS_NODES)],
)
def test_compose_variables_are_known_to_the_binary(bins, compose, service, binary, prefix):
    known = set(re.findall(r"\[env: ([A-Z0-9_]+)", _help(bins, binary)))
    assert known, f"{binary} --help lists no environment variables"
    env = service_env(compose, service)
    assert all(k.startswith(prefix) for k in env), f"{service}: {[k for k in env if not k.startswith(prefix)]}"
    unknown = sorted(set(env) - known)
    assert not unknown, f"{binary} does not read {unknown}"


def test_kvs_certs_accepts_the_compose_arguments(bins, compose, tmp_path):
    args = kvs_certs_args(certs_script(compose))
    assert args[:2] == ["--out", "/certs"], args
    out = subprocess.run(
        [bins["kvs-certs"], "--out", str(tmp_path / "c"), *args[2:]],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert out.returncode == 0, out.stderr


def test_certs_service_makes_keeps_completes_and_rotates(bins, compose, tmp_path):
    out = tmp_path / "certs"
    out.mkdir()

    first = run_certs_script(compose, bins, out)
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(CERT_SET), "expected the set without ca.key"
    for name in CERT_SET:
        mode = stat.S_IMODE((out / name).stat().st_mode)
        assert mode == (0o600 if name.endswith(".key") else 0o644), f"{name}: {oct(mode)}"
    before = {n: (out / n).read_bytes() for n in CERT_SET}

    again = run_certs_script(compose, bins, out)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "keeping" in again.stdout
    assert {n: (out / n).read_bytes() for n in CERT_SET} == before

    (out / "client.key").unlink()
    repaired = run_certs_script(compose, bins, out)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert all((out / n).is_file() for n in CERT_SET) and not (out / "ca.key").exists()
    assert (out / "ca.crt").read_bytes() != before["ca.crt"], "a partial set must be replaced whole"

    current = (out / "server.crt").read_bytes()
    rotated = run_certs_script(compose, bins, out, KVS_CERTS_ROTATE="1")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert (out / "server.crt").read_bytes() != current


@pytest.fixture()
def compose_certs(bins, compose, tmp_path) -> Path:
    """Certificates made by the compose file's own certs script."""
    out = tmp_path / "certs"
    out.mkdir()
    made = run_certs_script(compose, bins, out)
    assert made.returncode == 0, made.stdout + made.stderr
    return out


def _with_certs(env: dict[str, str], certs: Path) -> dict[str, str]:
    return {k: v.replace("/certs/", f"{certs}/") if v.startswith("/certs/") else v for k, v in env.items()}


def test_txn_check_config_accepts_the_compose_environment(bins, compose, compose_certs):
    env = _with_certs(service_env(compose, "txn"), compose_certs)
    out = subprocess.run(
        [bins["txn-server"], "--check-config"], env=clean_env(**env), capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "configuration is valid" in out.stdout


def test_txn_check_config_does_check_the_files(bins, compose, compose_certs):
    # So that the test above means something.
    (compose_certs / "server.key").unlink()
    env = _with_certs(service_env(compose, "txn"), compose_certs)
    out = subprocess.run(
        [bins["txn-server"], "--check-config"], env=clean_env(**env), capture_output=True, text=True, timeout=30
    )
    assert out.returncode != 0


def compose_txn_healthcheck(compose: dict, bins, certs: Path) -> list[str]:
    """The txn service's health check command, with the binary and the
    certificates found here."""
    test = compose["services"]["txn"]["healthcheck"]["test"]
    assert test[0] == "CMD", test
    return [str(bins["txn-server"]) if a == "txn-server" else a.replace("/certs/", f"{certs}/") for a in test[1:]]


def test_txn_health_check_fails_while_txn_server_waits_for_postgresql(bins, compose, compose_certs, tmp_path):
    """txn-server with the compose environment and a database that is not
    up: its port is open (the Dockerfile's TCP check passes), but the compose
    file's health check says it does not serve yet."""
    check = compose_txn_healthcheck(compose, bins, compose_certs)
    env = _with_certs(service_env(compose, "txn"), compose_certs)
    # Bound but not listening: connections to it are refused, and no other
    # process can take the port meanwhile.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        env.update(TXN_LISTEN="127.0.0.1:0", TXN_DATABASE_URL=f"postgres://kvs:x@127.0.0.1:{closed.getsockname()[1]}/kvs")
        txn = Server([str(bins["txn-server"])], clean_env(**env), tmp_path)
        try:
            port = int(txn.wait_for(r"listening addr=127\.0\.0\.1:(\d+)").group(1))
            txn.wait_for(r"PostgreSQL not reachable yet")
            inside = {"TXN_LISTEN": f"0.0.0.0:{port}", "TXN_TLS_CA": env["TXN_TLS_CA"]}
            waiting = run_healthcheck(check, inside)
            assert waiting.returncode == 1, waiting.stdout + waiting.stderr
            assert "NOT_SERVING" in waiting.stderr
            tcp = healthcheck_argv(parse_dockerfile(DOCKERFILES["txn"])[-1])
            assert run_healthcheck(tcp, {"TXN_LISTEN": f"0.0.0.0:{port}"}).returncode == 0
        finally:
            txn.kill()


def test_kvs_and_txn_talk_with_the_compose_settings_and_pass_their_health_checks(
    bins, compose, compose_certs, tmp_path
):
    """Both servers with the compose file's environment, but on loopback
    ports and with txn-server on its file backend (no PostgreSQL here): the
    certificate wiring, the server name and every value must be right for
    kvs-server to replay and take a write."""
    kvs_check = healthcheck_argv(parse_dockerfile(DOCKERFILES["kvs"])[-1])
    txn_check = healthcheck_argv(parse_dockerfile(DOCKERFILES["txn"])[-1])
    txn_health = compose_txn_healthcheck(compose, bins, compose_certs)

    txn_env = _with_certs(service_env(compose, "txn"), compose_certs)
    txn_env.update(TXN_LISTEN="127.0.0.1:0", TXN_BACKEND="file", TXN_DATA_DIR=str(tmp_path / "txn-data"))
    kvs_env = _with_certs(service_env(compose, "kvs"), compose_certs)
    addr = urlsplit(kvs_env["KVS_TXN_ADDR"])

    txn = kvs = None
    try:
        txn = Server([str(bins["txn-server"])], clean_env(**txn_env), tmp_path)
        txn_port = int(txn.wait_for(r"listening addr=127\.0\.0\.1:(\d+)").group(1))

        kvs_env.update(KVS_LISTEN="127.0.0.1:0", KVS_TXN_ADDR=f"{addr.scheme}://127.0.0.1:{txn_port}")
        kvs = Server([str(bins["kvs-server"])], clean_env(**kvs_env), tmp_path)
        kvs_port = int(kvs.wait_for(r"listening addr=127\.0\.0\.1:(\d+)").group(1))
        kvs.wait_for(r"replayed the transaction log; ready", timeout=30)

        base = f"http://127.0.0.1:{kvs_port}/kvs/v1-0-0"
        assert http("PUT", f"{base}/int/counter", b"5")[0] in (200, 201, 204)
        assert http("GET", f"{base}/int/counter") == (200, "5")
        assert http("GET", f"{base}/readyz")[0] == 200

        # The Dockerfiles' HEALTHCHECK commands, with the port from the
        # *_LISTEN variable as inside the containers.
        kvs_ok = run_healthcheck(kvs_check, {"KVS_LISTEN": f"0.0.0.0:{kvs_port}"})
        assert kvs_ok.returncode == 0, kvs_ok.stderr
        txn_ok = run_healthcheck(txn_check, {"TXN_LISTEN": f"0.0.0.0:{txn_port}"})
        assert txn_ok.returncode == 0, txn_ok.stderr
        # The compose file's own: txn-server answers SERVING.
        txn_inside = {"TXN_LISTEN": f"0.0.0.0:{txn_port}", "TXN_TLS_CA": txn_env["TXN_TLS_CA"]}
        serving = run_healthcheck(txn_health, txn_inside)
        assert serving.returncode == 0, serving.stdout + serving.stderr
        assert serving.stdout.strip() == "txn-server: SERVING"
        # A server that answers, but not 200 on healthz, is not healthy.
        wrong = run_healthcheck(kvs_check, {"KVS_LISTEN": f"0.0.0.0:{txn_port}"})
        assert wrong.returncode != 0

        assert kvs.stop() == 0, "\n".join(kvs.lines)
        assert txn.stop() == 0, "\n".join(txn.lines)
        assert run_healthcheck(kvs_check, {"KVS_LISTEN": f"0.0.0.0:{kvs_port}"}).returncode != 0
        assert run_healthcheck(txn_check, {"TXN_LISTEN": f"0.0.0.0:{txn_port}"}).returncode != 0
        assert run_healthcheck(txn_health, txn_inside).returncode != 0
    finally:
        for server in (kvs, txn):
            if server is not None:
                server.kill()


# ------------------------------------------------ (d) the Dockerfiles' form --


def _workspace_rust_version() -> tuple[int, ...]:
    cargo = tomllib.loads((REPO / "Cargo.toml").read_text())
    return tuple(int(x) for x in cargo["workspace"]["package"]["rust-version"].split("."))


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_dockerfile_stages_and_base_images(image):
    text = DOCKERFILES[image].read_text()
    assert text.startswith("# syntax=docker/dockerfile:1"), "cache mounts need the BuildKit syntax line"
    stages = parse_dockerfile(DOCKERFILES[image])
    assert len(stages) >= 2, "expected a multi-stage build"
    builder, runtime = stages[0], stages[-1]

    m = BUILDER_BASE.match(builder.image)
    assert m, f"builder base {builder.image!r}: expected rust:<version>-slim-bookworm"
    version = tuple(int(x) for x in m.group("version").split("."))
    assert version >= _workspace_rust_version()[: len(version)], f"{builder.image} is older than rust-version"
    assert any(rx.match(runtime.image) for rx in RUNTIME_BASES), f"runtime base {runtime.image!r}"
    # Same Debian release, so the binary's glibc is there at run time.
    assert "bookworm" in runtime.image or "debian12" in runtime.image

    builds = [c for c in builder.all("RUN") if "cargo build" in c.value[0]]
    assert len(builds) == 1, "one cargo build step"
    build = builds[0]
    assert "--release" in build.value[0] and "--locked" in build.value[0]
    mounts = [f for f in build.flags if f.startswith("--mount=")]
    assert any("type=cache" in f and "target=/usr/local/cargo/registry" in f for f in mounts), mounts
    assert any("type=cache" in f and re.search(r"target=/\S*/target\b", f) for f in mounts), mounts

    # Nothing from the build context reaches the runtime image, only binaries.
    assert not copy_sources(runtime), "the runtime stage copies from the build context"
    assert all(any(f == f"--from={builder.name}" for f in c.flags) for c in runtime.all("COPY"))


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_dockerfile_runtime_user_expose_healthcheck_entrypoint(image):
    runtime = parse_dockerfile(DOCKERFILES[image])[-1]

    user = runtime.last("USER")
    assert user is not None, "no USER: the image would run as root"
    uid, _, gid = user.value[0].partition(":")
    assert uid.isdigit() and int(uid) == RUNTIME_UID, f"USER {user.value[0]}: use the numeric {RUNTIME_UID}"
    assert gid in ("", str(RUNTIME_UID))
    created = " ".join(c.value[0] for c in runtime.all("RUN"))
    assert f"--uid {RUNTIME_UID}" in created, "the runtime user is not created"
    assert re.search(rf"install -d -o {RUNTIME_UID} -g {RUNTIME_UID} [^&]*/certs", created), (
        "/certs must belong to the runtime user, so the certs volume does"
    )

    exposed = {p.split("/")[0] for c in runtime.all("EXPOSE") for p in c.value}
    assert exposed == EXPOSED[image]

    env = {}
    for c in runtime.all("ENV"):
        # The parser gives ENV as key, value, key, value, ...
        env.update(zip(c.value[0::2], c.value[1::2], strict=True))
    listen = env.get("KVS_LISTEN" if image == "kvs" else "TXN_LISTEN")
    assert listen and parse_listen(listen) == ("0.0.0.0", int(next(iter(EXPOSED[image]))))

    argv = healthcheck_argv(runtime)
    assert argv[0] in ("bash", "/bin/bash"), "the health checks use bash's /dev/tcp (no curl in the image)"
    flags = dict(f.lstrip("-").split("=", 1) for f in runtime.last("HEALTHCHECK").flags)
    assert {"interval", "timeout", "start-period", "retries"} <= set(flags), flags
    if image == "kvs":
        assert "/kvs/v1-0-0/healthz" in argv[-1]

    entry = runtime.last("ENTRYPOINT")
    assert entry is not None and entry.json, "ENTRYPOINT in exec form, so the server is PID 1 and gets SIGTERM"
    copied_to = [c.value[-1] for c in runtime.all("COPY")]
    binary = entry.value[0]
    assert any(binary == d or (d.endswith("/") and binary.startswith(d)) for d in copied_to), binary
    expected = "kvs-server" if image == "kvs" else "txn-server"
    assert Path(binary).name == expected


def test_certs_service_finds_kvs_certs_in_the_txn_image(compose):
    runtime = parse_dockerfile(DOCKERFILES["txn"])[-1]
    copied = [Path(s).name for c in runtime.all("COPY") for s in c.value[:-1]]
    assert "kvs-certs" in copied and "txn-server" in copied
    for key in ("build", "image"):
        assert compose["services"]["certs"][key] == compose["services"]["txn"][key]


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_hadolint_finds_nothing(image):
    # pip puts it beside the interpreter, which need not be on PATH.
    beside = Path(sys.executable).parent / "hadolint"
    hadolint = str(beside) if beside.is_file() else shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (deploy/requirements.txt installs it on Linux x86-64)")
    out = subprocess.run([hadolint, "--no-color", str(DOCKERFILES[image])], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
