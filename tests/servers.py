"""Private PostgreSQL and MariaDB servers for tests, benchmarks and the demo (design section 7).

Each server runs from the installed binaries in a temporary directory, on a free port on 127.0.0.1, with TLS
from a generated CA and full statement logging. As root the servers run as the `postgres` / `mysql` users
(`pg_ctl` refuses root). `DBOPS_TEST_POSTGRES_URL` / `DBOPS_TEST_MYSQL_URL` point at existing servers instead;
those have no statement log or CA we know of, and tests that need one skip.

Run `python -m tests.servers` to start both and print their URLs (Ctrl-C stops them).
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import ipaddress
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tools.ports import free_port

IS_ROOT = os.geteuid() == 0


# --- TLS material -----------------------------------------------------------------------------------------------


@dataclass
class TLSFiles:
    ca: str
    cert: str
    key: str


class CertificateAuthority:
    """A throwaway CA that signs server and client certificates into a directory."""

    def __init__(self, directory: Path, name: str = "dbops test CA") -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.ca_path = str(self.dir / "ca.crt")
        Path(self.ca_path).write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        name: str,
        common_name: str,
        hosts: tuple[str, ...] = (),
        client: bool = False,
        directory: Path | None = None,
    ) -> TLSFiles:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if hosts:
            sans: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    sans.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        usage = (
            x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
        )
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        where = directory or self.dir
        where.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = where / f"{name}.crt", where / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)
        return TLSFiles(ca=self.ca_path, cert=str(cert_path), key=str(key_path))


# --- statement logs ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    session: str  # backend pid (PostgreSQL) or thread id (MariaDB)
    text: str


READ_PREFIXES = (
    "select",
    "show",
    "set ",
    "set\t",
    "begin",
    "start transaction",
    "commit",
    "rollback",
    "reset",
    "savepoint",
    "release",
    "with",
    "values",
    "explain",
    "describe",
    "desc ",
    "use ",
    "do release_lock",
    "kill",
)
WRITE_SET_PREFIXES = ("set password", "set default role")


def is_write(sql: str) -> bool:
    """Whether a statement may change the server's state (session settings and reads do not)."""
    text = re.sub(r"^(\s|/\*.*?\*/|--[^\n]*\n)+", "", sql, flags=re.S).lower()
    if text.startswith(WRITE_SET_PREFIXES):
        return True
    return not text.startswith(READ_PREFIXES) and bool(text)


class StatementLog:
    """Reads the statements a server logged after a mark (a byte offset in its log file)."""

    def __init__(self, path: str, parser: str) -> None:
        self.path = path
        self.parser = parser

    def mark(self) -> int:
        try:
            return os.path.getsize(self.path)
        except FileNotFoundError:
            return 0

    def text_since(self, mark: int) -> str:
        time.sleep(0.05)  # the server writes its log asynchronously to our reading
        with open(self.path, "rb") as handle:
            handle.seek(mark)
            return handle.read().decode("utf-8", "replace")

    def since(self, mark: int) -> list[Statement]:
        text = self.text_since(mark)
        return _parse_pg_log(text) if self.parser == "postgres" else _parse_mariadb_log(text)

    def writes_since(self, mark: int) -> list[Statement]:
        return [s for s in self.since(mark) if is_write(s.text)]


_PG_LINE = re.compile(
    r"^\S+ \S+ \S+ \[(\d+)\] .*?(LOG|ERROR|STATEMENT|DETAIL|HINT|FATAL|WARNING|NOTICE):\s+(.*)$"
)


def _parse_pg_log(text: str) -> list[Statement]:
    out: list[Statement] = []
    current: list[str] | None = None
    pid = ""
    for line in text.splitlines():
        match = _PG_LINE.match(line)
        if match:
            if current is not None:
                out.append(Statement(pid, "\n".join(current)))
                current = None
            pid, level, rest = match.groups()
            if level == "LOG" and rest.startswith("statement: "):
                current = [rest[len("statement: ") :]]
        elif current is not None and line.startswith("\t"):
            current.append(line[1:])
    if current is not None:
        out.append(Statement(pid, "\n".join(current)))
    return out


_MARIA_LINE = re.compile(
    r"^(?:\d{6}\s+\d{1,2}:\d{2}:\d{2})?\s*\t\s*(\d+) "
    r"(Query|Connect|Quit|Init DB|Execute|Prepare|Close stmt|Reset stmt|Change user|Field List|Statistics|Ping|"
    r"Kill|Set option|Connect Out)\t?(.*)$"
)


def _parse_mariadb_log(text: str) -> list[Statement]:
    out: list[Statement] = []
    current: list[str] | None = None
    thread = ""
    for line in text.splitlines():
        match = _MARIA_LINE.match(line)
        if match:
            if current is not None:
                out.append(Statement(thread, "\n".join(current)))
                current = None
            thread, command, rest = match.groups()
            if command in ("Query", "Execute"):
                current = [rest]
        elif current is not None:
            current.append(line)
    if current is not None:
        out.append(Statement(thread, "\n".join(current)))
    return out


# --- servers ----------------------------------------------------------------------------------------------------


@dataclass
class Server:
    """What tests need to know of a running server."""

    engine: str  # "postgres" | "mariadb"
    host: str
    port: int
    admin_user: str
    admin_password: str = field(repr=False)
    admin_database: str | None
    log: StatementLog | None
    ca: CertificateAuthority | None
    server_log_path: str | None = None
    socket_dir: str | None = None
    stop_callback: object = None
    start_callback: object = None  # starts a stopped server again, same data, port and TLS (fault tests)

    @property
    def url(self) -> str:
        scheme = "postgresql" if self.engine == "postgres" else "mysql"
        db = f"/{self.admin_database}" if self.admin_database else ""
        return f"{scheme}://{self.admin_user}:***@{self.host}:{self.port}{db}"

    def stop(self) -> None:
        """Stop the server abruptly (PostgreSQL: immediate shutdown, MariaDB: SIGTERM): sessions are cut."""
        if not callable(self.stop_callback):
            raise RuntimeError(f"{self.url} was not started by tests.servers; it cannot be stopped")
        self.stop_callback()

    def start(self) -> None:
        """Start a server stopped with `stop()` again, on the same port with the same data."""
        if not callable(self.start_callback):
            raise RuntimeError(f"{self.url} was not started by tests.servers; it cannot be restarted")
        self.start_callback()

    def connection(self) -> dict[str, object]:
        """The request `connection` block for this server."""
        out: dict[str, object] = {"host": self.host, "port": self.port}
        if self.admin_database:
            out["database"] = self.admin_database
        return out

    def worker_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DBOPS_")}
        env.update({"DBOPS_ADMIN_USERNAME": self.admin_user, "DBOPS_ADMIN_PASSWORD": self.admin_password})
        env.update(extra)
        return env

    def connect(
        self,
        user: str | None = None,
        password: str | None = None,
        database: str | None = None,
        **kwargs: object,
    ):  # type: ignore[no-untyped-def]
        """A DB-API connection (psycopg2 or PyMySQL) as the admin or the given user."""
        user = user or self.admin_user
        password = self.admin_password if password is None else password
        if self.engine == "postgres":
            import psycopg2

            conn = psycopg2.connect(
                host=self.host,
                port=self.port,
                user=user,
                password=password,
                dbname=database or self.admin_database or "postgres",
                connect_timeout=5,
                **kwargs,
            )
            conn.autocommit = True
            return conn
        import pymysql

        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=user,
            password=password,
            database=database,
            connect_timeout=5,
            autocommit=True,
            **kwargs,
        )

    def query(self, sql: str, params: object = None, database: str | None = None) -> list[tuple]:  # type: ignore[type-arg]
        """Run one statement as the admin and return its rows (tests' view of the catalog)."""
        conn = self.connect(database=database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Ask a server to stop; kill it if it has not within `timeout` seconds; reap it either way."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _run(cmd: list[str], user: str | None = None, **kwargs: object) -> subprocess.CompletedProcess[str]:
    if user and IS_ROOT:
        cmd = ["runuser", "-u", user, "--", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]


def _chown(path: Path, user: str) -> None:
    if IS_ROOT:
        entry = pwd.getpwnam(user)
        for root, dirs, files in os.walk(path):
            os.chown(root, entry.pw_uid, entry.pw_gid)
            for name in dirs + files:
                os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def _pg_bindir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return os.path.dirname(found[-1])
    path = shutil.which("pg_ctl")
    if not path:
        raise RuntimeError("PostgreSQL server binaries not found; apt-get install postgresql")
    return os.path.dirname(path)


def start_postgres(
    base: Path, ca: CertificateAuthority, cert_hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> Server:
    bindir = _pg_bindir()
    data, sockets, log = base / "pgdata", base / "pgsock", base / "postgres.log"
    sockets.mkdir(parents=True)
    os.chmod(base, 0o755)
    password = secrets.token_urlsafe(18)
    pwfile = base / "pgpass"
    pwfile.write_text(password + "\n")
    tls = ca.issue("pg-server", "localhost", hosts=cert_hosts, directory=base / "tls")
    _chown(base, "postgres")
    _run(
        [
            f"{bindir}/initdb",
            "-D",
            str(data),
            "-U",
            "postgres",
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
        user="postgres",
    )
    pwfile.unlink()
    port = free_port()
    hba = (
        "local all all trust\n"
        # Roles in dbops_cert_login authenticate with a client certificate (tests of mutual TLS).
        "hostssl all +dbops_cert_login 127.0.0.1/32 cert\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
        "host all all ::1/128 scram-sha-256\n"
    )
    (data / "pg_hba.conf").write_text(hba)
    conf = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": f"'{sockets}'",
        "ssl": "on",
        "ssl_cert_file": f"'{tls.cert}'",
        "ssl_key_file": f"'{tls.key}'",
        "ssl_ca_file": f"'{tls.ca}'",
        "log_statement": "'all'",
        "log_min_error_statement": "'error'",
        "log_line_prefix": "'%m [%p] app=%a user=%u db=%d '",
        "log_connections": "off",
        "fsync": "off",
        # A commit must reach the WAL before it returns (with fsync off that is a write(), not a flush to disk):
        # the fault tests stop the server with an immediate shutdown, which would otherwise lose commits that a
        # real server keeps, e.g. the ownership marker written right after CREATE DATABASE.
        "synchronous_commit": "on",
        "full_page_writes": "off",
        "shared_buffers": "'32MB'",
        "max_connections": "60",
        "password_encryption": "'scram-sha-256'",
    }
    with open(data / "postgresql.conf", "a", encoding="utf-8") as handle:
        handle.write("\n# dbops test server\n" + "".join(f"{k} = {v}\n" for k, v in conf.items()))
    _chown(base, "postgres")

    def start() -> None:
        _run(
            [f"{bindir}/pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", "60", "start"], user="postgres"
        )

    start()
    # The statement log is the server log; psql from the socket creates the role tests use for cert logins.
    _run(
        [
            f"{bindir}/psql",
            "-h",
            str(sockets),
            "-p",
            str(port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-qAt",
            "-c",
            "CREATE ROLE dbops_cert_login NOLOGIN",
        ],
        user="postgres",
    )

    def stop() -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            _run([f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"], user="postgres")

    return Server(
        "postgres",
        "127.0.0.1",
        port,
        "postgres",
        password,
        "postgres",
        StatementLog(str(log), "postgres"),
        ca,
        str(log),
        str(sockets),
        stop,
        start,
    )


def _install_mariadb(cmd: list[str], data: Path) -> None:
    """mariadb-install-db, once more from an empty data directory if it fails: on a loaded machine it has exited 1
    at a session's start (seen twice in one afternoon of parallel sessions, not reproduced in 16 installs two at a
    time). Both attempts' output goes into the error, so a failure says why."""
    outputs = []
    for _ in range(2):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return
        outputs.append(f"exit {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        print(f"mariadb-install-db failed, trying once more:\n{outputs[-1]}", file=sys.stderr)
        shutil.rmtree(data, ignore_errors=True)
    raise RuntimeError("mariadb-install-db failed twice:\n" + "\n".join(outputs))


def start_mariadb(
    base: Path, ca: CertificateAuthority, cert_hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> Server:
    mariadbd = shutil.which("mariadbd") or shutil.which("mysqld") or "/usr/sbin/mariadbd"
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if not os.path.exists(mariadbd) or not install:
        raise RuntimeError("MariaDB server binaries not found; apt-get install mariadb-server")
    data, log, general = base / "mariadb-data", base / "mariadb.err", base / "mariadb-general.log"
    sock, pid = base / "mariadb.sock", base / "mariadb.pid"
    base.mkdir(parents=True)
    tls = ca.issue("maria-server", "localhost", hosts=cert_hosts, directory=base / "tls")
    for path in (tls.cert, tls.key):
        os.chmod(path, 0o644 if path.endswith(".crt") else 0o600)
    user_args = ["--user=mysql"] if IS_ROOT else []
    _chown(base, "mysql")
    _install_mariadb(
        [
            install,
            "--no-defaults",
            f"--datadir={data}",
            *user_args,
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
            "--skip-name-resolve",
        ],
        data,
    )
    _chown(base, "mysql")
    port = free_port()
    cmd = [
        mariadbd,
        "--no-defaults",
        f"--datadir={data}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        f"--socket={sock}",
        f"--pid-file={pid}",
        f"--log-error={log}",
        "--general-log=1",
        f"--general-log-file={general}",
        f"--ssl-ca={tls.ca}",
        f"--ssl-cert={tls.cert}",
        f"--ssl-key={tls.key}",
        "--skip-name-resolve",
        "--innodb-buffer-pool-size=32M",
        "--skip-log-bin",
        "--max-connections=80",
        "--innodb-flush-log-at-trx-commit=0",
        "--performance-schema=OFF",
        *user_args,
    ]
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        sock.unlink(missing_ok=True)  # a killed server leaves its socket behind; we wait for a new one
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        procs.append(proc)
        deadline = time.monotonic() + 60
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"MariaDB did not start; see {log}:\n{log.read_text() if log.exists() else ''}"
                )
            time.sleep(0.1)

    start()
    password = secrets.token_urlsafe(18)
    client = shutil.which("mariadb") or shutil.which("mysql") or "mariadb"
    setup = (
        "DELETE FROM mysql.global_priv WHERE User='';"
        f"CREATE USER 'dbops_admin'@'%' IDENTIFIED BY '{password}';"
        "GRANT ALL PRIVILEGES ON *.* TO 'dbops_admin'@'%' WITH GRANT OPTION;"
        "FLUSH PRIVILEGES;"
    )
    # The admin password would otherwise sit in the general log that tests scan for leaked secrets.
    _run([client, f"--socket={sock}", "-uroot", "-e", "SET SESSION sql_log_off=1;" + setup])

    def stop() -> None:
        stop_process(procs[-1], timeout=30)

    return Server(
        "mariadb",
        "127.0.0.1",
        port,
        "dbops_admin",
        password,
        None,
        StatementLog(str(general), "mariadb"),
        ca,
        str(log),
        str(base),
        stop,
        start,
    )


def from_url(url: str, engine: str) -> Server:
    parsed = urlparse(url)
    database = parsed.path.lstrip("/") or None
    default_port = 5432 if engine == "postgres" else 3306
    return Server(
        engine,
        parsed.hostname or "127.0.0.1",
        parsed.port or default_port,
        unquote(parsed.username or ""),
        unquote(parsed.password or ""),
        database if engine == "postgres" else None,
        None,
        None,
    )


@contextlib.contextmanager
def private_servers(
    engines: tuple[str, ...] = ("postgres", "mariadb"),
    cert_hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
) -> Iterator[dict[str, Server]]:
    """Start the requested servers (or take them from the environment); stop and clean up on exit.
    `cert_hosts`: the names and addresses in the servers' certificates (subject alternative names)."""
    base = Path(tempfile.mkdtemp(prefix="dbops-servers-"))
    os.chmod(base, 0o755)
    ca = CertificateAuthority(base / "ca")
    servers: dict[str, Server] = {}
    try:
        for engine in engines:
            env_url = os.environ.get(
                "DBOPS_TEST_POSTGRES_URL" if engine == "postgres" else "DBOPS_TEST_MYSQL_URL"
            )
            if env_url:
                servers[engine] = from_url(env_url, engine)
            elif engine == "postgres":
                servers[engine] = start_postgres(base / "pg", ca, cert_hosts)
            else:
                servers[engine] = start_mariadb(base / "maria", ca, cert_hosts)
        yield servers
    finally:
        for server in servers.values():
            if callable(server.stop_callback):
                server.stop_callback()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    with private_servers() as running:
        for name, srv in running.items():
            print(
                f"{name}: {srv.url} (password {srv.admin_password}) log={srv.log.path if srv.log else None}"
            )
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
